"""Paired comparisons (arm vs reference, backend vs backend), time to target and grid pivots.

Seeds pair the runs: with shared initial weights and the harness's batch order, seed s of
arm A and seed s of arm B start from the same weights (when the model is the same) and see
the same batches, so their difference removes the seed's share of the variance. Only trials
with status 'ok' and a finite value enter a pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from harness.analysis.pairing import initial_weights_pairing
from harness.analysis.robust import IMPROVEMENT_COLUMNS, improvement_row, median_time
from harness.analysis.statistics import ALPHA, holm, paired_test
from harness.measures import DIVERGED, OK, SPEED_METRIC, is_higher_better

COMPARISON_COLUMNS = (
    "arm",
    "backend",
    "reference",
    "metric",
    "n_pairs",
    "mean_reference",
    "mean_arm",
    "mean_difference",
    "ci_low",
    "ci_high",
    "t_statistic",
    "p_value",
    "p_holm",
    "cohens_dz",
    "significant",
    "verdict",
    "initial_weights",
    *IMPROVEMENT_COLUMNS,
)
BACKEND_DELTA_COLUMNS = (
    "arm",
    "backend",
    "versus",
    "metric",
    "n_pairs",
    "mean_backend",
    "mean_versus",
    "mean_difference",
    "ci_low",
    "ci_high",
    "max_abs_difference",
    "t_statistic",
    "p_value",
    "p_holm",
)
TARGET_COLUMNS = ("hash", "arm", "backend", "seed", "status", "metric", "target", "epoch", "seconds", "reached")


def values_by_cell(final: pd.DataFrame, metric: str) -> dict[tuple[str, str], pd.Series]:
    """(arm, backend) -> the metric of its 'ok' trials, indexed by seed (one groupby, no per-arm filtering)."""
    ok = final.loc[final["status"] == OK, ["arm", "backend", "seed", metric]]
    # one sort and numpy splits instead of iterating a groupby: 2,000 arms took seconds that way
    codes = ok.groupby(["arm", "backend"], sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    values = ok[metric].to_numpy(dtype=np.float64)[order]
    seeds = ok["seed"].to_numpy()[order]
    arms, backends = ok["arm"].to_numpy()[order], ok["backend"].to_numpy()[order]
    ends = [*starts[1:], len(order)]
    return {
        cast("tuple[str, str]", (arms[start], backends[start])): pd.Series(values[start:end], index=seeds[start:end])
        for start, end in zip(starts, ends)
    }


def first_rows(final: pd.DataFrame, keys: Sequence[str]) -> dict[Any, dict[str, Any]]:
    """keys -> the first trial row (as a dict) of each group: the arm's labels."""
    firsts = final.drop_duplicates(list(keys))
    index = firsts[list(keys)].itertuples(index=False, name=None)
    rows = cast("list[dict[str, Any]]", firsts.to_dict("records"))
    return {key if len(keys) > 1 else key[0]: row for key, row in zip(index, rows)}


def paired_by_seed(first: pd.Series, second: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Align two per-seed series on their common seeds (sorted)."""
    # positions, not .loc: one .loc per arm was most of a 2,000-arm grid's comparisons (seeds are unique per cell)
    _, in_first, in_second = np.intersect1d(first.index.to_numpy(), second.index.to_numpy(), return_indices=True)
    return first.to_numpy()[in_first], second.to_numpy()[in_second]


# Every seed gives the same difference (to float rounding): no spread, so no test, and d_z is undefined
# rather than ~1e15 (`statistics.paired_test`).
NO_SPREAD_VERDICT = "no test: every seed gives the same difference"


def _verdict(row: Mapping[Any, Any], metric: str) -> str:
    if not row["significant"]:
        return "no significant difference"
    improved = (float(row["mean_difference"]) > 0) == is_higher_better(metric)
    return "better" if improved else "worse"


def compare_arms(
    final: pd.DataFrame,
    *,
    metric: str,
    references: Mapping[str, str],
    arms: Sequence[str],
    backends: Sequence[str],
    axes: Sequence[str],
    trials: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every arm vs its own reference arm on `metric`, per backend, paired by seed.

    `references` maps each arm to the arm it is compared with (`ReportOptions.reference_arms`,
    or one arm for all); the row's `reference` column names it. Arms that are their own
    reference, or have none, get no row.

    Differences are arm - reference. p is the two-sided paired t-test (scipy.stats.ttest_rel);
    p_holm is Holm-adjusted over every row of the returned table (the whole grid x backends for
    this metric); significant means p_holm < ALPHA (0.05). Cohen's d_z = mean(d) / std(d).
    When the differences agree to float rounding, t, p and d_z are NaN and the verdict says so
    (NO_SPREAD_VERDICT): identical differences show no seed noise, not certainty.
    The verdict says 'better'/'worse' in the metric's own direction (higher accuracy, lower loss).
    initial_weights says whether the two arms' layers started from identical tensors (identical,
    partly (layers X differ), no; '-' without `trials` holding the stored specs: harness.analysis.pairing).
    """
    cells = values_by_cell(final, metric)
    present = first_rows(final, ["arm", "backend"])
    empty = pd.Series(dtype=np.float64)
    rows, improvements = [], []
    for backend in backends:
        for arm in arms:
            reference = references.get(arm, arm)
            if arm == reference or (arm, backend) not in present:
                continue
            reference_values = cells.get((reference, backend), empty)
            arm_values, paired_reference = paired_by_seed(cells.get((arm, backend), empty), reference_values)
            test = paired_test(arm_values, paired_reference)
            # Unpaired, over every ok run of each (not only the common seeds): the Mann-Whitney form.
            improvement = improvement_row(
                cells.get((arm, backend), empty).to_numpy(), reference_values.to_numpy(), metric
            )
            labels = present[(arm, backend)]
            improvements.append(improvement)
            rows.append(
                {
                    "arm": arm,
                    "backend": backend,
                    "reference": reference,
                    "metric": metric,
                    **test,
                    **{axis: labels[axis] for axis in axes},
                }
            )
    table = pd.DataFrame(rows, columns=[*COMPARISON_COLUMNS[:2], *axes, *COMPARISON_COLUMNS[2:-3]])
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=np.float64)) if len(table) else []
    table["significant"] = (table["p_holm"] < ALPHA).astype(bool)
    table["verdict"] = [
        NO_SPREAD_VERDICT if row.get("no_spread") else _verdict(record, metric)
        for row, record in zip(rows, table.to_dict("records"))
    ]
    table["initial_weights"] = initial_weights_pairing(trials if trials is not None else final, rows)
    for column in IMPROVEMENT_COLUMNS:
        table[column] = [improvement[column] for improvement in improvements]
    return table


