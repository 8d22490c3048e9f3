"""The regression gate: current results vs a baseline, per arm x backend x metric, with seeds.

Rule for one (arm, backend, metric), with `change = mean(current) - mean(baseline)` over the
'ok' seeds and `limit` its tolerance in the metric's units. The tolerance is a region of
practical equivalence: the question is not "did it change at all?" but "is it worse by more
than the tolerance?", and the answer may be "the seeds cannot tell".

1. Pairing, by the before/after rule shared with `harness compare`
   (`harness.analysis.before_after`): PAIRED by seed on the common seeds when at least
   `min_seeds` are shared (same seed = same initial weights and batches, so the seed's share of
   the variance cancels), else WELCH (unpaired) when both sides have `min_seeds` values. Below
   `min_seeds` the same rule runs with the fewest values a t test needs (2): such a row may
   still show a regression (the t quantile at 1 or 2 degrees of freedom pays for the few seeds),
   but it is never WITHIN (a pass resting on a spread from one or two degrees of freedom).
2. Two one-sided tests against the tolerance (`harness.check.equivalence`, statsmodels'
   `ttost_paired` / `ttost_ind`), 5% one-sided: REGRESSED when the change is shown worse than
   -limit (Holm-corrected over the rows that can fail); WITHIN when it is shown better than
   -limit (non-inferiority); IMPROVED when also shown better than +limit (informational);
   INCONCLUSIVE otherwise, with the smallest change these seeds detect (80% power) and the seeds
   that would decide the measured change. Every sign flips for lower-is-better metrics (losses,
   mae, error rate, seconds). The 95% CI of the change is shown unadjusted.
3. Seeds that agree exactly: identical values on both sides, seed by seed, are WITHIN (the
   results were reproduced). Any other zero spread (every seed moved by exactly the same amount,
   or two constant sides) is INCONCLUSIVE: a zero-width interval is not certainty. So is a row
   with fewer than 2 values on a side. `few_seeds: tolerance` (or --few-seeds tolerance) lets the
   tolerance alone decide those rows and the few-seed rows of 1 (noted "tolerance only").
   MISSING: in the baseline, absent (or without an 'ok' trial) in the results; it fails the
   check. NEW: in the results, absent from the baseline; it does not.
4. Speed (train_seconds) depends on the machine. Its rows are flagged "environment-sensitive"
   when the baseline's hosts, CPU/GPU or framework versions differ from the current run's. A
   different CPU/GPU or versions take the row out of the Holm family (it cannot fail): a slowdown
   or speed-up beyond the tolerance is INCONCLUSIVE (the machine, not the code, may explain it);
   a different host name alone (CI runners get a fresh name per run) only flags it. Save the
   speed baseline on the machine type CI runs on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import measures
from harness.analysis.before_after import INSUFFICIENT, MIN_PAIRS, PAIRED, before_after
from harness.analysis.text import format_number
from harness.check.baseline import Baseline, environment_of
from harness.check.equivalence import (
    ALPHA,
    IMPROVED,
    INCONCLUSIVE,
    MAX_SEEDS_SEARCHED,
    REGRESSED,
    WITHIN,
    decide,
    detectable_change,
    margin_tests,
    seeds_needed,
)
from harness.check.options import TIMING_METRICS, CheckOptions, Tolerance
from harness.errors import SpecError

if TYPE_CHECKING:
    from harness.analysis import Results

VERDICTS = (WITHIN, REGRESSED, IMPROVED, INCONCLUSIVE, "MISSING", "NEW")  # what a checked row can come to
FAILING_VERDICTS = (REGRESSED, "MISSING")
UNDECIDED_VERDICTS = (INCONCLUSIVE,)  # exit 0 unless --strict


@dataclass(frozen=True)
class Verdict:
    """One row of the check: an (arm, backend, metric) and what happened to it."""

    arm: str
    backend: str
    metric: str
    status: str  # one of VERDICTS
    direction: str  # 'higher' or 'lower' is better
    tolerance: str  # as written: '1%' or '0.01'
    limit: float  # the tolerance in the metric's units (NaN without a baseline mean)
    baseline_mean: float
    baseline_n: int
    current_mean: float
    current_n: int
    change: float  # current - baseline
    relative_change: float  # change / |baseline mean|
    ci_low: float  # 95% CI of the change (unadjusted, two-sided)
    ci_high: float
    p_value: float  # two-sided test of no change at all (the number `harness compare` shows)
    p_worse: float  # one-sided: worse beyond the tolerance
    p_holm: float  # p_worse, Holm-adjusted over the rows that can fail
    p_within: float  # one-sided: not worse beyond the tolerance (non-inferiority)
    p_better: float  # one-sided: better beyond the tolerance
    test: str  # 'paired', 'welch', 'insufficient seeds' or '' (MISSING/NEW)
    detectable_change: float  # INCONCLUSIVE rows: the distance from the tolerance's edge detected with 80% power
    seeds_needed: int | None  # INCONCLUSIVE rows: seeds that would decide the measured change (None: no number)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""
        return {
            key: (
                None
                if isinstance(value, float) and not math.isfinite(value)
                else list(value)
                if isinstance(value, tuple)
                else value
            )
            for key, value in self.__dict__.items()
        }


# -- environment ------------------------------------------------------------------------------------


def _describe_items(items: Sequence[Any]) -> str:
    return ", ".join(item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in items) or "unknown"


def environment_differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[str], bool]:
    """What differs between two environments of one backend, and whether speed stays comparable.

    Returns:
        (differences as text, comparable): comparable is False when the devices or the versions differ.
    """
    differences: list[str] = []
    comparable = True
    for key, label in (("hosts", "host"), ("devices", "CPU/GPU"), ("versions", "versions")):
        before, after = list(baseline.get(key, [])), list(current.get(key, []))
        if sorted(json.dumps(item, sort_keys=True) for item in before) == sorted(
            json.dumps(item, sort_keys=True) for item in after
        ):
            continue
        if key != "hosts":
            comparable = False
        if key == "versions" and len(before) == 1 and len(after) == 1:
            names = sorted(set(before[0]) | set(after[0]))
            changed = [
                f"{name} {before[0].get(name, 'absent')} -> {after[0].get(name, 'absent')}"
                for name in names
                if before[0].get(name) != after[0].get(name)
            ]
            differences.append("versions: " + "; ".join(changed))
        else:
            differences.append(f"{label}: {_describe_items(before)} -> {_describe_items(after)}")
    return differences, comparable


# -- the gate ---------------------------------------------------------------------------------------


def _ordered_cells(results: Results, baseline: Baseline, final: Any) -> list[tuple[str, str]]:
    present = set(zip(final["arm"], final["backend"]))
    cells = set(present) | set(baseline.values)
    arm_rank = {arm: index for index, arm in enumerate(results.arms)}
    backend_rank = {backend: index for index, backend in enumerate(results.backends)}
    return sorted(
        cells,
        key=lambda cell: (
            arm_rank.get(cell[0], len(arm_rank)),
            cell[0],
            backend_rank.get(cell[1], len(backend_rank)),
            cell[1],
        ),
    )


def _check_metric_names(metrics: Mapping[str, Tolerance], final: Any, baseline: Baseline) -> None:
    for metric in metrics:
        if metric not in baseline.metric_names and metric not in final.columns:
            valid = sorted(baseline.metric_names)
            raise SpecError(
                f"check: metric {metric!r} is in neither the baseline nor the results. Metrics the baseline "
                f"holds: {', '.join(valid)}. Fix: name one of those in `check:` or --fail-on."
            )


def _current_values(final: Any, metric: str) -> dict[tuple[str, str], dict[int, float]]:
    if metric not in final.columns:
        return {}
    ok = final[final["status"] == measures.OK]
    values: dict[tuple[str, str], dict[int, float]] = {}
    for arm, backend, seed, value in zip(ok["arm"], ok["backend"], ok["seed"], ok[metric]):
        value = float(value) if value is not None else math.nan
        if math.isfinite(value):
            values.setdefault((arm, backend), {})[int(seed)] = value
    return values


def _row(
    arm: str,
    backend: str,
    metric: str,
    tolerance: Tolerance,
    before: Mapping[int, float] | None,
    after: Mapping[int, float] | None,
    min_seeds: int,
) -> dict[str, Any]:
    """The statistics of one row, before Holm and the outcome (status '' = to be decided)."""
    direction = measures.direction(metric)
    before, after = dict(before or {}), dict(after or {})
    mean_before = float(np.mean(list(before.values()))) if before else math.nan
    mean_after = float(np.mean(list(after.values()))) if after else math.nan
    change = mean_after - mean_before
    row: dict[str, Any] = {
        "arm": arm,
        "backend": backend,
        "metric": metric,
        "status": "",
        "direction": direction,
        "tolerance": str(tolerance),
        "limit": tolerance.limit(mean_before) if before else math.nan,
        "baseline_mean": mean_before,
        "baseline_n": len(before),
        "current_mean": mean_after,
        "current_n": len(after),
        "change": change,
        "relative_change": change / abs(mean_before) if before and mean_before != 0 else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "p_worse": math.nan,
        "p_holm": math.nan,
        "p_within": math.nan,
        "p_better": math.nan,
        "test": "",
        "detectable_change": math.nan,
        "seeds_needed": None,
        "notes": [],
        "few_seeds": False,  # below min_seeds: may regress, may not pass
        "undecided": "",  # why the seeds cannot decide this row (no test, or zero spread)
    }
    if not before:
        row["status"] = "NEW"
        return row
    if not after:
        row["status"] = "MISSING"
        return row
    result = before_after(before, after, min_seeds)
    if result.method == INSUFFICIENT:
        row["few_seeds"] = True
        row["seed_counts"] = (
            f"{len(before)} baseline, {len(after)} current, {result.shared_seeds} shared seeds; a pass needs {min_seeds}"
        )
        result = before_after(before, after, MIN_PAIRS)
    row["test"] = result.method
    if result.method == INSUFFICIENT:
        row["undecided"] = f"a t test needs 2 seeds on a side ({row['seed_counts']})"
        return row
    if result.method == PAIRED and result.n_after < max(len(before), len(after)):
        row["notes"].append(f"paired on the {result.n_after} common seeds; the change is theirs")
        row["change"] = result.change
        row["relative_change"] = row["change"] / abs(mean_before) if mean_before != 0 else math.nan
    row.update(ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value)
    paired = result.method == PAIRED
    tests = margin_tests(
        np.array(result.used_after), np.array(result.used_before), paired, row["limit"], direction == "higher"
    )
    if bool(tests.zero_spread):
        if paired and result.used_after == result.used_before:
            row["status"] = WITHIN
            row["notes"].append(f"identical to the baseline on all {result.n_after} seeds")
        else:
            row["undecided"] = "the seeds agree exactly (zero spread): a zero-width interval is not certainty"
        return row
    row.update(p_worse=float(tests.p_worse), p_within=float(tests.p_not_worse), p_better=float(tests.p_better))
    row["spread"] = (float(tests.standard_error), float(tests.degrees_of_freedom), float(tests.seed_sd), paired)
    return row


def _power_numbers(row: dict[str, Any], family: int, min_seeds: int) -> None:
    """The detectable change and the seeds needed of a tested row (see harness.check.equivalence)."""
    standard_error, degrees_of_freedom, seed_sd, paired = row["spread"]
    regression_alpha = ALPHA / max(family, 1)  # the bar of Holm's first step
    edge = -row["limit"] if row["direction"] == "higher" else row["limit"]
    row["detectable_change"] = detectable_change(standard_error, degrees_of_freedom, regression_alpha)
    if _worse(row) and abs(row["change"]) > row["limit"]:  # beyond the edge: to show it REGRESSED
        row["seeds_needed"] = seeds_needed(abs(row["change"] - edge), seed_sd, paired, regression_alpha)
    else:  # inside: to show it WITHIN
        row["seeds_needed"] = seeds_needed(abs(row["change"] - edge), seed_sd, paired, ALPHA, least=min_seeds)


def compare(results: Results, baseline: Baseline, options: CheckOptions) -> list[Verdict]:
    """Every (arm, backend, checked metric) of the results and the baseline, with its outcome.

    Args:
        results: the current results (`harness.results_folder.open_results`).
        baseline: the baseline read with `read_baseline` (same suite).
        options: tolerances and the seed rule (`harness.check.options`).

    Returns:
        Verdicts in suite arm order, then backend, then the metrics' configured order.

    Raises:
        SpecError: a checked metric is in neither the baseline nor the results.
    """
    metrics = options.resolved_metrics(results.primary_metric)
    final = results.final()
    _check_metric_names(metrics, final, baseline)
    current = {metric: _current_values(final, metric) for metric in metrics}
    present = set(zip(final["arm"], final["backend"]))
    environment_now = environment_of(results.trials)
    rows = []
    for arm, backend in _ordered_cells(results, baseline, final):
        differences, comparable = environment_differences(
            baseline.environment.get(backend, {}), environment_now.get(backend, {})
        )
        for metric, tolerance in metrics.items():
            before = baseline.values.get((arm, backend), {}).get(metric) or None  # {}: no 'ok' seed
            after = current[metric].get((arm, backend))
            if before is None and after is None:
                continue  # no value on either side (e.g. every trial diverged both times)
            row = _row(arm, backend, metric, tolerance, before, after, options.min_seeds)
            if row["status"] == "MISSING" and (arm, backend) in present:
                row["notes"].append("no 'ok' trial in the results")
            if metric in TIMING_METRICS and differences:
                row["notes"].append("environment-sensitive: " + "; ".join(differences))
            row["comparable"] = comparable or metric not in TIMING_METRICS
            rows.append(row)
    p_worse = np.array([row["p_worse"] for row in rows], dtype=np.float64)
    tested = np.isfinite(p_worse)
    statuses, p_holm = decide(
        p_worse,
        np.array([row["p_within"] for row in rows], dtype=np.float64),
        np.array([row["p_better"] for row in rows], dtype=np.float64),
        can_fail=tested & np.array([row["comparable"] for row in rows], dtype=bool),
        may_pass=np.array([not row["few_seeds"] for row in rows], dtype=bool),
    )
    family = int(np.isfinite(p_holm).sum())
    for index, row in enumerate(rows):
        row["p_holm"] = float(p_holm[index])
        if not row["status"] and tested[index]:
            row["status"] = str(statuses[index])
        if row["status"] == INCONCLUSIVE and "spread" in row:
            _power_numbers(row, family, options.min_seeds)
        row.pop("spread", None)
    return [_finish(row, options) for row in rows]


def _worse(row: Mapping[str, Any]) -> bool:
    return (row["change"] < 0) if row["direction"] == "higher" else (row["change"] > 0)


def _finish(row: dict[str, Any], options: CheckOptions) -> Verdict:
    """The notes of the decided row, the rows the seeds could not decide, and the Verdict."""
    comparable = row.pop("comparable")
    seed_counts = row.pop("seed_counts", "")
    few_seeds = row.pop("few_seeds")
    undecided = row.pop("undecided")
    if not row["status"]:  # not tested: fewer than 2 seeds on a side, or zero spread
        row["status"] = INCONCLUSIVE
        row["notes"].append(f"not decided by the seeds: {undecided}")
    if row["status"] == INCONCLUSIVE and options.few_seeds == "tolerance" and (few_seeds or undecided):
        beyond = math.isfinite(row["change"]) and abs(row["change"]) > row["limit"]
        row["status"] = (REGRESSED if _worse(row) else IMPROVED) if beyond else WITHIN
        row["notes"].append(
            f"decided by the tolerance alone (few_seeds: tolerance{'; ' + seed_counts if seed_counts else ''})"
        )
    elif row["status"] == INCONCLUSIVE and not comparable:
        row["notes"].append("speed compared across different CPUs/GPUs or versions: it cannot fail the check")
    elif row["status"] == INCONCLUSIVE and few_seeds and row["p_within"] < 0.05:
        row["notes"].append(f"inside the tolerance, but {seed_counts}")
    if row["status"] == INCONCLUSIVE and math.isfinite(row["detectable_change"]):
        needed = row["seeds_needed"]
        seeds = f"about {needed} seeds" if needed is not None else f"more than {MAX_SEEDS_SEARCHED} seeds"
        edge = -row["limit"] if row["direction"] == "higher" else row["limit"]
        row["notes"].append(
            f"inconclusive: these seeds detect a regression {format_number(row['detectable_change'], 3)} or more "
            f"beyond the tolerance's edge ({format_number(edge, 3)}) with 80% power (Holm's first-step level); "
            f"{seeds} would decide the measured change {format_number(row['change'], 3)}"
        )
    row["notes"] = tuple(row["notes"])
    return Verdict(**row)
