"""Which figures a report shows: an ordered registry of figure builders.

A builder takes a `Results` and returns the `ReportFigure`s it applies to (none when it does
not apply, e.g. no heatmap for a one-axis grid). Both the HTML and the PDF report show every
figure of `build_figures`, in registry order.

Extension point: the diagnostics step (per-layer activation histograms, gradient norms) adds
its figures by registering one more builder, without touching the report:

    from harness.report.gallery import ReportFigure, register_figure_builder

    def activation_histograms(results):
        return [ReportFigure("activations", "Activations per layer", "...", figure)]

    register_figure_builder(activation_histograms)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from harness.measures import (
    LEARNING_RATE,
    LOSS,
    OK,
    TEST_SPLIT,
    TRAINING_SPLIT,
    VALIDATION_SPLIT,
    is_higher_better,
    metric_name,
)
from harness.report import figures
from harness.report.numeric_axes import numeric_axes, numeric_axis_frame
from harness.report.sections import is_large_grid

if TYPE_CHECKING:
    from harness.analysis import Results


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: a stable key (file/anchor name), a title, a caption, the Figure."""

    key: str
    title: str
    caption: str
    figure: Figure


FigureBuilder = Callable[["Results"], list[ReportFigure]]


def _curve_splits(results: Results, measure: str) -> tuple[str, ...]:
    # the validation split when recorded (what a user tunes against), else the test split
    held_out = VALIDATION_SPLIT if metric_name(VALIDATION_SPLIT, measure) in results.metric_names else TEST_SPLIT
    return tuple(split for split in (TRAINING_SPLIT, held_out) if metric_name(split, measure) in results.metric_names)


CURVE_ARMS = 5  # of a large grid, the learning curves of this many best and worst arms


def _extreme_arms(results: Results, count: int) -> list[str]:
    """The `count` best and `count` worst arms by mean final primary metric (first backend), in suite order."""
    final = results.final()
    ok = final[(final["status"] == OK) & (final["backend"] == results.backends[0])]
    means = ok.groupby("arm")[results.primary_metric].mean().dropna()
    ordered = means.sort_values(ascending=not is_higher_better(results.primary_metric)).index.tolist()
    chosen = set(ordered[:count]) | set(ordered[-count:])
    return [arm for arm in results.arms if arm in chosen]


def learning_curve_figures(results: Results) -> list[ReportFigure]:
    """Loss curves, and curves of the primary metric's measure when it is not the loss."""
    primary_measure = results.primary_metric.partition("_")[2]
    measures = list(dict.fromkeys([LOSS, primary_measure]))
    found = []
    for measure in measures:
        splits = _curve_splits(results, measure)
        if not splits:
            continue
        curves = results.curves([metric_name(split, measure) for split in splits])
        if curves.empty:  # no trial finished ok
            continue
        arms, note = list(results.arms), ""
        if is_large_grid(results):  # the best and the worst arms only: 2,000 lines show nothing
            arms = _extreme_arms(results, CURVE_ARMS)
            curves = curves[curves["arm"].isin(arms)]
            note = f" Of a large grid, the {CURVE_ARMS} best and {CURVE_ARMS} worst arms by final {results.primary_metric}."
        figure = figures.learning_curves(curves, measure=measure, arms=arms, backends=results.backends, splits=splits)
        found.append(
            ReportFigure(
                f"curves_{measure}",
                f"Learning curves: {measure}",
                f"Mean {' and '.join(splits)} {measure} per epoch over the seeds that finished ok; bands are 95% t intervals."
                + note,
                figure,
            )
        )
    return found


def learning_rate_figures(results: Results) -> list[ReportFigure]:
    """The learning rate per epoch, for suites with an lr_schedule (the only trials that record it)."""
    if LEARNING_RATE not in results.metric_names:
        return []
    curves = results.curves([LEARNING_RATE])
    if curves.empty:
        return []
    figure = figures.learning_rate_curves(curves, arms=results.arms, backends=results.backends)
    caption = (
        "Learning rate of each epoch, the mean of its optimizer steps' scheduled rates (training.lr_schedule), "
        "mean over the seeds that finished ok; reduce_on_plateau's seeds can differ."
    )
    return [ReportFigure("learning_rate", "Learning rate", caption, figure)]


