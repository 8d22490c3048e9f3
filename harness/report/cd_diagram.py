"""The critical-difference diagram (Demsar 2006, figure 1) as a pure function: mean ranks in, Figure out.

The rank axis runs from 1 (best) on the left to k on the right. Each arm hangs from its mean
rank on a line to its label, the better half labelled on the left, the worse half on the right.
The bar above the axis is as long as the critical difference; thick bars under the axis join
arms whose mean ranks differ by no more than it (Nemenyi: not significantly different).
Drawn like `harness.report.figures`: an Agg canvas, no pyplot, the style applied only inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from harness.report.figures import WIDTH, figure_style, new_figure

LABEL_FONT = 9.0  # points
ROW_STEP = 0.5  # data units between label rows
CLIQUE_STEP = 0.22  # data units between clique bars
INCHES_PER_UNIT = 0.42  # figure height per data unit of the vertical layout


def _label_margin(labels: Sequence[str]) -> float:
    """The figure fraction each side of the rank axis that the longest label needs (0.55 em per character)."""
    longest = max((len(label) for label in labels), default=1)
    inches = longest * 0.55 * LABEL_FONT / 72 + 0.5
    return min(0.4, max(0.12, inches / WIDTH))


def critical_difference_diagram(
    mean_ranks: pd.Series,
    critical_difference: float,
    cliques: Sequence[Sequence[str]],
    *,
    title: str = "",
) -> Figure:
    """Draw a critical-difference diagram.

    Args:
        mean_ranks: arm -> mean rank over datasets (1 = best); drawn in ascending order.
        critical_difference: Nemenyi's CD in rank units (the length of the bar above the axis).
        cliques: groups of arms joined by a bar (`Ranking.cliques()`): not significantly different.
        title: drawn at the top of the figure.

    Returns:
        A Figure about WIDTH inches wide, its height growing with the arms and cliques.
    """
    ordered = mean_ranks.sort_values(kind="stable")
    names = [str(name) for name in ordered.index]
    values = ordered.to_numpy(dtype=float)
    num_arms = len(names)
    highest = max(num_arms, math.ceil(values.max())) if num_arms else 1
    left_count = math.ceil(num_arms / 2)
    rows = max(left_count, num_arms - left_count)
    clique_depth = 0.3 + CLIQUE_STEP * len(cliques)
    top, bottom = 1.5, -(clique_depth + ROW_STEP * (rows + 0.6))
    labels = [f"{name} ({value:.2f})" for name, value in zip(names, values)]
    margin = _label_margin(labels)
    with figure_style():
        figure = new_figure(WIDTH, max(2.0, (top - bottom) * INCHES_PER_UNIT + 0.5))
        figure.set_layout_engine("none")
        if title:
            figure.suptitle(title, fontsize=11, y=0.98)
        axes = figure.add_axes((margin, 0.02, 1 - 2 * margin, 0.98 - 0.5 / figure.get_figheight() - 0.02))
        axes.set_axis_off()
        axes.set_xlim(1, highest)
        axes.set_ylim(bottom, top)
        line: dict[str, Any] = {"color": "0.1", "linewidth": 1.0, "solid_capstyle": "butt", "clip_on": False}
        axes.plot([1, highest], [0, 0], **line)
        for tick in [1 + half / 2 for half in range(2 * (highest - 1) + 1)]:
            length = 0.18 if tick == int(tick) else 0.09
            axes.plot([tick, tick], [0, length], **line)
            if tick == int(tick):
                axes.text(tick, 0.25, str(int(tick)), ha="center", va="bottom", fontsize=LABEL_FONT)
        # the critical difference as a bar from rank 1, above the axis
        cd_end = 1 + critical_difference
        axes.plot([1, cd_end], [1.05, 1.05], **{**line, "linewidth": 1.5})
        for end in (1, cd_end):
            axes.plot([end, end], [0.95, 1.15], **line)
        axes.text(
            (1 + cd_end) / 2, 1.2, f"CD = {critical_difference:.2f}", ha="center", va="bottom", fontsize=LABEL_FONT
        )
        for index, (value, label) in enumerate(zip(values, labels)):
            on_left = index < left_count
            row = index if on_left else num_arms - 1 - index
            y = -(clique_depth + ROW_STEP * (row + 0.6))
            end = 1 - 0.02 * (highest - 1) if on_left else highest + 0.02 * (highest - 1)
            axes.plot([value, value, end], [0, y, y], **line)
            axes.text(
                end + (-0.01 if on_left else 0.01) * (highest - 1),
                y,
                label,
                ha="right" if on_left else "left",
                va="center",
                fontsize=LABEL_FONT,
            )
        position = {name: value for name, value in zip(names, values)}
        pad = 0.015 * (highest - 1)
        for number, clique in enumerate(cliques):
            ranks = [position[str(name)] for name in clique if str(name) in position]
            if len(ranks) < 2:
                continue
            y = -(0.25 + CLIQUE_STEP * number)
            axes.plot([min(ranks) - pad, max(ranks) + pad], [y, y], **{**line, "linewidth": 3.0})
    return figure
