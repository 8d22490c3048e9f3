"""Two result sets side by side, per arm and backend: the library behind `harness compare A B`.

Each side is a suite YAML file (read from its store) or a results folder (`results/<suite>/`),
opened with `harness.results_folder.open_results`. For every (arm, backend) present on both sides, the
difference B - A of a final metric (default: A's primary metric) over the trials that finished
'ok', with its 95% CI, by the before/after rule `harness check` uses
(`harness.analysis.before_after`, A before, B after):

- paired by seed (a paired t interval) on the seeds both sides ran, when there are at least
  the check's default minimum (3) of them;
- otherwise Welch's unequal-variance t interval, when both sides have that many seeds;
- below that minimum, where `harness check` reports 'insufficient seeds', compare still shows
  the interval the same rule gives with the fewest seeds an interval needs (2): it reports a
  number, it decides nothing. One seed on a side: no interval (NaN), labelled 'welch'.

`compare_results` builds the table, `comparison_figure` the forest plot, `format_table` the
printed text; the command (`harness.cli.compare`) writes compare.csv and compare.png.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness.measures import OK, SPEED_METRIC

if TYPE_CHECKING:  # registering the command in the CLI must not load scipy or matplotlib
    import pandas as pd
    from matplotlib.figure import Figure

    from harness.analysis import Results

COLUMNS = [
    "arm",
    "backend",
    "metric",
    "test",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    # Example level, at the final epoch, on the seeds both sides ran (harness.analysis.examples): NaN
    # without stored per-example predictions on both sides.
    "mcnemar_p",
    "mcnemar_significant",
    "example_ci_low",
    "example_ci_high",
]


def _ok_values(results: Results, metric: str) -> pd.DataFrame:
    final = results.final()
    final = final[final["status"] == OK]
    return final[["arm", "backend", "seed", metric]]


def compare_results(first: Results, second: Results, metric: str | None = None) -> pd.DataFrame:
    """Per (arm, backend) on both sides: B - A of `metric` with a 95% CI (columns COLUMNS).

    `test` is 'paired' (on the seeds both sides ran; n_a = n_b = pairs) or 'welch', by the rule of
    the module docstring. mean_a and mean_b are over every 'ok' seed of their side; mean_difference
    is B - A of the values the test used (the common seeds when paired on only some of them).
    Arms are in A's order, then B's arms not in A; an (arm, backend) missing on either side is left out.

    Raises:
        SpecError: `metric` was not recorded on one of the sides.
    """
    import pandas as pd

    from harness.analysis.before_after import INSUFFICIENT, MIN_PAIRS, WELCH, before_after
    from harness.analysis.options import check_metric_name
    from harness.check.options import DEFAULT_MIN_SEEDS

    metric = metric or first.primary_metric
    for side, results in (("A", first), ("B", second)):
        check_metric_name(metric, {*results.metric_names, SPEED_METRIC}, f"compare --metric (result set {side})")
    from harness.analysis.examples import LabelCache, example_level_rows, final_predictions

    values_a, values_b = _ok_values(first, metric), _ok_values(second, metric)
    predicted = {
        **(final_predictions(first.trials, first.predictions) if first.predictions is not None else {}),
        **(final_predictions(second.trials, second.predictions) if second.predictions is not None else {}),
    }
    labels = LabelCache()
    arms = list(dict.fromkeys([*first.arms, *second.arms]))
    backends = list(dict.fromkeys([*first.backends, *second.backends]))
    rows = []
    for arm in arms:
        for backend in backends:
            part_a = values_a[(values_a["arm"] == arm) & (values_a["backend"] == backend)]
            part_b = values_b[(values_b["arm"] == arm) & (values_b["backend"] == backend)]
            if part_a.empty or part_b.empty:
                continue
            before = dict(zip(part_a["seed"].astype(int), part_a[metric]))
            after = dict(zip(part_b["seed"].astype(int), part_b[metric]))
            change = before_after(before, after, DEFAULT_MIN_SEEDS)
            if change.method == INSUFFICIENT:  # where `check` claims nothing, still show the smallest interval
                change = before_after(before, after, MIN_PAIRS)
            examples = {"seeds": 0}
            if predicted and "spec" in first.trials.columns and "spec" in second.trials.columns:
                examples = example_level_rows(
                    _side(first, arm, backend), _side(second, arm, backend), predicted, labels
                )  # first - second: A - B; shown as B - A like the rest of the row
            rows.append(
                {
                    "mcnemar_p": examples.get("mcnemar_p", math.nan) if examples["seeds"] else math.nan,
                    "mcnemar_significant": examples.get("mcnemar_significant", "") if examples["seeds"] else "",
                    "example_ci_low": 0.0 - examples["example_ci_high"] if examples["seeds"] else math.nan,
                    "example_ci_high": 0.0 - examples["example_ci_low"] if examples["seeds"] else math.nan,
                    "arm": arm,
                    "backend": backend,
                    "metric": metric,
                    # one seed on a side: no interval either way; the row keeps the label compare always gave it
                    "test": WELCH if change.method == INSUFFICIENT else change.method,
                    "n_a": change.n_before,
                    "n_b": change.n_after,
                    "mean_a": change.mean_before,
                    "mean_b": change.mean_after,
                    "mean_difference": change.change,
                    "ci_low": change.ci_low,
                    "ci_high": change.ci_high,
                    "p_value": change.p_value,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _side(results: Results, arm: str, backend: str) -> pd.DataFrame:
    trials = results.trials
    return trials[(trials["arm"] == arm) & (trials["backend"] == backend)]


def comparison_figure(table: pd.DataFrame, *, name_a: str, name_b: str) -> Figure:
    """Forest plot of B - A per arm (a marker per backend), 95% CI; filled markers: CI excludes 0."""
    from harness.report import figures

    metric = table["metric"].iloc[0] if len(table) else "metric"
    excludes_zero = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return figures._interval_plot(
        table,
        value="mean_difference",
        low="ci_low",
        high="ci_high",
        arms=list(dict.fromkeys(table["arm"])),
        backends=list(dict.fromkeys(table["backend"])),
        zero_line=True,
        filled=excludes_zero,
        title=f"{name_b} - {name_a} (filled: 95% CI excludes 0)",
        xlabel=f"{metric}: B - A",
    )


def format_table(table: pd.DataFrame) -> str:
    """The comparison table as printed: 4 significant digits, p to 3, NaN as 'nan'."""
    import numpy as np

    shown = table.copy()
    for column in ("mean_a", "mean_b", "mean_difference", "ci_low", "ci_high"):
        shown[column] = shown[column].map(lambda v: f"{v:.4g}" if np.isfinite(v) else "nan")
    for column in ("p_value", "mcnemar_p", "example_ci_low", "example_ci_high"):
        shown[column] = shown[column].map(lambda v: f"{v:.3g}" if np.isfinite(v) else "nan")
    return shown.to_string(index=False)