def final_metric_figures(results: Results) -> list[ReportFigure]:
    """The primary metric per arm with its CI."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    summary = results.summary()
    if not summary.loc[summary["metric"] == results.primary_metric, "mean"].notna().any():
        return []
    figure = figures.final_metric_plot(
        summary, metric=results.primary_metric, arms=results.arms, backends=results.backends
    )
    return [
        ReportFigure(
            "final_metric",
            f"Final {results.primary_metric}",
            "Mean over ok seeds with its 95% confidence interval (rule: harness.analysis.statistics).",
            figure,
        )
    ]


def forest_figures(results: Results) -> list[ReportFigure]:
    """Every arm minus the reference arm, paired by seed."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    if len(results.arms) < 2:
        return []
    table = results.comparisons()
    if not table["mean_difference"].notna().any():
        return []
    reference = results.report_options.describe_reference()
    figure = figures.forest_plot(table, arms=results.arms, backends=results.backends, reference=reference)
    return [
        ReportFigure(
            "forest",
            f"Paired differences vs {reference}",
            "Mean paired difference (same seed) with its 95% CI; filled markers are significant "
            "after Holm's correction over the whole table.",
            figure,
        )
    ]


def _primary_metric_heatmap(
    results: Results, table: pd.DataFrame, *, key: str, title: str, caption: str, plot_title: str
) -> ReportFigure:
    """A heatmap of the primary metric's means in `table` (rows x columns), bright where it is better."""
    figure = figures.grid_heatmap(
        table,
        metric=results.primary_metric,
        higher_is_better=is_higher_better(results.primary_metric),
        title=plot_title,
    )
    return ReportFigure(key, title, caption, figure)


def heatmap_figures(results: Results) -> list[ReportFigure]:
    """For a two-axis grid, one heatmap of the primary metric per backend."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    if len(results.axes) != 2:
        return []
    found = []
    for backend in results.backends:
        table = results.pivot(backend=backend)
        if table.isna().all().all():
            continue
        found.append(
            _primary_metric_heatmap(
                results,
                table,
                key=f"heatmap_{backend}",
                title=f"Grid heatmap ({backend})",
                caption=f"{results.axes[0]} x {results.axes[1]}: mean {results.primary_metric} over ok seeds.",
                plot_title=f"Mean {results.primary_metric} over seeds ({backend})",
            )
        )
    return found


def numeric_axis_figures(results: Results) -> list[ReportFigure]:
    """For each numeric grid axis (a swept std, learning rate, depth): the primary metric against it,
    one panel per backend, one line per variant of the other axis (log x when the values span decades)."""
    found = []
    for axis in numeric_axes(results):
        table = numeric_axis_frame(results, axis)
        if table["mean"].isna().all():
            continue
        series = list(dict.fromkeys(table["series"]))
        figure = figures.numeric_axis_plot(
            table,
            metric=results.primary_metric,
            axis_name=axis.name,
            series=series,
            backends=results.backends,
            log_x=axis.log_scale,
        )
        found.append(
            ReportFigure(
                f"numeric_axis_{axis.name}",
                f"{results.primary_metric} against {axis.name}",
                f"Mean final {results.primary_metric} over ok seeds with its 95% CI (band), per value of {axis.name}"
                + (f", one line per variant of {axis.series_axis}" if axis.series_axis is not None else "")
                + "; an x on the bottom edge: no trial at that value finished ok (diverged, failed or timed out).",
                figure,
            )
        )
    return found


def gap_figures(results: Results) -> list[ReportFigure]:
    """Train/test gap per arm."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    gap = results.generalization_gap()
    if not len(gap) or not gap["n"].gt(0).any():
        return []
    figure = figures.generalization_gap_plot(gap, arms=results.arms, backends=results.backends)
    return [
        ReportFigure(
            "gap",
            "Generalization gap",
            "Train minus test (accuracy) or test minus train (loss) at the final epoch; positive means "
            "the model does better on its training data.",
            figure,
        )
    ]


