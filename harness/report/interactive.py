"""The interactive report (`harness report --interactive`): the static report's sections with plotly figures.

One self-contained file, `report_interactive.html`, beside report.html: the same answer, tables and
texts (the same template), and in place of the PNG figures plotly figures with plotly.js inlined
once (offline: no CDN, no network):

    Learning curves      mean held-out primary measure per epoch per arm and backend; hover names the
                         arm, backend, epoch and value; a legend click hides or shows an arm; zoomable.
    Every trial          the final primary metric of every trial (hover: arm, backend, seed, value).
    Parallel coordinates one line per arm across the grid's axes (and search dimensions, when they are
                         axes of the stored arms) to the objective, colored by it; drag an axis to filter.
    All arms (table)     for a large grid, every arm's mean in a table sorted by a click on its header.

Large grids (`is_large_grid`) draw curves and trials of their best and worst arms only (like the
static report); the parallel coordinates and the sortable table carry every arm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.analysis import grid_effects
from harness.analysis.text import format_number
from harness.measures import OK, TEST_SPLIT, VALIDATION_SPLIT, is_higher_better, metric_name
from harness.report.sections import DisplayTable, _table, is_large_grid

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from harness.analysis import Results
    from harness.report.document import ReportContent

INTERACTIVE_NAME = "report_interactive.html"
EXTREME_ARMS = 5  # of a large grid, the curves and trials of this many best and worst arms


@dataclass(frozen=True)
class InteractiveFigure:
    """A plotly figure as the template shows it: its div (no script library inside) and texts."""

    key: str
    title: str
    caption: str
    html: str
    png_base64: str = ""
    width: int = 0
    height: int = 0


def _shown_arms(results: Results) -> list[str]:
    if not is_large_grid(results):
        return list(results.arms)
    means = grid_effects.arm_means(results.final(), results.primary_metric, results.axes)
    best, worst = grid_effects.ranked_arms(
        means[means["backend"] == results.backends[0]], results.primary_metric, EXTREME_ARMS
    )
    chosen = set(best["arm"]) | set(worst["arm"])
    return [arm for arm in results.arms if arm in chosen]


def curves_figure(results: Results, arms: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    measure = results.primary_metric.partition("_")[2]
    split = VALIDATION_SPLIT if metric_name(VALIDATION_SPLIT, measure) in results.metric_names else TEST_SPLIT
    name = metric_name(split, measure)
    if name not in results.metric_names:
        return None
    curves = results.curves([name])
    if curves.empty:
        return None
    figure = go.Figure()
    for (arm, backend), part in curves[curves["arm"].isin(arms)].groupby(["arm", "backend"], sort=False):
        label = f"{arm} ({backend})" if len(results.backends) > 1 else str(arm)
        figure.add_trace(
            go.Scatter(
                x=part["epoch"],
                y=part["mean"],
                mode="lines",
                name=label,
                legendgroup=str(arm),
                hovertemplate=f"{label}<br>epoch %{{x}}<br>{name} %{{y:.4g}}<extra></extra>",
            )
        )
    figure.update_layout(xaxis_title="epoch", yaxis_title=f"{name} (mean over ok seeds)", height=480)
    return figure


def trials_figure(results: Results, arms: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    metric = results.primary_metric
    final = results.final()
    ok = final[(final["status"] == OK) & final["arm"].isin(arms)].dropna(subset=[metric])
    if ok.empty:
        return None
    figure = go.Figure()
    for backend, part in ok.groupby("backend", sort=False):
        figure.add_trace(
            go.Scatter(
                x=part["arm"],
                y=part[metric],
                mode="markers",
                name=str(backend),
                customdata=part[["seed", "backend"]].to_numpy(),
                hovertemplate="%{x}<br>backend %{customdata[1]}, seed %{customdata[0]}<br>"
                + f"{metric} %{{y:.4g}}<extra></extra>",
            )
        )
    figure.update_layout(yaxis_title=metric, height=440, xaxis={"categoryorder": "array", "categoryarray": arms})
    return figure


def parallel_figure(results: Results) -> go.Figure | None:
    """One line per arm (first backend): every axis with more than one variant, then the objective."""
    import plotly.graph_objects as go

    metric = results.primary_metric
    means = grid_effects.arm_means(results.final(), metric, results.axes)
    means = means[means["backend"] == results.backends[0]]
    axes = [axis for axis in results.axes if means[axis].nunique() > 1]
    if not axes or len(means) < 2:
        return None
    order = results.variant_order()
    dimensions = []
    for axis in axes:
        labels = [label for label in order.get(axis, []) if label in set(means[axis])]
        code = {label: index for index, label in enumerate(labels)}
        dimensions.append(
            {
                "label": axis,
                "values": means[axis].map(code).to_numpy(),
                "tickvals": list(range(len(labels))),
                "ticktext": [str(label) for label in labels],
            }
        )
    dimensions.append({"label": metric, "values": means["mean"].to_numpy()})
    colorscale = "Viridis" if is_higher_better(metric) else "Viridis_r"
    figure = go.Figure(
        go.Parcoords(
            line={"color": means["mean"].to_numpy(), "colorscale": colorscale, "showscale": True},
            dimensions=dimensions,
        )
    )
    figure.update_layout(height=460, margin={"l": 80, "r": 80, "t": 60, "b": 40})
    return figure


def all_arms_table(results: Results) -> DisplayTable:
    """Every arm's mean (first backend and the others), for the sortable table of a large grid."""
    means = grid_effects.arm_means(results.final(), results.primary_metric, results.axes)
    rows = [
        [row["arm"], row["backend"], *(row[axis] for axis in results.axes), int(row["n"]), format_number(row["mean"])]
        for row in means.to_dict("records")
    ]
    return _table(
        "all_arms",
        "All arms",
        f"Every arm's mean {results.primary_metric} over its ok seeds; click a column header to sort.",
        ["arm", "backend", *results.axes, "n", f"{results.primary_metric} (mean)"],
        rows,
    )


