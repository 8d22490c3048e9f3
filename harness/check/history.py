"""History across runs: each arm's metric over the stored runs of a suite, and the steps between them.

Every `harness run` records the commit of the suite's checkout and each trial's final values as
the run saw them (`harness.store.runs`). Here each run becomes a small `Results` (its trials at
their final values) and each run is checked against the one before it with the same gate as
`harness check` (`harness.check.gate.compare`: the tolerance as a region of practical
equivalence, paired by seed, Holm over the arms of one step), so a step is REGRESSED, IMPROVED,
WITHIN or INCONCLUSIVE by exactly the rule a CI gate applies. `baseline_of_runs` turns the last N
runs into a `Baseline` for `harness check --against-last N`: each seed's value is its mean over
those runs, so the comparison stays paired by seed.

A trial reused by a run (same content hash: nothing that enters the hash changed) has the values it
had, so a code change outside the spec (a plug-in, a library) shows up only in trials trained
again: run with `--rerun` to measure the new code on every trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import Results
from harness.analysis.statistics import describe_groups
from harness.check.baseline import Baseline, environment_of
from harness.check.gate import compare
from harness.check.options import CheckOptions, Tolerance
from harness.errors import HarnessError
from harness.measures import OK, SPEED_METRIC, TRIAL_STATUSES
from harness.provenance import describe_git

Cell = tuple[str, str]
HISTORY_COLUMNS = (
    "run",
    "run_id",
    "started_at",
    "commit",
    "arm",
    "backend",
    "metric",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "trained",
    "step",
    "change",
    "p_holm",
)


@dataclass(frozen=True)
class RunHistory:
    """A suite's stored runs: `runs` (one row per run, oldest first: runs table columns) and `values`
    (long: run_id, hash, arm, backend, seed, reused, status, metric, value)."""

    suite: str
    runs: pd.DataFrame
    values: pd.DataFrame

    @classmethod
    def read(cls, store: Any, suite: str) -> RunHistory:
        """The runs of `suite` in a `harness.store.Store`."""
        runs = store.runs_frame(suite)
        return cls(suite, runs, store.run_trials_frame(runs["id"].tolist()))

    def commit_label(self, run_id: str) -> str:
        """'1a2b3c4d5e6f', '1a2b3c4d5e6f+dirty', or 'no git' for a run outside a checkout."""
        row = self.runs[self.runs["id"] == run_id].iloc[0]
        commit = row["git_commit"]
        if not isinstance(commit, str) or not commit:
            return "no git"
        return describe_git(
            {"commit": commit, "dirty": bool(row["git_dirty"]) if pd.notna(row["git_dirty"]) else False}
        )

    def run_results(self, run_id: str, template: Results) -> Results:
        """One run's trials at their final values, as a Results with the template's arms and name."""
        rows = self.values[self.values["run_id"] == run_id]
        trials = rows.drop_duplicates("hash")[["hash", "arm", "backend", "seed", "status"]].reset_index(drop=True)
        seconds = rows[rows["metric"] == SPEED_METRIC].set_index("hash")["value"]
        trials[SPEED_METRIC] = trials["hash"].map(seconds).astype("float64")
        metrics = rows[rows["metric"] != SPEED_METRIC][["hash", "metric", "value"]].assign(epoch=1)
        return Results(
            trials,
            metrics[["hash", "epoch", "metric", "value"]],
            arms=template.arms,
            axes=(),
            name=template.name,
            report_options={"metric": template.primary_metric},
        )


def baseline_of(results: Results, metrics: Sequence[str], label: str) -> Baseline:
    """The baseline `harness check` would read for these results (their 'ok' seeds' final values)."""
    final = results.final()
    values: dict[Cell, dict[str, dict[int, float]]] = {}
    counts: dict[Cell, dict[str, int]] = {}
    for row in final.to_dict("records"):
        cell = (str(row["arm"]), str(row["backend"]))
        status = str(row["status"])
        counts.setdefault(cell, dict.fromkeys(TRIAL_STATUSES, 0))[status] = counts.get(cell, {}).get(status, 0) + 1
        per_metric = values.setdefault(cell, {})
        for metric in metrics:
            per_metric.setdefault(metric, {})
            value = row.get(metric, math.nan)
            if status == OK and value is not None and math.isfinite(float(value)):
                per_metric[metric][int(row["seed"])] = float(value)
    return Baseline(results.name, label, results.primary_metric, values, counts, {})


def baseline_of_runs(
    history: RunHistory, template: Results, last: int, metrics: Sequence[str], store: Any = None
) -> Baseline:
    """`check --against-last N`: the N runs before the latest one, each seed's value averaged over them.

    With the store, the baseline's environment (hosts, devices, versions) is that of those runs'
    trials as stored, so `check` can tell whether speed is comparable.

    Raises:
        HarnessError: fewer than N + 1 runs of the suite are stored (the latest is the one checked).
    """
    if last < 1:
        raise HarnessError(f"--against-last: expected a number of runs >= 1, got {last}.")
    ids = history.runs["id"].tolist()
    if len(ids) < last + 1:
        raise HarnessError(
            f"--against-last {last}: the store holds {len(ids)} run(s) of suite {history.suite!r}; the latest is "
            f"the one checked, so {last} more are needed before it. Fix: pass a smaller N, or use --baseline FILE "
            "(runs are recorded by `harness run` from this version on)."
        )
    chosen = ids[-last - 1 : -1]
    pooled: dict[Cell, dict[str, dict[int, list[float]]]] = {}
    counts: dict[Cell, dict[str, int]] = {}
    for run_id in chosen:
        baseline = baseline_of(history.run_results(run_id, template), metrics, "")
        for cell, per_metric in baseline.values.items():
            for metric, seeds in per_metric.items():
                for seed, value in seeds.items():
                    pooled.setdefault(cell, {}).setdefault(metric, {}).setdefault(seed, []).append(value)
        for cell, statuses in baseline.trial_counts.items():
            for status, count in statuses.items():
                counts.setdefault(cell, dict.fromkeys(TRIAL_STATUSES, 0))[status] += count
    values = {
        cell: {metric: {seed: float(np.mean(found)) for seed, found in seeds.items()} for metric, seeds in per.items()}
        for cell, per in pooled.items()
    }
    started = history.runs.set_index("id").loc[chosen[0], "started_at"]
    environment: dict[str, Any] = {}
    if store is not None:
        hashes = history.values.loc[history.values["run_id"].isin(chosen), "hash"].unique().tolist()
        environment = environment_of(store.trials_frame(hashes))
    return Baseline(history.suite, str(started), template.primary_metric, values, counts, environment)


def history_table(
    history: RunHistory, template: Results, metric: str, tolerance: Tolerance, min_seeds: int
) -> pd.DataFrame:
    """Per run (oldest first), arm and backend: the metric's n, mean and 95% CI over the run's 'ok' seeds,
    how many of its trials the run trained (the rest it reused), and the step from the run before
    (`harness check`'s verdict of this run against that one, its change and Holm-adjusted p; '' for
    the first run, NEW for an arm the run before lacked). Columns HISTORY_COLUMNS."""
    frames = []
    options = CheckOptions(metrics={metric: tolerance}, min_seeds=min_seeds)
    previous: Results | None = None
    for index, run_id in enumerate(history.runs["id"], start=1):
        results = history.run_results(run_id, template)
        final = results.final()
        if metric not in final.columns:
            raise HarnessError(
                f"history: metric {metric!r} is not among the run's metrics ({', '.join(results.metric_names)})."
            )
        values = final[["arm", "backend", metric]].copy()
        values.loc[final["status"] != OK, metric] = np.nan
        table = describe_groups(values, ["arm", "backend"], [metric])
        rows = history.values[history.values["run_id"] == run_id].drop_duplicates("hash")
        trained = rows[~rows["reused"]].groupby(["arm", "backend"]).size().rename("trained")
        table = table.merge(trained, left_on=["arm", "backend"], right_index=True, how="left")
        table["trained"] = table["trained"].fillna(0).astype(int)
        steps: dict[Cell, tuple[str, float, float]] = {}
        if previous is not None:
            for verdict in compare(results, baseline_of(previous, [metric], ""), options):
                steps[(verdict.arm, verdict.backend)] = (verdict.status, verdict.change, verdict.p_holm)
        table["step"] = [
            steps.get((arm, backend), ("", math.nan, math.nan))[0]
            for arm, backend in zip(table["arm"], table["backend"])
        ]
        table["change"] = [
            steps.get((arm, backend), ("", math.nan, math.nan))[1]
            for arm, backend in zip(table["arm"], table["backend"])
        ]
        table["p_holm"] = [
            steps.get((arm, backend), ("", math.nan, math.nan))[2]
            for arm, backend in zip(table["arm"], table["backend"])
        ]
        run = history.runs[history.runs["id"] == run_id].iloc[0]
        frames.append(
            table.assign(run=index, run_id=run_id, started_at=run["started_at"], commit=history.commit_label(run_id))
        )
        previous = results
    if not frames:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(HISTORY_COLUMNS)]


def history_text(table: pd.DataFrame, metric: str, tolerance: Tolerance) -> str:
    """The history as a plain-text table, a step's verdict beside the run that made it."""
    lines = [
        f"{metric}: mean ± 95% CI half-width over ok seeds per run; step = `harness check` of the run against the "
        f"one before (tolerance {tolerance}, paired by seed)"
    ]
    header = ("run", "date", "commit", "arm", "backend", "n", metric, "trained", "step", "change")
    rows = []
    for row in table.to_dict("records"):
        half = (row["ci_high"] - row["ci_low"]) / 2 if math.isfinite(row["ci_high"]) else math.nan
        value = f"{row['mean']:.4g} ± {half:.2g}" if math.isfinite(half) else f"{row['mean']:.4g}"
        rows.append(
            (
                str(row["run"]),
                str(row["started_at"])[:16].replace("T", " "),
                str(row["commit"]),
                str(row["arm"]),
                str(row["backend"]),
                str(int(row["n"])),
                value,
                str(row["trained"]),
                str(row["step"]),
                f"{row['change']:+.4g}" if math.isfinite(row["change"]) else "",
            )
        )
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    for line in (header, *rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return "\n".join(lines)
