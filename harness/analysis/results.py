"""`Results`: every table the harness derives from one suite's stored trials.

Build it from the store's frames (`harness.results_folder.suite_results` does) and ask for tables:

    results = Results(trials, metrics, arms=("sgd", "adam"), axes=("optimizer",), name="optimizers")
    results.summary()          # per arm and backend: mean, std, n, 95% CI over seeds
    results.comparisons()      # every arm vs the reference arm, paired by seed, Holm-corrected
    print(results.summary_text())

Every method returns a fresh DataFrame (computed once, then copied). Only trials with status
'ok' enter a statistic; the others are counted (n_diverged, n_failed, n_timeout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.analysis import comparisons, export, text
from harness.analysis.options import (
    ArmLabels,
    ReportOptions,
    check_metric_name,
    check_report_options,
    default_metric,
    infer_task,
)
from harness.analysis.robust import IQM_COLUMNS, iqm_groups
from harness.analysis.statistics import DESCRIBE_COLUMNS, describe_groups, metric_bounds, t_half_widths
from harness.analysis.tables import (
    METRIC_REQUIRED,
    TRIAL_REQUIRED,
    check_columns,
    final_table,
    order_metrics,
    sort_trials,
    status_counts,
    tidy_epochs,
)
from harness.errors import SpecError
from harness.measures import (
    HELD_OUT_SPLITS,
    LOSS,
    OK,
    SPEED_METRIC,
    STATUS_COUNT_COLUMNS,
    TRAIN_LOSS,
    TRAINING_SPLIT,
    is_higher_better,
    metric_name,
)

if TYPE_CHECKING:
    from harness.search.tables import SearchTables

BACKEND_PREFERENCE = ("torch", "keras")  # differences read "torch - keras"; other backends follow, sorted


def order_backends(names: Sequence[str]) -> tuple[str, ...]:
    """Backends in reporting order: torch, keras, then any other backend alphabetically."""
    distinct = set(names)
    known = [name for name in BACKEND_PREFERENCE if name in distinct]
    return tuple(known + sorted(distinct - set(known)))


class Results:
    """The stored results of one suite, and every table derived from them.

    Args:
        trials: one row per trial: hash, arm, backend, seed, status, error, diverged_epoch,
            epochs_completed, train_seconds, eval_seconds, wall_seconds, host, versions, device,
            spec, ... and one column per grid axis holding the trial's variant label.
        metrics: long: hash, epoch, metric, value (epoch 0 = before training; NaN = diverged).
        arms: the suite's arms in order (arms found only in `trials` are appended).
        axes: the grid's axis keys in order (column names of `trials`).
        name: the suite's name.
        description: the suite's description.
        report_options: the suite's `report:` mapping (reference, metric, targets).
        backends: reporting order of backends (default: torch, keras, then the rest sorted).
        diagnostics: long per-layer diagnostics (hash, epoch, layer, layer_name, statistic, value;
            `Store.diagnostics_frame`), or None when none were recorded.
        arm_labels: arm -> {axis: variant label} for every arm of the suite, which a per-axis
            reference (`reference: {optimizer: sgd}`) needs; arms missing here take their labels
            from `trials`, so hand-built Results need not pass it.

    Attributes:
        report_options: the validated `report:` block (`ReportOptions`): `reference_for(arm)`
            is the arm each arm is compared with, `describe_reference()` the reference as text.
        reference: the reference arm (with a per-axis reference, the first arm's).

    Raises:
        SpecError: bad `report:` options (unknown key, reference not an arm, a metric that
            was not recorded, a target that is not a number).
    """

    def __init__(
        self,
        trials: pd.DataFrame,
        metrics: pd.DataFrame,
        arms: Sequence[str],
        axes: Sequence[str],
        name: str,
        description: str = "",
        report_options: Mapping[str, Any] | None = None,
        *,
        backends: Sequence[str] | None = None,
        diagnostics: pd.DataFrame | None = None,
        arm_labels: ArmLabels | None = None,
        predictions: pd.DataFrame | None = None,
        search: SearchTables | None = None,
    ) -> None:
        check_columns(trials, (*TRIAL_REQUIRED, *axes), "trials")
        # the hyperparameter search that chose each arm's values (harness.search.tables), when the suite searched
        self.search = search
        check_columns(metrics, METRIC_REQUIRED, "metrics")
        self.trials = trials.reset_index(drop=True)
        self.metrics = metrics[list(METRIC_REQUIRED)].astype({"epoch": "int64", "value": "float64"})
        self.axes = tuple(axes)
        extra_arms = [arm for arm in pd.unique(self.trials["arm"]) if arm not in set(arms)]
        self.arms = tuple(arms) + tuple(extra_arms)
        self.backends = tuple(backends) if backends else order_backends(list(self.trials["backend"].unique()))
        self.name = name
        self.description = description or ""
        labels = {**_labels_from_trials(self.trials, self.axes), **(arm_labels or {})}
        options = check_report_options(report_options, self.arms, arm_labels=labels)
        self.report_options: ReportOptions = options
        self.reference = options.reference
        self.metric_names = order_metrics(self.metrics["metric"].unique())
        self.task = infer_task(self.metric_names)
        where = "report"
        if self.metric_names:  # no results yet: nothing to check names against
            if options.metric is not None:
                check_metric_name(options.metric, self.metric_names, f"{where}.metric")
            for target_metric in options.targets:
                check_metric_name(target_metric, self.metric_names, f"{where}.targets")
        self.primary_metric = options.metric or default_metric(self.metric_names)
        self.targets = dict(options.targets)
        self._cache: dict[tuple[Any, ...], pd.DataFrame] = {}
        self._diagnostics = diagnostics
        # Store.predictions_frame() of these trials (None: not read; the example-level tables are then empty)
        self.predictions = predictions

    # -- helpers ---------------------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], build: Any) -> pd.DataFrame:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key].copy()

    def variant_order(self) -> dict[str, list[str]]:
        """Per axis, its variant labels in suite order (the order their arms appear)."""
        first = self.trials.drop_duplicates("arm").set_index("arm")
        order: dict[str, list[str]] = {axis: [] for axis in self.axes}
        for arm in self.arms:
            if arm not in first.index:
                continue
            for axis in self.axes:
                label: Any = first.at[arm, axis]
                if label not in order[axis]:
                    order[axis].append(label)
        return order

    def arm_labels(self) -> pd.DataFrame:
        """One row per arm that ran: arm and its variant label on every axis, in suite order."""
        labels = self.trials.drop_duplicates("arm")[["arm", *self.axes]]
        return sort_trials(labels.assign(backend="", seed=0), self.arms, self.backends)[["arm", *self.axes]]

    # -- per-trial tables ---------------------------------------------------------------------

    def diagnostics(self) -> pd.DataFrame:
        """Per-layer diagnostics (harness.diagnostics) with labels: hash, arm, backend, seed, *axes, status,
        epoch, layer, layer_name, statistic, value; in suite order. Empty (same columns) when none were recorded."""
        columns = [
            "hash",
            "arm",
            "backend",
            "seed",
            *self.axes,
            "status",
            "epoch",
            "layer",
            "layer_name",
            "statistic",
            "value",
        ]

        def build() -> pd.DataFrame:
            if self._diagnostics is None or self._diagnostics.empty:
                return pd.DataFrame(columns=columns)
            labels = self.trials[["hash", "arm", "backend", "seed", *self.axes, "status"]]
            table = labels.merge(self._diagnostics, on="hash", how="inner")
            table = sort_trials(table, self.arms, self.backends, extra=("hash", "epoch", "layer"))
            return table[columns].reset_index(drop=True)

        return self._cached(("diagnostics",), build)

    def epochs(self) -> pd.DataFrame:
        """Tidy: one row per trial, epoch and metric (hash, arm, backend, seed, *axes, status, epoch, metric, value)."""

        def build() -> pd.DataFrame:
            ordered = sort_trials(self.trials, self.arms, self.backends, extra=("hash",))
            rank = {name: index for index, name in enumerate(self.metric_names)}
            return tidy_epochs(ordered, self.metrics, self.axes, rank)

        return self._cached(("epochs",), build)

    def final(self) -> pd.DataFrame:
        """One row per trial: labels, status, error, timings, final_epoch, the final value of every
        metric (wide) and best_<metric> over epochs (max for accuracy/r2, min for losses/mae)."""

        def build() -> pd.DataFrame:
            table = final_table(self.trials, self.metrics, self.axes)
            if self.primary_metric not in table.columns:  # nothing recorded yet: the column exists, all NaN
                table[self.primary_metric] = np.nan
            return sort_trials(table, self.arms, self.backends, extra=("hash",))

        return self._cached(("final",), build)

    def failures(self) -> pd.DataFrame:
        """Trials whose status is not 'ok': labels, status, diverged_epoch, epochs_completed, error."""
        final = self.final()
        columns = [
            c
            for c in (
                "hash",
                "arm",
                "backend",
                "seed",
                *self.axes,
                "status",
                "diverged_epoch",
                "epochs_completed",
                "error",
            )
            if c in final.columns
        ]
        return final.loc[final["status"] != OK, columns].reset_index(drop=True)

    def environment(self) -> pd.DataFrame:
        """Distinct (backend, host, versions, device, provenance) combinations and how many trials ran on each."""
        columns = [c for c in ("backend", "host", "versions", "device", "provenance") if c in self.trials.columns]
        table = self.trials.groupby(columns, dropna=False, sort=False).size().rename("n_trials").reset_index()
        return sort_trials(table.assign(arm=""), self.arms, self.backends, extra=("host",))[[*columns, "n_trials"]]

    # -- statistics over seeds ------------------------------------------------------------

    def _described_columns(self) -> list[str]:
        """The columns of a per-arm statistic table: arm, backend, the grid axes, metric, then `describe`'s."""
        return ["arm", "backend", *self.axes, "metric", *DESCRIBE_COLUMNS]

    def summary(self) -> pd.DataFrame:
        """Per arm, backend and metric over the 'ok' seeds: n, mean, std, sem, 95% CI (ci_low, ci_high,
        ci_method), the trial counts per status (n_trials, n_ok, n_diverged, n_failed, n_timeout), and
        the interquartile mean with its 95% stratified bootstrap interval (iqm, iqm_ci_low, iqm_ci_high;
        no interval below 5 seeds: `harness.analysis.robust`), robust where a few seeds dominate.

        Metrics: every final metric and train_seconds. The interval rule (t interval; BCa bootstrap
        only when the t interval leaves a bounded metric's range and n >= 10; t clipped to the bound
        below that) is documented in `harness.analysis.statistics`.
        """

        def build() -> pd.DataFrame:
            final = self.final()
            names = [name for name in [*self.metric_names, SPEED_METRIC] if name in final.columns]
            values = final[["arm", "backend", *names]].copy()
            values.loc[final["status"] != OK, names] = np.nan  # only 'ok' trials enter a statistic
            table = describe_groups(values, ["arm", "backend"], names)
            counts = status_counts(final, ["arm", "backend"])
            table = (
                table.merge(self.arm_labels(), on="arm", how="left")
                .merge(counts, on=["arm", "backend"], how="left")
                .merge(iqm_groups(values, ["arm", "backend"], names), on=["arm", "backend", "metric"], how="left")
            )
            columns = [*self._described_columns(), "n_trials", *STATUS_COUNT_COLUMNS, *IQM_COLUMNS]
            rank = {name: index for index, name in enumerate(names)}
            return sort_trials(
                table[columns].assign(metric_rank=table["metric"].map(rank)),
                self.arms,
                self.backends,
                extra=("metric_rank",),
            ).drop(columns="metric_rank")

        return self._cached(("summary",), build)

    def curves(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Learning curves over the 'ok' seeds: per arm, backend, metric and epoch: n, mean, std and the
        95% t band (ci_low, ci_high) clipped to the metric's range. A vectorized t band, not the
        bootstrap: a report has thousands of (arm, epoch) cells."""
        wanted = tuple(metrics) if metrics is not None else tuple(self.metric_names)

        def build() -> pd.DataFrame:
            epochs = self.epochs()
            ok = epochs[(epochs["status"] == OK) & epochs["metric"].isin(wanted)]
            grouped = ok.groupby(["arm", "backend", "metric", "epoch"], sort=False)["value"]
            table = grouped.agg(n="count", mean="mean", std="std").reset_index()
            half = t_half_widths(table["std"].to_numpy(), table["n"].to_numpy())
            low = table["mean"].to_numpy() - half
            high = table["mean"].to_numpy() + half
            bounds = np.array([metric_bounds(name) for name in table["metric"]]).reshape(-1, 2)
            table["ci_low"] = np.maximum(low, bounds[:, 0]) if len(table) else low
            table["ci_high"] = np.minimum(high, bounds[:, 1]) if len(table) else high
            return sort_trials(table, self.arms, self.backends, extra=("metric", "epoch"))

        return self._cached(("curves", wanted), build)

    def generalization_gap(self) -> pd.DataFrame:
        """Per arm and backend: the train/test gap of the primary metric's measure over 'ok' seeds.

        gap = train - test where higher is better (accuracy, r2), test - train otherwise: positive means
        the model does better on data it trained on (overfitting). The test split falls back to
        validation when no test split was recorded. Columns as `summary()`, metric '<measure>_gap'.
        """

        def build() -> pd.DataFrame:
            measure = self.primary_metric.partition("_")[2] or LOSS
            held_out = next(
                (
                    metric_name(split, measure)
                    for split in HELD_OUT_SPLITS
                    if metric_name(split, measure) in self.metric_names
                ),
                None,
            )
            columns = self._described_columns()
            train = metric_name(TRAINING_SPLIT, measure)
            if held_out is None or train not in self.metric_names:
                return pd.DataFrame(columns=columns)
            final = self.final()
            final = final[final["status"] == OK]
            sign = 1.0 if is_higher_better(measure) else -1.0
            gap = sign * (final[train].to_numpy(dtype=np.float64) - final[held_out].to_numpy(dtype=np.float64))
            final = final.assign(gap=gap)
            table = describe_groups(final, ["arm", "backend"], ["gap"]).assign(metric=f"{measure}_gap")
            table = table.merge(self.arm_labels(), on="arm", how="left")
            return sort_trials(table[columns], self.arms, self.backends)

        return self._cached(("gap",), build)

    # -- comparisons ----------------------------------------------------------------------

    def _check_metric(self, metric: str | None, where: str) -> str:
        metric = metric or self.primary_metric
        return check_metric_name(metric, {*self.metric_names, self.primary_metric, SPEED_METRIC}, where)

    def comparisons(self, reference: str | None = None, metric: str | None = None) -> pd.DataFrame:
        """Every arm vs its reference arm on `metric` (default: the primary metric), per backend,
        paired by seed: mean difference (arm - reference) with its 95% CI, paired t-test p
        (scipy.stats.ttest_rel), Holm-adjusted p over the whole table (computed from the sorted
        p's, `harness.analysis.statistics.holm`), Cohen's d_z, significant (p_holm < 0.05), verdict,
        initial_weights, and the probability that a run of the arm beats a run of its reference
        (probability_of_improvement: Mann-Whitney over every ok run, unpaired, ties half) with its 95%
        stratified bootstrap interval (`harness.analysis.robust`).

        Each arm's reference is `report_options.reference_for(arm)` (the row's `reference` column):
        one arm for all with `report.reference: sgd`, the arm that differs only on the named axes
        with `report.reference: {optimizer: sgd}`. An explicit `reference` arm is used for every arm.
        Arms that are their own reference get no row.

        Raises:
            SpecError: `reference` is not an arm, or `metric` was not recorded.
        """
        if reference and reference not in self.arms:
            raise SpecError(
                f"comparisons: reference {reference!r} is not an arm. Expected one of: {', '.join(self.arms)}."
            )
        if reference:
            references = {arm: reference for arm in self.arms}
        else:
            references = {arm: self.report_options.reference_for(arm) for arm in self.arms}
        metric = self._check_metric(metric, "comparisons metric")
        return self._cached(
            ("comparisons", tuple(references.items()), metric),
            lambda: comparisons.compare_arms(
                self.final(),
                metric=metric,
                references=references,
                arms=self.arms,
                backends=self.backends,
                axes=self.axes,
                trials=self.trials,
            ),
        )

    def backend_deltas(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Per arm, when more than one backend ran: first backend minus each other one (torch - keras),
        paired by seed, for `metrics` (default: the primary metric, the final train loss and
        train_seconds): mean difference, 95% CI, largest |difference|, paired t-test p and Holm p."""
        if metrics is None:
            metrics = [self.primary_metric, *([TRAIN_LOSS] if TRAIN_LOSS in self.metric_names else []), SPEED_METRIC]
            metrics = list(dict.fromkeys(metrics))
        wanted = tuple(self._check_metric(metric, "backend_deltas metric") for metric in metrics)
        return self._cached(
            ("backend_deltas", wanted),
            lambda: comparisons.compare_backends(
                self.final(), metrics=wanted, arms=self.arms, backends=self.backends, axes=self.axes
            ),
        )

    def time_to_target(self) -> pd.DataFrame:
        """Per trial and `report.targets` entry: first epoch reaching the target, its pro-rated training
        seconds, reached flag (see `harness.analysis.comparisons.time_to_target`). Empty without targets."""
        return self._cached(
            ("time_to_target",),
            lambda: sort_trials(
                comparisons.time_to_target(self.final(), self.metrics, self.targets, self.axes),
                self.arms,
                self.backends,
                extra=("metric",),
            ),
        )

    def time_to_target_summary(self) -> pd.DataFrame:
        """Per arm, backend and target over 'ok' and 'diverged' seeds: n, n_reached, median epoch and seconds
        (NaN when half or more never reach it; a run that never reaches it is censored, not dropped),
        their 95% Kaplan-Meier intervals and n_diverged (see `comparisons.summarize_time_to_target`)."""
        return self._cached(
            ("time_to_target_summary",),
            lambda: comparisons.summarize_time_to_target(
                self.time_to_target(), arms=self.arms, backends=self.backends, axes=self.axes
            ),
        )

    def pivot(self, metric: str | None = None, backend: str | None = None) -> pd.DataFrame:
        """For a two-axis grid: axis 1 (rows) x axis 2 (columns) table of the mean of `metric`
        (default: primary) over 'ok' seeds; `backend` None pools every backend.

        Raises:
            SpecError: the grid does not have exactly two axes, or the metric/backend is unknown.
        """
        if len(self.axes) != 2:
            raise SpecError(
                f"pivot: suite {self.name!r} has {len(self.axes)} grid axes {list(self.axes)}; a pivot table needs "
                "exactly two. Use summary() for other grids."
            )
        metric = self._check_metric(metric, "pivot metric")
        if backend is not None and backend not in self.backends:
            raise SpecError(f"pivot: backend {backend!r} did not run. Expected one of: {', '.join(self.backends)}.")
        return self._cached(
            ("pivot", metric, backend),
            lambda: comparisons.pivot_grid(
                self.final(), metric=metric, axes=self.axes, variant_order=self.variant_order(), backend=backend
            ),
        )

    @property
    def resplits_per_seed(self) -> bool:
        """Whether these trials' datasets were cut per seed (`dataset.resplit: per_seed`): their seed
        intervals then include the variance of the data split (Bouthillier et al. 2021)."""
        if "spec" not in self.trials.columns:
            return False
        return any('"resplit":"per_seed"' in str(spec).replace(" ", "") for spec in self.trials["spec"])

    def example_comparisons(self, metric: str | None = None) -> pd.DataFrame:
        """Every row of `comparisons()` (arm vs its reference, per backend) with the example-level
        evidence at the final epoch, from the stored per-example test predictions: McNemar's exact
        test per seed pair (mcnemar_p: the largest, so every pair differs at that level) and the
        two-level (seeds, then examples) bootstrap 95% interval of the accuracy difference arm -
        reference (`harness.analysis.examples`). Empty without predictions (regression and
        sequence tasks, trials stored before schema version 3, or `predictions` not read)."""
        from harness.analysis.examples import EXAMPLE_LEVEL_COLUMNS, LabelCache, example_level_rows, final_predictions

        keys = ["arm", "backend", "reference"]
        predicted = final_predictions(self.trials, self.predictions) if self.predictions is not None else {}
        if not predicted or len(self.arms) < 2 or "spec" not in self.trials.columns:
            return pd.DataFrame(columns=[*keys, *EXAMPLE_LEVEL_COLUMNS])
        labels = LabelCache()
        rows: list[dict[str, Any]] = []
        for row in self.comparisons(metric=metric)[keys].to_dict("records"):
            side = self.trials[self.trials["backend"] == row["backend"]]
            evidence = example_level_rows(
                side[side["arm"] == row["arm"]], side[side["arm"] == row["reference"]], predicted, labels
            )
            if evidence["seeds"]:
                rows.append({**{str(key): value for key, value in row.items()}, **evidence})
        return pd.DataFrame(rows, columns=[*keys, *EXAMPLE_LEVEL_COLUMNS])

    def example_level(self, predictions: pd.DataFrame, arm_a: str, arm_b: str, **options: Any) -> Any:
        """Two arms compared on their per-example test predictions (`Store.predictions_frame()`):
        McNemar's exact test per shared seed and a two-level (seeds, then examples) bootstrap
        interval for the difference in accuracy. Options and result: `harness.analysis.examples.example_level`."""
        from harness.analysis.examples import example_level

        return example_level(self.trials, predictions, arm_a, arm_b, **options)

    # -- output ---------------------------------------------------------------------------

    def write_csv(self, directory: str | Path) -> list[Path]:
        """Write epochs.csv, final.csv, summary.csv, comparisons.csv (when >1 arm), backend_deltas.csv
        (when >1 backend), time_to_target.csv (when targets are set), pivot.csv (two-axis grids),
        plus a .parquet copy of each when pyarrow is installed. Returns the paths written."""
        return export.write_tables(self, Path(directory))

    def summary_text(self) -> str:
        """A compact text table of the per-arm summary for the terminal (see `harness.analysis.text`)."""
        return text.summary_text(self)

    def __repr__(self) -> str:
        return (
            f"Results({self.name!r}: {len(self.trials)} trials, {len(self.arms)} arms, "
            f"backends {list(self.backends)}, primary metric {self.primary_metric!r})"
        )


def _labels_from_trials(trials: pd.DataFrame, axes: Sequence[str]) -> dict[str, dict[str, str]]:
    """arm -> {axis: its variant label} read from each arm's first trial row (labels as text)."""
    firsts = trials.drop_duplicates("arm")
    return {
        str(row["arm"]): {axis: str(row[axis]) for axis in axes} for row in firsts[["arm", *axes]].to_dict("records")
    }
