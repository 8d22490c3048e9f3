"""Per-trial tables built from the store's frames: tidy epochs and final/best metrics.

Input frames (see `harness.store`): `trials` has one row per trial (hash, arm, backend, seed,
status, ..., one column per grid axis); `metrics` is long (hash, epoch, metric, value), epoch 0
is before training, NaN marks a diverged epoch's values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.measures import (
    BEST_VALIDATION_EPOCH,
    RESTORED_EPOCH,
    SELECTION_METRIC,
    STATUS_COUNT_COLUMNS,
    TIMING_COLUMNS,
    TRIAL_STATUSES,
    at_best_validation_name,
    best_name,
    has_best_name,
    is_higher_better,
    is_test_metric,
    metric_sort_key,
)

TRIAL_REQUIRED = ("hash", "arm", "backend", "seed", "status")
METRIC_REQUIRED = ("hash", "epoch", "metric", "value")


def order_metrics(names: Iterable[str]) -> list[str]:
    """The distinct `names` in display order (see `metric_sort_key`)."""
    return sorted(set(names), key=metric_sort_key)


def check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    """Raise ValueError naming the missing columns (a bug in the caller, not a user error)."""
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns {missing}; it has {list(frame.columns)}")


def _sort_codes(values: pd.Series) -> np.ndarray:
    """Numbers that sort like `values`: the values themselves when numeric, sorted factor codes otherwise."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, _ = pd.factorize(values.astype(str), sort=True)
    return codes


def rank_codes(values: pd.Series, rank: Mapping[str, int]) -> np.ndarray:
    """rank[value] for every value (len(rank) for values not in it), without a per-row Python map.

    pandas' Series.map over (Arrow-backed) strings is slow on 10^5+ rows; factorize once instead.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    lookup = np.array([rank.get(unique, len(rank)) for unique in uniques], dtype=np.float64)
    return lookup[codes] if len(codes) else np.zeros(0)


def sort_trials(
    frame: pd.DataFrame, arms: Sequence[str], backends: Sequence[str], extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Sort rows by arm (suite order), backend (given order), then seed and the `extra` columns.

    Stable, and a single np.lexsort on numeric codes (fast on the 10^5-10^6 rows of epochs()).
    """
    keys = [
        rank_codes(frame["arm"], {arm: index for index, arm in enumerate(arms)}),
        rank_codes(frame["backend"], {backend: index for index, backend in enumerate(backends)}),
    ]
    keys += [_sort_codes(frame[column]) for column in ("seed", *extra) if column in frame.columns]
    order = np.lexsort(keys[::-1])  # lexsort's last key is the primary one
    return frame.iloc[order].reset_index(drop=True)


def label_columns(axes: Sequence[str]) -> list[str]:
    """The per-trial label columns every table starts with."""
    return ["hash", "arm", "backend", "seed", *axes]


def tidy_epochs(
    trials: pd.DataFrame, metrics: pd.DataFrame, axes: Sequence[str], metric_rank: dict[str, int] | None = None
) -> pd.DataFrame:
    """Per trial per epoch per metric: hash, arm, backend, seed, *axes, status, epoch, metric, value.

    Rows follow the order of `trials` (sort it first), then epoch, then `metric_rank` (default:
    display order). Metric rows of hashes absent from `trials` are dropped (another suite's).
    """
    position = pd.Index(trials["hash"]).get_indexer(metrics["hash"])
    kept = metrics[position >= 0]
    position = position[position >= 0]
    if metric_rank is None:
        metric_rank = {name: index for index, name in enumerate(order_metrics(kept["metric"].unique()))}
    order = np.lexsort((rank_codes(kept["metric"], metric_rank), kept["epoch"].to_numpy(), position))
    labels = trials[[*label_columns(axes), "status"]].iloc[position[order]].reset_index(drop=True)
    measured = kept[["epoch", "metric", "value"]].iloc[order].reset_index(drop=True)
    return pd.concat([labels, measured], axis=1)


