"""The grid's numeric axes (a swept weight std, learning rate, depth) and the primary metric along each:
the data behind the report's numeric-axis table (sections.py) and figure (gallery.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis.text import summary_groups

if TYPE_CHECKING:
    from harness.analysis import Results

MIN_NUMERIC_VALUES = 3  # a numeric axis with fewer values is better read from the per-arm tables


@dataclass(frozen=True)
class NumericAxis:
    """A grid axis whose every label is a number (a swept value: a weight std, a learning rate, a depth),
    and the one other axis (if any) whose variants become the series drawn against it."""

    name: str
    values: dict[str, float]  # label -> value, in suite order
    series_axis: str | None

    @property
    def log_scale(self) -> bool:
        """Positive values spanning at least two decades: read on a log axis."""
        values = list(self.values.values())
        return min(values) > 0 and max(values) / min(values) >= 100

    def series_of(self, labels: Mapping[str, str]) -> str:
        """The series an arm belongs to, from its {axis: label}: the other axis' label, or the axis name."""
        return labels[self.series_axis] if self.series_axis is not None else self.name


def numeric_axes(results: Results) -> list[NumericAxis]:
    """The grid's numeric axes (every label a finite number, at least MIN_NUMERIC_VALUES of them), in a
    grid of at most two axes (a third would leave several arms at one point of one line)."""
    if len(results.axes) > 2:
        return []
    found = []
    for axis, labels in results.variant_order().items():
        try:
            values = {label: float(label) for label in labels}
        except ValueError:
            continue
        if len(values) < MIN_NUMERIC_VALUES or not all(math.isfinite(value) for value in values.values()):
            continue
        others = [other for other in results.axes if other != axis]
        found.append(NumericAxis(axis, values, others[0] if others else None))
    return found


def numeric_axis_frame(results: Results, axis: NumericAxis) -> pd.DataFrame:
    """One row per (series, backend, axis value): series, backend, x, label, mean, ci_low, ci_high of the
    primary metric over the ok seeds (NaN where none finished ok), n_ok and n_trials; `summary()`'s order."""
    labels = results.arm_labels().set_index("arm")
    rows = []
    for arm, backend, _means, counts, primary in summary_groups(results):
        arm_labels = {str(key): str(value) for key, value in labels.loc[arm].items()}
        label = arm_labels[axis.name]
        interval = (
            (float(primary["mean"]), float(primary["ci_low"]), float(primary["ci_high"]))
            if primary is not None and int(primary["n"]) > 0
            else (math.nan, math.nan, math.nan)
        )
        rows.append(
            {
                "series": axis.series_of(arm_labels),
                "backend": backend,
                "x": axis.values[label],
                "label": label,
                "mean": interval[0],
                "ci_low": interval[1],
                "ci_high": interval[2],
                "n_ok": int(counts["n_ok"]),
                "n_trials": int(counts["n_trials"]),
            }
        )
    return pd.DataFrame(
        rows, columns=["series", "backend", "x", "label", "mean", "ci_low", "ci_high", "n_ok", "n_trials"]
    )