def interactive_figures(results: Results) -> list[InteractiveFigure]:
    """The plotly figures that apply, as divs (plotly.js is inlined once by the page)."""
    arms = _shown_arms(results)
    subset = (
        "" if len(arms) == len(results.arms) else f" The {EXTREME_ARMS} best and worst arms of {len(results.arms)}."
    )
    found: list[tuple[str, str, str, Any]] = [
        (
            "curves",
            "Learning curves",
            "Mean held-out curve per arm: hover for values, click a legend entry to hide or show an arm, "
            "double-click to isolate it, drag to zoom." + subset,
            curves_figure(results, arms),
        ),
        (
            "trials",
            f"Every trial: final {results.primary_metric}",
            "One point per trial that finished ok: hover for arm, backend, seed and value." + subset,
            trials_figure(results, arms),
        ),
        (
            "parallel",
            "Grid dimensions vs the objective",
            f"One line per arm ({results.backends[0]}) through its variant on each axis to its mean "
            f"{results.primary_metric}; drag along an axis to keep only the lines crossing there.",
            parallel_figure(results),
        ),
    ]
    return [
        InteractiveFigure(
            key,
            title,
            caption,
            figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{key}", config={"responsive": True}),
        )
        for key, title, caption, figure in found
        if figure is not None
    ]


def render_interactive(results: Results, content: ReportContent) -> str:
    """The interactive page as a string: the report template with plotly figures and plotly.js inlined once."""
    from plotly.offline import get_plotlyjs

    from harness.report.html import TEMPLATE_NAME, environment

    tables = content.tables
    if is_large_grid(results):
        tables = (*tables, all_arms_table(results))
    return (
        environment()
        .get_template(TEMPLATE_NAME)
        .render(
            content=content,
            tables=tables,
            figures=interactive_figures(results),
            plotly_js=get_plotlyjs(),
            sortable=is_large_grid(results),
        )
    )


def write_interactive(results: Results, directory: Path, content: ReportContent) -> Path:
    """Write `<directory>/report_interactive.html`; return its path."""
    path = directory / INTERACTIVE_NAME
    path.write_text(render_interactive(results, content), encoding="utf-8")
    return path