def compare_backends(
    final: pd.DataFrame, *, metrics: Sequence[str], arms: Sequence[str], backends: Sequence[str], axes: Sequence[str]
) -> pd.DataFrame:
    """Per arm and metric: the first backend minus each other backend, paired by seed.

    For a framework-independent spec the true difference is 0, so a confidence interval that
    excludes 0 marks a framework effect. p_holm is Holm-adjusted per (metric, versus) over arms.
    Empty (with its columns) when fewer than two backends ran.
    """
    columns = [*BACKEND_DELTA_COLUMNS[:1], *axes, *BACKEND_DELTA_COLUMNS[1:]]
    if len(backends) < 2:
        return pd.DataFrame(columns=columns)
    first, others = backends[0], backends[1:]
    present = first_rows(final, ["arm"])
    cells = {metric: values_by_cell(final, metric) for metric in metrics}
    empty = pd.Series(dtype=np.float64)
    rows = []
    for arm in arms:
        if arm not in present:
            continue
        labels = {axis: present[arm][axis] for axis in axes}
        for versus in others:
            for metric in metrics:
                a, b = paired_by_seed(cells[metric].get((arm, first), empty), cells[metric].get((arm, versus), empty))
                test = paired_test(a, b)
                finite = np.isfinite(a) & np.isfinite(b)
                largest = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else math.nan
                rows.append(
                    {
                        "arm": arm,
                        **labels,
                        "backend": first,
                        "versus": versus,
                        "metric": metric,
                        "n_pairs": test["n_pairs"],
                        "mean_backend": test["mean_arm"],
                        "mean_versus": test["mean_reference"],
                        "mean_difference": test["mean_difference"],
                        "ci_low": test["ci_low"],
                        "ci_high": test["ci_high"],
                        "max_abs_difference": largest,
                        "t_statistic": test["t_statistic"],
                        "p_value": test["p_value"],
                    }
                )
    table = pd.DataFrame(rows, columns=[column for column in columns if column != "p_holm"])
    table["p_holm"] = np.nan
    for _, index in table.groupby(["metric", "versus"], sort=False).groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p_value"].to_numpy(dtype=np.float64))
    return table[columns]


