"""Report figures as pure functions: a DataFrame (a `Results` table) in, a matplotlib Figure out.

Every figure is a `matplotlib.figure.Figure` with an Agg canvas attached (no pyplot, so no
global figure registry, no GUI backend, nothing to close), drawn under a seaborn style that is
applied only inside the function (`figure_style`) so importing this module changes no global
setting. Mathtext is off: a '$' in an arm name is printed, not parsed.

Inputs are the frames of `harness.analysis.Results`: `curves()`, `summary()`, `comparisons()`,
`pivot()`, `generalization_gap()`, `final()`. Which figures a report shows, and where new ones
(e.g. the per-layer activation histograms of the diagnostics step) plug in: `harness.report.gallery`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from harness.measures import OK, TEST_SPLIT, TRAINING_SPLIT, VALIDATION_SPLIT, metric_name

LineStyle = Literal["-", "--", ":"]
LINE_STYLES: dict[str, LineStyle] = {TRAINING_SPLIT: "-", VALIDATION_SPLIT: "--", TEST_SPLIT: ":"}
BACKEND_MARKERS = ("o", "s", "D", "^", "v")
WIDTH = 9.0  # inches: the figure width of every report figure (a page width at 100 dpi = 900 px)
ROW_HEIGHT = 0.28  # inches per arm row in the per-arm plots


@contextmanager
def figure_style() -> Iterator[None]:
    """seaborn's whitegrid style and paper context, mathtext off, for the figures made inside."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), "text.parse_math": False}
    with matplotlib.rc_context(rc):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A Figure with an Agg canvas and constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def arm_colors(arms: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A distinct color per arm: seaborn's 'deep' palette up to 10 arms, 'husl' beyond."""
    palette = sns.color_palette("deep" if len(arms) <= 10 else "husl", n_colors=max(len(arms), 1))
    return {arm: palette[index] for index, arm in enumerate(arms)}


MANY_ENTRIES = 14  # beyond this a legend goes under the plots, in columns, instead of beside them


def legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend columns fit across `width` inches: a label's width estimated from its
    characters (0.55 em each at the small legend font, about 7.7 pt) plus 0.45 in for marker and gaps."""
    longest = max((len(label) for label in labels), default=1)
    column_inches = longest * 0.55 * 7.7 / 72 + 0.45
    return min(max(1, int(width * 0.95 / column_inches)), 8, max(1, math.ceil(len(labels) / 4)))


def legend_height(labels: Sequence[str], width: float) -> float:
    """Extra figure height (inches) that `figure_legend` needs below the plots (0 when it goes beside)."""
    if len(labels) <= MANY_ENTRIES:
        return 0.0
    return 0.17 * math.ceil(len(labels) / legend_columns(labels, width)) + 0.2


def figure_legend(figure: Figure, handles: Sequence[Artist]) -> None:
    """A figure-level legend outside the axes (constrained layout makes room for it): beside the
    plots for a few entries, below them in as many columns as fit for many (50 arms would crush the plots)."""
    if len(handles) <= MANY_ENTRIES:
        figure.legend(handles=handles, loc="outside right upper", frameon=False)
        return
    labels = [str(handle.get_label()) for handle in handles]
    figure.legend(
        handles=handles,
        loc="outside lower center",
        ncols=legend_columns(labels, figure.get_figwidth()),
        frameon=False,
        fontsize="small",
    )


def learning_curves(
    curves: pd.DataFrame,
    *,
    measure: str,
    arms: Sequence[str],
    backends: Sequence[str],
    splits: Sequence[str] = (TRAINING_SPLIT, VALIDATION_SPLIT),
) -> Figure:
    """Mean learning curve per arm with its 95% band, one panel per backend, one line style per split.

    Args:
        curves: `Results.curves()`: arm, backend, metric, epoch, mean, ci_low, ci_high.
        measure: 'loss', 'accuracy', ... (metrics '<split>_<measure>' are drawn).
        arms, backends: drawing order; arms without data are left out of the legend.
        splits: which splits to draw (solid train, dashed validation, dotted test).
    """
    metrics = {metric_name(split, measure): split for split in splits}
    selected = curves[curves["metric"].isin(list(metrics))]
    groups = {key: group for key, group in selected.groupby(["arm", "backend", "metric"], sort=False)}
    colors = arm_colors(arms)
    with figure_style():
        figure = new_figure(WIDTH, 3.6 + legend_height([*arms, *splits], WIDTH))
        axes = figure.subplots(1, max(len(backends), 1), sharey=True, squeeze=False)[0]
        drawn: list[str] = []
        for axis, backend in zip(axes, backends):
            # One LineCollection and one PolyCollection per panel instead of an artist per curve:
            # 50 arms x 2 splits would otherwise be 200 lines + 200 bands, slow to build and draw.
            lines, line_colors, line_styles, bands, band_colors = [], [], [], [], []
            for arm in arms:
                for metric, split in metrics.items():
                    group = groups.get((arm, backend, metric))
                    if group is None:
                        continue
                    epochs = group["epoch"].to_numpy(dtype=np.float64)
                    lines.append(np.column_stack([epochs, group["mean"].to_numpy(dtype=np.float64)]))
                    line_colors.append(colors[arm])
                    line_styles.append(LINE_STYLES.get(split, "-"))
                    low, high = group["ci_low"].to_numpy(dtype=np.float64), group["ci_high"].to_numpy(dtype=np.float64)
                    finite = np.isfinite(low) & np.isfinite(high)
                    if finite.sum() >= 2:
                        bands.append(
                            np.concatenate(
                                [
                                    np.column_stack([epochs[finite], low[finite]]),
                                    np.column_stack([epochs[finite], high[finite]])[::-1],
                                ]
                            )
                        )
                        band_colors.append((*colors[arm], 0.15))
                    if arm not in drawn:
                        drawn.append(arm)
            if bands:
                axis.add_collection(PolyCollection(bands, facecolors=band_colors, edgecolors="none"))
            if lines:
                axis.add_collection(
                    LineCollection(
                        lines,
                        colors=line_colors,
                        linestyles=line_styles,
                        linewidths=matplotlib.rcParams["lines.linewidth"],
                    )
                )
            axis.autoscale_view()
            axis.set_title(backend)
            axis.set_xlabel("epoch")
        axes[0].set_ylabel(measure)
        handles = [Line2D([], [], color=colors[arm], label=arm) for arm in drawn]
        handles += [Line2D([], [], color="0.3", linestyle=LINE_STYLES.get(split, "-"), label=split) for split in splits]
        figure_legend(figure, handles)
        figure.suptitle(f"Learning curves: {measure} (mean and 95% CI over seeds)")
    return figure


def learning_rate_curves(curves: pd.DataFrame, *, arms: Sequence[str], backends: Sequence[str]) -> Figure:
    """The learning rate per epoch (harness.measures.LEARNING_RATE: the mean rate of the epoch's steps),
    one line per arm, one panel per backend; log scale when the rates span over a factor of 10.

    Args:
        curves: `Results.curves([LEARNING_RATE])`: arm, backend, metric, epoch, mean, ...
        arms, backends: drawing order.
    """
    colors = arm_colors(arms)
    with figure_style():
        figure = new_figure(WIDTH, 2.8 + legend_height(list(arms), WIDTH))
        axes = figure.subplots(1, max(len(backends), 1), sharey=True, squeeze=False)[0]
        drawn: list[str] = []
        positive = curves["mean"][curves["mean"] > 0]
        logarithmic = len(positive) > 0 and positive.max() > 10 * positive.min()
        for axis, backend in zip(axes, backends):
            for arm in arms:
                group = curves[(curves["arm"] == arm) & (curves["backend"] == backend)].sort_values("epoch")
                if group.empty:
                    continue
                axis.plot(
                    group["epoch"], group["mean"], color=colors[arm], marker=".", drawstyle="steps-pre"
                )  # epoch e's rate held over (e-1, e]
                if arm not in drawn:
                    drawn.append(arm)
            if logarithmic:
                axis.set_yscale("log")
            axis.set_title(backend)
            axis.set_xlabel("epoch")
        axes[0].set_ylabel("learning rate")
        figure_legend(figure, [Line2D([], [], color=colors[arm], label=arm) for arm in drawn])
        figure.suptitle("Learning rate per epoch (mean over the epoch's steps)")
    return figure


def _interval_plot(
    table: pd.DataFrame,
    *,
    value: str,
    low: str = "ci_low",
    high: str = "ci_high",
    arms: Sequence[str],
    backends: Sequence[str],
    title: str,
    xlabel: str,
    zero_line: bool = False,
    filled: pd.Series | None = None,
) -> Figure:
    """Horizontal point-and-interval plot: one row per arm, one marker and offset per backend; the interval
    runs from column `low` to column `high` (by default the 95% CI columns every `Results` table uses)."""
    rows = [arm for arm in arms if arm in set(table["arm"])]
    position = {arm: index for index, arm in enumerate(rows)}
    offsets = np.linspace(-0.2, 0.2, len(backends)) if len(backends) > 1 else np.zeros(1)
    palette = sns.color_palette("colorblind", n_colors=max(len(backends), 1))
    with figure_style():
        figure = new_figure(WIDTH * 0.75, max(2.2, 0.9 + ROW_HEIGHT * len(rows)))
        axis = figure.subplots()
        for index, backend in enumerate(backends):
            part = table[(table["backend"] == backend) & table["arm"].isin(rows)]
            if part.empty:
                continue
            y = part["arm"].map(position).to_numpy(dtype=np.float64) + offsets[index]
            x = part[value].to_numpy(dtype=np.float64)
            errors = np.vstack([x - part[low].to_numpy(dtype=np.float64), part[high].to_numpy(dtype=np.float64) - x])
            errors = np.where(np.isfinite(errors), errors, 0.0)
            color = palette[index]
            axis.errorbar(x, y, xerr=errors, fmt="none", ecolor=color, elinewidth=1.2, capsize=2)
            face = [
                color if flag else "white"
                for flag in (filled[part.index] if filled is not None else [True] * len(part))
            ]
            axis.scatter(
                x,
                y,
                marker=BACKEND_MARKERS[index % len(BACKEND_MARKERS)],
                facecolors=face,
                edgecolors=[color] * len(part),
                zorder=3,
                label=backend,
            )
        if zero_line:
            axis.axvline(0.0, color="0.4", linewidth=0.8)
        axis.set_yticks(range(len(rows)), rows)
        axis.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first arm on top
        axis.set_xlabel(xlabel)
        axis.set_title(title)
        if len(backends) > 1:
            axis.legend(loc="best", frameon=True)
    return figure


def final_metric_plot(summary: pd.DataFrame, *, metric: str, arms: Sequence[str], backends: Sequence[str]) -> Figure:
    """Final `metric` per arm: mean over 'ok' seeds with its 95% CI, a marker per backend.

    Args:
        summary: `Results.summary()` (rows of every metric; the `metric` rows are drawn).
    """
    rows = summary[summary["metric"] == metric]
    return _interval_plot(
        rows,
        value="mean",
        arms=arms,
        backends=backends,
        title=f"Final {metric}: mean and 95% CI over seeds",
        xlabel=metric,
    )


def forest_plot(
    comparisons: pd.DataFrame, *, arms: Sequence[str], backends: Sequence[str], reference: str | None = None
) -> Figure:
    """Paired difference of every arm vs its reference arm with its 95% CI; filled markers are
    significant after Holm's correction, hollow ones are not.

    Args:
        comparisons: `Results.comparisons()`.
        reference: the reference as the titles name it (`ReportOptions.describe_reference()`, e.g.
            `optimizer=sgd`); default: the table's one reference arm, or "reference" when its rows
            have several.
    """
    metric = comparisons["metric"].iloc[0] if len(comparisons) else "metric"
    if reference is None:
        named: list[Any] = list(comparisons["reference"].unique()) if len(comparisons) else []
        reference = str(named[0]) if len(named) == 1 else "reference"
    return _interval_plot(
        comparisons,
        value="mean_difference",
        arms=arms,
        backends=backends,
        zero_line=True,
        filled=comparisons["significant"].astype(bool),
        title=f"Paired difference vs {reference} (filled: significant, Holm p < 0.05)",
        xlabel=f"{metric}: arm - {reference}",
    )


def generalization_gap_plot(gap: pd.DataFrame, *, arms: Sequence[str], backends: Sequence[str]) -> Figure:
    """Train/test gap per arm (positive: better on the training data) with its 95% CI.

    Args:
        gap: `Results.generalization_gap()`.
    """
    name = gap["metric"].iloc[0] if len(gap) else "gap"
    return _interval_plot(
        gap,
        value="mean",
        arms=arms,
        backends=backends,
        zero_line=True,
        title=f"Generalization gap ({name}): mean and 95% CI over seeds",
        xlabel=f"{name} (train better when positive)",
    )


ANNOTATED_COLUMNS = 12  # a heatmap wider than this gets no numbers in its cells (they would overlap)


def grid_heatmap(
    table: pd.DataFrame, *, metric: str, higher_is_better: bool = True, title: str | None = None
) -> Figure:
    """Heatmap of a two-axis grid: rows axis 1, columns axis 2, cells the mean `metric` (annotated).

    Args:
        table: `Results.pivot(metric)`.
        higher_is_better: color scale direction (bright = good).
    """
    with figure_style():
        height = max(2.4, 1.2 + 0.45 * len(table.index))
        width = min(WIDTH, max(4.0, 2.5 + 0.9 * len(table.columns)))
        figure = new_figure(width, height)
        axis = figure.subplots()
        sns.heatmap(
            table.astype(float),
            annot=len(table.columns) <= ANNOTATED_COLUMNS,
            fmt=".3g",
            cmap="viridis" if higher_is_better else "viridis_r",
            linewidths=0.5,
            cbar_kws={"label": metric},
            ax=axis,
        )
        axis.tick_params(axis="y", labelrotation=0)  # seaborn turns long row labels vertical
        axis.set_ylabel(str(table.index.name or ""))
        axis.set_xlabel(str(table.columns.name or ""))
        axis.set_title(title or f"Mean {metric} over seeds")
    return figure


def main_effects_plot(table: pd.DataFrame, *, metric: str, axes: Sequence[str]) -> Figure:
    """One panel per grid axis: the mean `metric` of each variant (other axes averaged out) with its 95% CI.

    Args:
        table: `harness.analysis.grid_effects.main_effects` rows of one backend.
    """
    present = [axis for axis in axes if axis in set(table["axis"])]
    columns = min(3, max(1, len(present)))
    rows = max(1, math.ceil(len(present) / columns))
    with figure_style():
        figure = new_figure(WIDTH, 2.6 * rows + 0.3)
        panels = np.atleast_1d(figure.subplots(rows, columns, sharey=True, squeeze=False)).reshape(-1)
        for panel, axis in zip(panels, present):
            part = table[table["axis"] == axis]
            x = np.arange(len(part))
            mean = part["mean"].to_numpy(dtype=float)
            low = mean - part["ci_low"].to_numpy(dtype=float)
            high = part["ci_high"].to_numpy(dtype=float) - mean
            panel.errorbar(x, mean, yerr=np.nan_to_num(np.vstack([low, high])), fmt="o-", capsize=2, markersize=3)
            panel.set_xticks(
                x,
                [str(label) for label in part["variant"]],
                rotation=45 if len(part) > 6 else 0,
                ha="right" if len(part) > 6 else "center",
                fontsize=7,
            )
            panel.set_title(axis, fontsize=9)
            panel.set_ylabel(metric)
        for panel in panels[len(present) :]:
            panel.set_visible(False)
    return figure


def importance_plot(table: pd.DataFrame, *, title: str) -> Figure:
    """Horizontal bars: each ANOVA term's share of the grid's variance (the residual last, grey).

    Args:
        table: `harness.analysis.grid_effects.anova_importance` rows of one backend.
    """
    with figure_style():
        figure = new_figure(WIDTH * 0.8, 0.9 + 0.3 * len(table))
        axis = figure.subplots()
        labels = [str(term) for term in table["term"]][::-1]
        shares = table["share"].to_numpy(dtype=float)[::-1]
        colors = ["0.7" if label == "Residual" else sns.color_palette("deep")[0] for label in labels]
        axis.barh(labels, shares, color=colors)
        for y, share in enumerate(shares):
            axis.text(share, y, f" {share:.1%}", va="center", fontsize=7)
        axis.set_xlabel("share of the variance between arms (eta squared)")
        axis.set_xlim(0, min(1.0, max(float(np.nanmax(shares)) * 1.2, 0.05)) if len(shares) else 1.0)
        axis.set_title(title)
    return figure


def backend_parity_plot(final: pd.DataFrame, *, metric: str, arms: Sequence[str], first: str, second: str) -> Figure:
    """Backend parity: `metric` of `first` (x) vs `second` (y) for every (arm, seed) where both are 'ok'.

    Points on the diagonal mean the two frameworks gave the same result for the same seed.

    Args:
        final: `Results.final()`.
    """
    ok = final[final["status"] == OK]
    x_values = ok[ok["backend"] == first].set_index(["arm", "seed"])[metric]
    y_values = ok[ok["backend"] == second].set_index(["arm", "seed"])[metric]
    pairs = pd.concat({"x": x_values, "y": y_values}, axis=1, join="inner").dropna().reset_index()
    colors = arm_colors(arms)
    present = [arm for arm in arms if arm in set(pairs["arm"])]
    with figure_style():
        width = WIDTH if len(present) > MANY_ENTRIES else WIDTH * 0.75
        figure = new_figure(width, WIDTH * 0.55 + legend_height(present, width))
        axis = figure.subplots()
        for arm in present:
            part = pairs[pairs["arm"] == arm]
            axis.scatter(part["x"], part["y"], color=colors[arm], label=arm, s=18, alpha=0.85)
        if len(pairs):
            low = float(min(pairs["x"].min(), pairs["y"].min()))
            high = float(max(pairs["x"].max(), pairs["y"].max()))
            pad = 0.05 * (high - low) if high > low else 0.05 * (abs(high) or 1.0)
            axis.plot([low - pad, high + pad], [low - pad, high + pad], color="0.4", linewidth=0.8, linestyle="--")
            largest = float((pairs["x"] - pairs["y"]).abs().max())
            axis.set_title(f"Backend parity: {metric}, {first} vs {second} (largest |difference| {largest:.3g})")
        else:
            axis.set_title(f"Backend parity: {metric}, {first} vs {second} (no seed ran ok on both)")
        axis.set_xlabel(f"{metric} ({first})")
        axis.set_ylabel(f"{metric} ({second})")
        if present:
            figure_legend(figure, axis.collections[: len(present)])
    return figure


def activation_histograms(
    histograms: pd.DataFrame, *, arms: Sequence[str], layers: Sequence[str], title: str
) -> Figure:
    """A grid of per-layer activation histograms: one row per layer, one column per arm (the classic
    "Xavier vs He" figure of Glorot & Bengio 2010 / Saito ch. 6).

    Args:
        histograms: one row per (arm, layer_name, bin): low, high (the layer's fixed range), bins
            (count), fraction (of the probe batch's activations in that bin, mean over seeds).
        arms: column order. layers: row order (layer names, e.g. '0.dense').
        title: the figure's suptitle (names the epoch and backend).
    """
    with figure_style():
        figure = new_figure(min(WIDTH, 1.2 + 1.9 * len(arms)), 0.7 + 1.05 * len(layers))
        grid = figure.subplots(len(layers), len(arms), squeeze=False, sharey="row")
        indexed = histograms.set_index(["arm", "layer_name"]).sort_index()
        for row, layer in enumerate(layers):
            for column, arm in enumerate(arms):
                axis = grid[row][column]
                if (arm, layer) in indexed.index:
                    part = cast(pd.DataFrame, indexed.loc[(arm, layer)]).sort_values("bin")  # one row per bin
                    low, high, count = float(part["low"].iloc[0]), float(part["high"].iloc[0]), len(part)
                    width = (high - low) / count
                    axis.bar(
                        low + width * part["bin"].to_numpy(),
                        part["fraction"].to_numpy(),
                        width=width,
                        align="edge",
                        color=sns.color_palette("deep")[0],
                        linewidth=0,
                    )
                    axis.set_xlim(low, high)
                else:
                    axis.text(0.5, 0.5, "no layer", ha="center", va="center", transform=axis.transAxes, color="0.5")
                axis.tick_params(labelsize=6)
                if row == 0:
                    axis.set_title(arm, fontsize=8)
                if column == 0:
                    axis.set_ylabel(layer, fontsize=7)
        figure.suptitle(title, fontsize=9)
    return figure


def layer_statistic_plot(table: pd.DataFrame, *, statistic: str, arms: Sequence[str], log_scale: bool = True) -> Figure:
    """A per-layer statistic (e.g. gradient_norm) across layers, one panel per probed epoch, one line per arm.

    Args:
        table: one row per (arm, epoch, layer): value (mean over seeds).
        statistic: the y label. log_scale: a log y axis (norms span decades when gradients vanish).
    """
    epochs = sorted(table["epoch"].unique())
    colors = arm_colors(arms)
    present = [arm for arm in arms if arm in set(table["arm"])]
    with figure_style():
        columns = min(len(epochs), 4)
        rows = math.ceil(len(epochs) / columns)
        figure = new_figure(WIDTH, 0.6 + 2.3 * rows + legend_height(present, WIDTH))
        grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
        handles: list[Artist] = []
        for index, epoch in enumerate(epochs):
            axis = grid[index // columns][index % columns]
            for arm in present:
                part = table[(table["arm"] == arm) & (table["epoch"] == epoch)].sort_values("layer")
                positive = part["value"] > 0 if log_scale else part["value"].notna()
                (line,) = axis.plot(
                    part["layer"][positive],
                    part["value"][positive],
                    marker="o",
                    markersize=3,
                    color=colors[arm],
                    label=arm,
                )
                if index == 0:
                    handles.append(line)
            axis.set_title(f"epoch {epoch}", fontsize=8)
            axis.set_xlabel("layer (plan index)")
            if log_scale:
                axis.set_yscale("log")
                # plain '1e-06' labels: the default log labels are mathtext, which figure_style turns off
                axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        for index in range(len(epochs), rows * columns):
            grid[index // columns][index % columns].set_visible(False)
        grid[0][0].set_ylabel(statistic)
        if handles:
            figure_legend(figure, handles)
    return figure


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg), drawn under `figure_style` (tick labels made at draw time
    then also skip mathtext)."""
    buffer = io.BytesIO()
    with figure_style():
        figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from the PNG's IHDR chunk (bytes 16-24, big-endian)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def freeze_layout(figure: Figure) -> None:
    """Keep the positions constrained layout computed at the last draw: later saves (the PDF copy of
    a figure already drawn for the HTML) skip the layout pass, the costliest part of a save."""
    figure.set_layout_engine("none")


def numeric_axis_plot(
    table: pd.DataFrame,
    *,
    metric: str,
    axis_name: str,
    series: Sequence[str],
    backends: Sequence[str],
    log_x: bool,
) -> Figure:
    """The metric against a numeric grid axis: one panel per backend, one line per series (the variant
    of the other axis, or one line), the 95% CI as a band; an 'x' on the bottom edge marks a value whose
    trials all failed to finish ok (diverged, failed, timed out), where there is no mean to draw.

    Args:
        table: one row per (series, backend, x): x (the axis value), mean, ci_low, ci_high (NaN: no ok trial).
        series: the line labels in order. log_x: a log-scaled x axis (values spanning decades).
    """
    colors = arm_colors(series)
    present = [backend for backend in backends if backend in set(table["backend"])]
    with figure_style():
        figure = new_figure(WIDTH, 3.2 + legend_height(series, WIDTH))
        grid = figure.subplots(1, max(len(present), 1), squeeze=False, sharey=True)
        handles: list[Artist] = []
        for index, backend in enumerate(present):
            axis = grid[0][index]
            for name in series:
                part = table[(table["backend"] == backend) & (table["series"] == name)].sort_values("x")
                if part.empty:
                    continue
                x = part["x"].to_numpy(dtype=np.float64)
                mean = part["mean"].to_numpy(dtype=np.float64)
                (line,) = axis.plot(x, mean, marker="o", markersize=3, color=colors[name], label=name)
                low = part["ci_low"].to_numpy(dtype=np.float64)
                high = part["ci_high"].to_numpy(dtype=np.float64)
                axis.fill_between(x, low, high, color=colors[name], alpha=0.2, linewidth=0)
                missing = x[np.isnan(mean)]
                if len(missing):  # no ok trial at these values: mark them on the bottom edge
                    axis.plot(
                        missing,
                        np.zeros(len(missing)),
                        linestyle="none",
                        marker="x",
                        color=colors[name],
                        transform=axis.get_xaxis_transform(),
                        clip_on=False,
                    )
                if index == 0:
                    handles.append(line)
            if log_x:
                axis.set_xscale("log")
                axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_xlabel(axis_name)
            axis.set_title(backend, fontsize=9)
        grid[0][0].set_ylabel(metric)
        if len(handles) > 1:
            figure_legend(figure, handles)
    return figure
