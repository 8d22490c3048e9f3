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

from matplotlib.figure import Figure

from harness.analysis.statistics import higher_is_better
from harness.report import figures

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
    held_out = "validation" if f"validation_{measure}" in results.metric_names else "test"
    return tuple(split for split in ("train", held_out) if f"{split}_{measure}" in results.metric_names)


def learning_curve_figures(results: Results) -> list[ReportFigure]:
    """Loss curves, and curves of the primary metric's measure when it is not the loss."""
    primary_measure = results.primary_metric.partition("_")[2]
    measures = list(dict.fromkeys(["loss", primary_measure]))
    found = []
    for measure in measures:
        splits = _curve_splits(results, measure)
        if not splits:
            continue
        curves = results.curves([f"{split}_{measure}" for split in splits])
        if curves.empty:  # no trial finished ok
            continue
        figure = figures.learning_curves(curves, measure=measure, arms=results.arms, backends=results.backends, splits=splits)
        found.append(ReportFigure(
            f"curves_{measure}", f"Learning curves: {measure}",
            f"Mean {' and '.join(splits)} {measure} per epoch over the seeds that finished ok; bands are 95% t intervals.",
            figure,
        ))
    return found


def final_metric_figures(results: Results) -> list[ReportFigure]:
    """The primary metric per arm with its CI."""
    summary = results.summary()
    if not summary.loc[summary["metric"] == results.primary_metric, "mean"].notna().any():
        return []
    figure = figures.final_metric_plot(summary, metric=results.primary_metric, arms=results.arms, backends=results.backends)
    return [ReportFigure("final_metric", f"Final {results.primary_metric}",
                         "Mean over ok seeds with its 95% confidence interval (rule: harness.analysis.statistics).", figure)]


def forest_figures(results: Results) -> list[ReportFigure]:
    """Every arm minus the reference arm, paired by seed."""
    if len(results.arms) < 2:
        return []
    table = results.comparisons()
    if not table["mean_difference"].notna().any():
        return []
    figure = figures.forest_plot(table, arms=results.arms, backends=results.backends)
    return [ReportFigure("forest", f"Paired differences vs {results.reference}",
                         "Mean paired difference (same seed) with its 95% CI; filled markers are significant "
                         "after Holm's correction over the whole table.", figure)]


def heatmap_figures(results: Results) -> list[ReportFigure]:
    """For a two-axis grid, one heatmap of the primary metric per backend."""
    if len(results.axes) != 2:
        return []
    found = []
    for backend in results.backends:
        table = results.pivot(backend=backend)
        if table.isna().all().all():
            continue
        figure = figures.grid_heatmap(table, metric=results.primary_metric,
                                      higher_is_better=higher_is_better(results.primary_metric),
                                      title=f"Mean {results.primary_metric} over seeds ({backend})")
        found.append(ReportFigure(f"heatmap_{backend}", f"Grid heatmap ({backend})",
                                  f"{results.axes[0]} x {results.axes[1]}: mean {results.primary_metric} over ok seeds.", figure))
    return found


def gap_figures(results: Results) -> list[ReportFigure]:
    """Train/test gap per arm."""
    gap = results.generalization_gap()
    if not len(gap) or not gap["n"].gt(0).any():
        return []
    figure = figures.generalization_gap_plot(gap, arms=results.arms, backends=results.backends)
    return [ReportFigure("gap", "Generalization gap",
                         "Train minus test (accuracy) or test minus train (loss) at the final epoch; positive means "
                         "the model does better on its training data.", figure)]


def parity_figures(results: Results) -> list[ReportFigure]:
    """The first backend vs each other backend, per (arm, seed)."""
    if len(results.backends) < 2:
        return []
    final = results.final()
    if final.loc[final["status"] == "ok", "backend"].nunique() < 2:  # no (arm, seed) can pair up
        return []
    first = results.backends[0]
    return [
        ReportFigure(f"parity_{other}", f"Backend parity: {first} vs {other}",
                     f"Final {results.primary_metric} of the same trial in two frameworks; the dashed line is equality.",
                     figures.backend_parity_plot(final, metric=results.primary_metric, arms=results.arms,
                                                 first=first, second=other))
        for other in results.backends[1:]
    ]


FIGURE_BUILDERS: list[FigureBuilder] = [
    learning_curve_figures, final_metric_figures, forest_figures, heatmap_figures, gap_figures, parity_figures,
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
