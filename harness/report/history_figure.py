"""The figure of `harness history`: each arm's metric over the stored runs, with its CI and the steps flagged."""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STEP_MARKERS = {"REGRESSED": ("v", "#c0392b"), "IMPROVED": ("^", "#1e8449")}  # step -> marker, colour


def history_figure(table: pd.DataFrame, metric: str) -> Figure:
    """Mean and 95% CI of `metric` per (arm, backend) over runs (x: run, labelled with its commit),
    a REGRESSED step marked with a red triangle down, an IMPROVED one with a green triangle up.

    Args:
        table: `harness.check.history.history_table`.
        metric: the metric it shows (the y label).
    """
    figure = Figure(figsize=(max(6.0, 1.2 * table["run"].nunique() + 3.0), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    several_backends = table["backend"].nunique() > 1
    flagged_labels: set[str] = set()
    for (arm, backend), rows in table.groupby(["arm", "backend"], sort=False):
        rows = rows.sort_values("run")
        label = f"{arm} ({backend})" if several_backends else str(arm)
        lower = (rows["mean"] - rows["ci_low"]).clip(lower=0).fillna(0)
        upper = (rows["ci_high"] - rows["mean"]).clip(lower=0).fillna(0)
        axis.errorbar(rows["run"], rows["mean"], yerr=[lower, upper], marker="o", capsize=3, label=label)
        for step, (marker, colour) in STEP_MARKERS.items():
            flagged = rows[rows["step"] == step]
            if flagged.empty:
                continue
            name = f"{step.lower()} step"
            axis.scatter(
                flagged["run"],
                flagged["mean"],
                marker=marker,
                s=140,
                color=colour,
                zorder=5,
                label=None if name in flagged_labels else name,
            )
            flagged_labels.add(name)
    runs = table.drop_duplicates("run").sort_values("run")
    axis.set_xticks(runs["run"].tolist(), [f"{run}\n{commit}" for run, commit in zip(runs["run"], runs["commit"])])
    axis.set_xlabel("run (commit)")
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} over runs (mean and 95% CI over seeds)")
    if len(table):
        axis.legend(fontsize="small", loc="best")
    return figure