def time_to_target(
    trials: pd.DataFrame, metrics: pd.DataFrame, targets: Mapping[str, float], axes: Sequence[str]
) -> pd.DataFrame:
    """Per trial and target: the first epoch whose `metric` reaches `target`, and when.

    'Reaches' is >= for accuracy and r2, <= for losses and mae. seconds = train_seconds * epoch /
    epochs trained (the training time pro-rated, evaluation excluded; epochs trained counts a
    diverged epoch too, as its steps were timed). epoch and seconds are NaN when never reached.
    Every status is listed; summaries use 'ok' and 'diverged' trials (TARGET_STATUSES).
    """
    columns = [*TARGET_COLUMNS[:4], *axes, *TARGET_COLUMNS[4:]]
    base = trials[
        ["hash", "arm", "backend", "seed", *axes, "status", SPEED_METRIC, "epochs_completed", "diverged_epoch"]
    ]
    frames = []
    for metric, target in targets.items():
        rows = metrics[metrics["metric"] == metric]
        values = rows["value"].to_numpy(dtype=np.float64)
        hit = values >= target if is_higher_better(metric) else values <= target
        first_epoch = rows[hit].groupby("hash")["epoch"].min()
        frame = base.copy()
        frame["metric"], frame["target"] = metric, target
        frame["epoch"] = frame["hash"].map(first_epoch).astype("float64")
        trained = np.where(
            frame["status"] == DIVERGED,
            frame["diverged_epoch"].astype("float64").fillna(0),
            frame["epochs_completed"].astype("float64"),
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            seconds = frame[SPEED_METRIC].to_numpy(dtype=np.float64) * frame["epoch"].to_numpy() / trained
        frame["seconds"] = np.where(frame["epoch"].to_numpy() == 0, 0.0, seconds)
        frame["reached"] = frame["epoch"].notna()
        frames.append(frame[columns])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


TARGET_SUMMARY_COLUMNS = (
    "metric",
    "target",
    "n",
    "n_reached",
    "median_epoch",
    "median_seconds",
    "median_epoch_ci_low",
    "median_epoch_ci_high",
    "median_seconds_ci_low",
    "median_seconds_ci_high",
    "n_diverged",
)
# Trials whose time to a target counts: a diverged one never reaches it after diverging (it is
# censored, not dropped: dropping it would leave only the runs that trained well). A failed or
# timed-out trial says nothing about the model and stays out, as in every other statistic.
TARGET_STATUSES = (OK, DIVERGED)


def summarize_time_to_target(
    per_trial: pd.DataFrame, *, arms: Sequence[str], backends: Sequence[str], axes: Sequence[str]
) -> pd.DataFrame:
    """Per arm, backend and target metric over 'ok' and 'diverged' trials: n, n_reached, the median
    epoch and seconds to reach the target, their 95% intervals, and how many trials diverged.

    A trial that never reaches the target (an ok one that ends short of it, a diverged one that had
    not reached it before diverging) is censored at +inf, as AlgoPerf counts it: never reached, not
    dropped. The median is the Kaplan-Meier median (`harness.analysis.robust.median_time`), which
    with every censored time at +inf equals numpy's median with those trials as +inf, so it is NaN
    ('not reached') when half or more of the trials never get there; no survivor bias. The interval
    is Brookmeyer-Crowley's; its high end is NaN ('not reached') when the data cannot rule out that
    the median is never reached.
    """
    columns = ["arm", "backend", *axes, *TARGET_SUMMARY_COLUMNS]
    rows = []
    counted = per_trial[per_trial["status"].isin(TARGET_STATUSES)]
    for (arm, backend, metric), group in counted.groupby(["arm", "backend", "metric"], sort=False):
        reached = group["reached"].to_numpy(dtype=bool)
        epochs = median_time(group["epoch"].fillna(np.inf).to_numpy(dtype=np.float64), reached)
        seconds = median_time(group["seconds"].fillna(np.inf).to_numpy(dtype=np.float64), reached)
        rows.append(
            {
                "arm": arm,
                "backend": backend,
                **{axis: group[axis].iloc[0] for axis in axes},
                "metric": metric,
                "target": group["target"].iloc[0],
                "n": len(group),
                "n_reached": int(reached.sum()),
                "median_epoch": epochs.median,
                "median_seconds": seconds.median,
                "median_epoch_ci_low": epochs.low,
                "median_epoch_ci_high": epochs.high,
                "median_seconds_ci_low": seconds.low,
                "median_seconds_ci_high": seconds.high,
                "n_diverged": int((group["status"] == DIVERGED).sum()),
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    arm_rank: dict[Any, int] = {arm: index for index, arm in enumerate(arms)}
    backend_rank: dict[Any, int] = {backend: index for index, backend in enumerate(backends)}
    order = sorted(
        range(len(table)),
        key=lambda i: (
            arm_rank.get(table["arm"].iat[i], len(arm_rank)),
            backend_rank.get(table["backend"].iat[i], len(backend_rank)),
        ),
    )
    return table.iloc[order].reset_index(drop=True)


def pivot_grid(
    final: pd.DataFrame,
    *,
    metric: str,
    axes: Sequence[str],
    variant_order: Mapping[str, Sequence[str]],
    backend: str | None = None,
) -> pd.DataFrame:
    """Mean of `metric` over 'ok' seeds for every (axes[0], axes[1]) cell: rows axes[0], columns axes[1].

    Args:
        backend: only this backend's trials; None pools every backend.
    """
    ok = final[final["status"] == OK]
    if backend is not None:
        ok = ok[ok["backend"] == backend]
    rows_axis, columns_axis = axes
    table = ok.groupby([rows_axis, columns_axis])[metric].mean().unstack(columns_axis)
    table = table.reindex(index=list(variant_order[rows_axis]), columns=list(variant_order[columns_axis]))
    table.index.name, table.columns.name = rows_axis, columns_axis
    return table