def parity_figures(results: Results) -> list[ReportFigure]:
    """The first backend vs each other backend, per (arm, seed)."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    if len(results.backends) < 2:
        return []
    final = results.final()
    if final.loc[final["status"] == OK, "backend"].nunique() < 2:  # no (arm, seed) can pair up
        return []
    first = results.backends[0]
    return [
        ReportFigure(
            f"parity_{other}",
            f"Backend parity: {first} vs {other}",
            f"Final {results.primary_metric} of the same trial in two frameworks; the dashed line is equality.",
            figures.backend_parity_plot(
                final, metric=results.primary_metric, arms=results.arms, first=first, second=other
            ),
        )
        for other in results.backends[1:]
    ]


MAX_HISTOGRAM_ARMS = 8  # columns of the histogram grid; a larger grid (depth x width) gets no histogram figure
NON_HIDDEN_ACTIVATIONS = ("linear", "softmax")


def _hidden_layers(diagnostics: pd.DataFrame) -> list[str]:
    """Layers whose output is a hidden activation: those with a saturation or zero statistic (sigmoid,
    tanh, relu) or, failing that, every layer but the last one probed."""
    named = diagnostics[diagnostics["layer"] >= 0]
    marked = named[named["statistic"].isin(["fraction_saturated", "fraction_zero"])]
    chosen = marked if len(marked) else named[named["layer"] < named["layer"].max()]
    order = chosen.drop_duplicates("layer_name").sort_values("layer")
    return order["layer_name"].tolist()


def activation_histogram_figures(results: Results) -> list[ReportFigure]:
    """Per-layer activation histograms (layers x arms) at the first and last probed epochs, first backend."""
    diagnostics = results.diagnostics()
    diagnostics = diagnostics[(diagnostics["status"] == OK) & (diagnostics["backend"] == results.backends[0])]
    arms = [arm for arm in results.arms if arm in set(diagnostics["arm"])]
    if diagnostics.empty or len(arms) > MAX_HISTOGRAM_ARMS:
        return []
    layers = _hidden_layers(diagnostics)
    bins = diagnostics[diagnostics["statistic"].str.startswith("histogram.") & diagnostics["layer_name"].isin(layers)]
    ranges = diagnostics[diagnostics["statistic"].isin(["histogram_low", "histogram_high"])]
    ranges = ranges.pivot_table(index=["arm", "layer_name"], columns="statistic", values="value", aggfunc="first")
    found = []
    epochs = sorted(bins["epoch"].unique())
    for epoch in dict.fromkeys([epochs[0], epochs[-1]]) if epochs else []:
        part = bins[bins["epoch"] == epoch].assign(
            bin=lambda f: f["statistic"].str.slice(len("histogram.")).astype(int)
        )
        table = part.groupby(["arm", "layer_name", "bin"], sort=False)["value"].mean().rename("fraction").reset_index()
        table = table.join(
            ranges.rename(columns={"histogram_low": "low", "histogram_high": "high"}), on=["arm", "layer_name"]
        )
        figure = figures.activation_histograms(
            table,
            arms=arms,
            layers=layers,
            title=f"Activations per layer at epoch {epoch} ({results.backends[0]}, probe batch, mean over seeds)",
        )
        found.append(
            ReportFigure(
                f"activations_epoch_{epoch}",
                f"Activation histograms, epoch {epoch}",
                "Fraction of the probe batch's activations per bin, per hidden layer (rows) and arm (columns); fixed "
                "range per activation (harness.diagnostics), values outside counted in the edge bins.",
                figure,
            )
        )
    return found


def _layer_statistic_table(results: Results, statistic: str) -> pd.DataFrame:
    """Per (arm, epoch, layer): the mean over ok seeds of one diagnostics statistic, first backend."""
    diagnostics = results.diagnostics()
    rows = diagnostics[
        (diagnostics["statistic"] == statistic)
        & (diagnostics["status"] == OK)
        & (diagnostics["backend"] == results.backends[0])
    ]
    return rows.groupby(["arm", "epoch", "layer"], sort=False)["value"].mean().reset_index()


def _layer_statistic_figures(
    results: Results, statistic: str, label: str, key: str, title: str, meaning: str, reading: str
) -> list[ReportFigure]:
    """One diagnostics statistic per layer, one panel per probed epoch, first backend, mean over ok seeds."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    table = _layer_statistic_table(results, statistic)
    if table.empty:
        return []
    figure = figures.layer_statistic_plot(table, statistic=label, arms=results.arms)
    caption = f"{meaning} at each probed epoch ({results.backends[0]}, mean over ok seeds, log scale): {reading}"
    return [ReportFigure(key, title, caption, figure)]


def gradient_norm_figures(results: Results) -> list[ReportFigure]:
    """Gradient norm per layer, one panel per probed epoch, first backend, mean over ok seeds."""
    return _layer_statistic_figures(
        results,
        "gradient_norm",
        "gradient norm",
        "gradient_norms",
        "Gradient norm per layer",
        "L2 norm of each layer's gradient on the probe batch",
        "vanishing gradients show as norms falling toward the first layers.",
    )