def final_table(trials: pd.DataFrame, metrics: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """One row per trial: labels, status, timings, final-epoch metrics (wide), best_<metric> and
    at_best_validation_<test metric>.

    The final epoch is the trial's last recorded epoch (`final_epoch`), or, for a trial that early
    stopping restored to its best epoch, that epoch (harness.measures.RESTORED_EPOCH). A diverged trial's final
    epoch holds only its NaN minibatch loss, so its final metrics are NaN: a diverged run has no
    final accuracy. `best_<metric>` is the best finite value over every recorded epoch (epoch 0
    included): the maximum where higher is better (accuracy, r2), else the minimum (harness.measures),
    for every metric but test ones. A test metric's best value over epochs would pick the epoch by
    the test set (an oracle); instead `best_validation_epoch` is the first epoch of least finite
    validation loss (the epoch whose test predictions the store keeps as is_best_validation) and
    `at_best_validation_<test metric>` the test value there (NaN without a validation split).
    """
    names = order_metrics(metrics["metric"].unique())
    best_names = [name for name in names if has_best_name(name)]
    selected_names = [at_best_validation_name(name) for name in names if is_test_metric(name)]
    if len(metrics):
        last_epoch = metrics.groupby("hash", sort=False)["epoch"].max()
        # early stopping with restore_best: the trial ends with its best epoch's weights, whose
        # evaluation is recorded at that epoch (harness.measures.RESTORED_EPOCH)
        restored = metrics[metrics["metric"].to_numpy() == RESTORED_EPOCH]
        if len(restored):
            last_epoch = last_epoch.copy()
            last_epoch.loc[restored["hash"].to_numpy()] = restored["epoch"].to_numpy()
        at_last = metrics[metrics["epoch"].to_numpy() == metrics["hash"].map(last_epoch).to_numpy()]
        final_values = at_last.pivot(index="hash", columns="metric", values="value")
        extremes = metrics.groupby(["hash", "metric"], sort=False)["value"].agg(["max", "min"])
        best_max = extremes["max"].unstack("metric")
        best_min = extremes["min"].unstack("metric")
        best = pd.DataFrame(
            {best_name(name): (best_max[name] if is_higher_better(name) else best_min[name]) for name in best_names},
            index=final_values.index,
        )
        wide = final_values.reindex(columns=names).join(best, how="outer")
        wide = wide.join(_at_best_validation(metrics, names), how="left")
        wide.insert(0, "final_epoch", last_epoch)
    else:
        wide = pd.DataFrame(
            columns=["final_epoch", *names, *(best_name(name) for name in best_names), BEST_VALIDATION_EPOCH]
        )
    wide = wide.reindex(columns=[*wide.columns, *(c for c in selected_names if c not in wide.columns)])
    present = [
        column
        for column in ("error", "diverged_epoch", "epochs_completed", *TIMING_COLUMNS)
        if column in trials.columns
    ]
    base = trials[[*label_columns(axes), "status", *present]]
    # Align by position (reindex on hash) rather than merge: works whatever the index dtypes, and a
    # trial without metric rows (failed before epoch 0) gets NaN everywhere.
    aligned = wide.reindex(base["hash"].to_numpy()).reset_index(drop=True)
    table = pd.concat([base.reset_index(drop=True), aligned], axis=1)
    return table.astype({"final_epoch": "Float64"}).astype({"final_epoch": "Int64"})


def _at_best_validation(metrics: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Per hash: best_validation_epoch (the first epoch of least finite validation loss) and every
    test metric's value at that epoch (at_best_validation_<metric>); empty frames without validation."""
    test_names = [name for name in names if is_test_metric(name)]
    columns = [BEST_VALIDATION_EPOCH, *(at_best_validation_name(name) for name in test_names)]
    validation = metrics[(metrics["metric"] == SELECTION_METRIC) & np.isfinite(metrics["value"].astype("float64"))]
    if validation.empty:
        return pd.DataFrame(columns=columns, dtype="float64")
    ordered = validation.sort_values(["hash", "epoch"], kind="stable")
    first_least = ordered.loc[ordered.groupby("hash", sort=False)["value"].idxmin()]
    epochs = first_least.set_index("hash")["epoch"]
    tests = metrics[metrics["metric"].isin(test_names)]
    chosen = tests[tests["epoch"].to_numpy() == tests["hash"].map(epochs).to_numpy()]
    values = chosen.pivot(index="hash", columns="metric", values="value").reindex(columns=test_names)
    values.columns = [at_best_validation_name(name) for name in values.columns]
    values.insert(0, BEST_VALIDATION_EPOCH, epochs.astype("float64"))
    return values.reindex(columns=columns)


def status_counts(trials: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per `keys` group: n_trials and n_<status> for every trial status (harness.measures.TRIAL_STATUSES)."""
    counts = pd.crosstab([trials[key] for key in keys], trials["status"]) if len(trials) else pd.DataFrame()
    counts = counts.reindex(columns=list(TRIAL_STATUSES), fill_value=0)
    counts.columns = list(STATUS_COUNT_COLUMNS)
    counts.insert(0, "n_trials", counts.sum(axis=1))
    return counts.reset_index() if len(counts) else pd.DataFrame(columns=[*keys, "n_trials", *counts.columns[1:]])
