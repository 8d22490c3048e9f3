"""The regression gate: current results vs a baseline, per arm x backend x metric, with seeds.

Rule for one (arm, backend, metric), with `change = mean(current) - mean(baseline)` over the
'ok' seeds and `limit` its tolerance in the metric's units:

1. Pairing, by the before/after rule shared with `harness compare`
   (`harness.analysis.before_after`). When at least `min_seeds` seeds ran on both sides, the
   change is tested PAIRED by seed on those common seeds (scipy's ttest_rel; same seed = same
   initial weights and batches, so the seed's share of the variance cancels). Otherwise, when
   both sides have at least `min_seeds` seeds, UNPAIRED (Welch's t-test, scipy's ttest_ind with
   unequal variances). Otherwise the seeds are INSUFFICIENT (the asv-style minimum-n guard):
   significance cannot be claimed.
2. Significance. The two-sided p-values of every tested row of one check are Holm-corrected
   together (`harness.analysis.statistics.holm`), so a check that compares 20 rows still
   false-alarms at most 5% of the time when nothing changed; a row is significant when its Holm
   p < 0.05. The 95% CI of the change is shown unadjusted.
3. Verdict. REGRESSED: the mean moved the wrong way (down for accuracy and r2, up for losses,
   mae and seconds) by more than `limit`, AND significantly. IMPROVED: the same the right way.
   PASS: anything else with enough seeds (inside the tolerance, or not significant).
   UNCERTAIN: beyond the tolerance but with insufficient seeds (or a speed change between
   different CPUs/versions, see 4); it does not fail the check unless `few_seeds: tolerance`
   was asked for, in which case the tolerance alone decides (REGRESSED/IMPROVED, noted
   "tolerance only"). MISSING: in the baseline, absent (or without an 'ok' trial) in the
   results; it fails the check. NEW: in the results, absent from the baseline; it does not.
4. Speed (train_seconds) depends on the machine. Its rows are flagged "environment-sensitive"
   when the baseline's hosts, CPU/GPU or framework versions differ from the current run's. A
   different CPU/GPU or versions turn a speed REGRESSED/IMPROVED into UNCERTAIN (the machine,
   not the code, may explain it); a different host name alone (CI runners get a fresh name
   per run) only flags it. Save the speed baseline on the machine type CI runs on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import measures
from harness.analysis.before_after import INSUFFICIENT, PAIRED, before_after
from harness.check.baseline import Baseline, environment_of
from harness.check.options import TIMING_METRICS, CheckOptions, Tolerance
from harness.errors import SpecError

if TYPE_CHECKING:
    from harness.analysis import Results

VERDICTS = ("PASS", "REGRESSED", "IMPROVED", "UNCERTAIN", "MISSING", "NEW")  # what a checked row can come to
FAILING_VERDICTS = ("REGRESSED", "MISSING")


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
    ci_low: float  # 95% CI of the change (unadjusted)
    ci_high: float
    p_value: float
    p_holm: float
    test: str  # 'paired', 'welch', 'insufficient seeds' or '' (MISSING/NEW)
    significant: bool
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
    """The statistics of one row, before Holm and the verdict (status '' = to be decided)."""
    direction = measures.direction(metric)
    before, after = dict(before or {}), dict(after or {})
    mean_before = float(np.mean(list(before.values()))) if before else math.nan
    mean_after = float(np.mean(list(after.values()))) if after else math.nan
    change = mean_after - mean_before
    row = {
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
        "p_holm": math.nan,
        "test": "",
        "significant": False,
        "notes": [],
    }
    if not before:
        row["status"] = "NEW"
        return row
    if not after:
        row["status"] = "MISSING"
        return row
    result = before_after(before, after, min_seeds)
    row["test"] = result.method
    if result.method == INSUFFICIENT:
        row["seed_counts"] = (
            f"{len(before)} baseline, {len(after)} current, {result.shared_seeds} shared seeds; "
            f"significance needs {min_seeds}"
        )
        return row
    if result.method == PAIRED and result.n_after < max(len(before), len(after)):
        row["notes"].append(f"paired on the {result.n_after} common seeds; the change is theirs")
        row["change"] = result.change
        row["relative_change"] = row["change"] / abs(mean_before) if mean_before != 0 else math.nan
    row.update(ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value)
    return row


def compare(results: Results, baseline: Baseline, options: CheckOptions) -> list[Verdict]:
    """Every (arm, backend, checked metric) of the results and the baseline, with its verdict.

    Args:
        results: the current results (`harness.results_folder.open_results`).
        baseline: the baseline read with `read_baseline` (same suite).
        options: tolerances and the seed rule (`harness.check.options`).

    Returns:
        Verdicts in suite arm order, then backend, then the metrics' configured order.

    Raises:
        SpecError: a checked metric is in neither the baseline nor the results.
    """
    from harness.analysis.statistics import ALPHA, holm

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
            row["comparable"] = comparable
            rows.append(row)
    tested = [index for index, row in enumerate(rows) if math.isfinite(row["p_value"])]
    adjusted = holm(np.array([rows[index]["p_value"] for index in tested], dtype=np.float64))
    for index, p_holm in zip(tested, adjusted):
        rows[index]["p_holm"] = float(p_holm)
        rows[index]["significant"] = bool(p_holm < ALPHA)
    return [_decide(row, options) for row in rows]


def _decide(row: dict[str, Any], options: CheckOptions) -> Verdict:
    comparable = row.pop("comparable")
    seed_counts = row.pop("seed_counts", "")
    if not row["status"]:
        change, limit = row["change"], row["limit"]
        beyond = math.isfinite(change) and abs(change) > limit
        worse = (change < 0) if row["direction"] == "higher" else (change > 0)
        moved = "REGRESSED" if worse else "IMPROVED"
        if not beyond:
            row["status"] = "PASS"
        elif row["test"] == "insufficient seeds":
            if options.few_seeds == "tolerance":
                row["status"] = moved
                row["notes"].append(f"decided by the tolerance alone (few_seeds: tolerance; {seed_counts})")
            else:
                row["status"] = "UNCERTAIN"
                row["notes"].append(
                    f"{'worse' if worse else 'better'} beyond the tolerance, but {seed_counts}: add "
                    "seeds, or pass --few-seeds tolerance to let the tolerance alone decide"
                )
        elif row["significant"]:
            row["status"] = moved
        else:
            row["status"] = "PASS"
            row["notes"].append(
                f"{'worse' if worse else 'better'} beyond the tolerance but not significant "
                f"(Holm p = {row['p_holm']:.3g})"
            )
        if row["metric"] in TIMING_METRICS and not comparable and row["status"] in ("REGRESSED", "IMPROVED"):
            row["status"] = "UNCERTAIN"
            row["notes"].append("speed compared across different CPUs/GPUs or versions: not decided")
    row["notes"] = tuple(row["notes"])
    return Verdict(**row)