def activation_scale_figures(results: Results) -> list[ReportFigure]:
    """Activation std per layer, one panel per probed epoch, first backend, mean over ok seeds."""
    return _layer_statistic_figures(
        results,
        "activation_std",
        "activation std",
        "activation_std",
        "Activation scale per layer",
        "Standard deviation of each layer's output on the probe batch",
        "a signal that shrinks or grows layer by layer shows as a sloped line.",
    )


def mlp_shapes(results: Results) -> pd.DataFrame:
    """Per arm whose model is an mlp with equal hidden widths: depth (hidden layers), width (units) and
    parameters (trainable elements, from the spec's layer plan). Other arms are left out."""
    import json

    import numpy as np

    from harness.data import dataset_info
    from harness.spec import TrialSpec

    rows = []
    for arm, spec_json in results.trials.drop_duplicates("arm")[["arm", "spec"]].itertuples(index=False):
        spec = TrialSpec.from_dict(json.loads(spec_json))
        dense = [layer["units"] for layer in spec.model.layers if layer.kind == "dense"]
        hidden = dense[:-1]
        if spec.model.family != "mlp" or not hidden or len(set(hidden)) != 1:
            continue
        plans = spec.model.plan(dataset_info(spec.dataset).input_shape)
        parameters = sum(int(np.prod(t.shape)) for plan in plans for t in plan.tensors if t.trainable)
        rows.append({"arm": arm, "depth": len(hidden), "width": hidden[0], "parameters": parameters})
    return pd.DataFrame(rows, columns=["arm", "depth", "width", "parameters"])


def shape_heatmap_figures(results: Results) -> list[ReportFigure]:
    """Depth x width heatmaps (primary metric per backend, parameter count) when the arms are mlp shapes
    on one grid axis (a two-axis grid gets the regular heatmap instead)."""
    if is_large_grid(results):  # one row, line or point per arm: the grid's structure replaces it
        return []
    if len(results.axes) == 2 or "spec" not in results.trials.columns:
        return []
    shapes = mlp_shapes(results)
    if len(shapes) != len(results.arms) or shapes["depth"].nunique() < 2 or shapes["width"].nunique() < 2:
        return []
    final = results.final()
    final = final[final["status"] == OK].merge(shapes, on="arm")
    found = []
    for backend in results.backends:
        part = final[final["backend"] == backend]
        if part.empty:
            continue
        table = part.pivot_table(index="depth", columns="width", values=results.primary_metric, aggfunc="mean")
        found.append(
            _primary_metric_heatmap(
                results,
                table,
                key=f"shape_heatmap_{backend}",
                title=f"Depth x width: {results.primary_metric} ({backend})",
                caption="Hidden layers (rows) x units per hidden layer (columns) of each arm's MLP.",
                plot_title=f"Mean {results.primary_metric} over seeds by depth x width ({backend})",
            )
        )
    parameters = shapes.pivot_table(index="depth", columns="width", values="parameters", aggfunc="first")
    figure = figures.grid_heatmap(parameters, metric="parameters", title="Trainable parameters by depth x width")
    found.append(
        ReportFigure(
            "shape_parameters",
            "Depth x width: parameter count",
            "Trainable parameters of each MLP shape (weights and biases, output layer included).",
            figure,
        )
    )
    return found


def grid_structure_figures(results: Results) -> list[ReportFigure]:
    """Main effects, importance and interaction heatmaps of a large grid (harness.report.grid)."""
    from harness.report.grid import GRID_FIGURE_BUILDERS

    return [figure for builder in GRID_FIGURE_BUILDERS for figure in builder(results)]


FIGURE_BUILDERS: list[FigureBuilder] = [
    grid_structure_figures,
    learning_curve_figures,
    learning_rate_figures,
    final_metric_figures,
    forest_figures,
    heatmap_figures,
    numeric_axis_figures,
    gap_figures,
    parity_figures,
    activation_histogram_figures,
    gradient_norm_figures,
    activation_scale_figures,
    shape_heatmap_figures,
]


def register_figure_builder(builder: FigureBuilder, position: int | None = None) -> None:
    """Add a builder to every report (at `position`, default last); registering twice is a no-op."""
    if builder in FIGURE_BUILDERS:
        return
    FIGURE_BUILDERS.insert(len(FIGURE_BUILDERS) if position is None else position, builder)


def build_figures(results: Results, builders: list[FigureBuilder] | None = None) -> list[ReportFigure]:
    """Every applicable figure for `results`, in builder order."""
    found: list[ReportFigure] = []
    for builder in FIGURE_BUILDERS if builders is None else builders:
        found.extend(builder(results))
    return found
