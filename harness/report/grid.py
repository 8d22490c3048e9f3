"""Reports that scale with the grid: beyond LARGE_GRID_ARMS arms, the grid's structure instead of per-arm rows.

A 2,000-arm sweep as 2,000-row tables and 2,000-line plots is unreadable (and took 110 s and 47 MB).
For a large grid the report shows, per backend (figures: the first backend):

    Top and bottom arms       the LISTED_ARMS best and worst arms with their axis labels.
    Main effects              per axis and variant, the mean over the arms with that variant (the
                              other axes averaged out) and its 95% interval over those arms.
    Importance                an ANOVA on the grid: each axis's (and pair's) share of the variance
                              between arms (harness.analysis.grid_effects.anova_importance).
    Interaction heatmaps      for each pair of axes (at most MAX_INTERACTIONS), the mean over the others.

The per-arm builders (summary, comparisons, per-arm figures) step aside for a large grid
(`harness.report.sections.is_large_grid`); every per-arm number stays in the results folder's
CSVs (summary.csv, final.csv, epochs.csv). Each function here is an independent builder: tables
take `Results` and return DisplayTables, figures take `Results` and return ReportFigures.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis import grid_effects
from harness.analysis.statistics import mean_interval
from harness.analysis.text import format_number
from harness.measures import OK, is_higher_better
from harness.report import figures
from harness.report.gallery import ReportFigure
from harness.report.sections import DisplayTable, _interval, _p_value, _table, is_large_grid

if TYPE_CHECKING:
    from harness.analysis import Results

LISTED_ARMS = 10  # best and worst arms listed
MAX_INTERACTIONS = 6  # pairs of axes drawn as heatmaps (3 axes: 3 pairs; 4 axes: 6)
CSV_NOTE = "Every arm's numbers are in the results folder's summary.csv and final.csv."


def _means(results: Results) -> pd.DataFrame:
    return grid_effects.arm_means(results.final(), results.primary_metric, results.axes)


def top_bottom_table(results: Results) -> list[DisplayTable]:
    """The LISTED_ARMS best and worst arms of a large grid, per backend."""
    if not is_large_grid(results):
        return []
    means, metric = _means(results), results.primary_metric
    final = results.final()
    ok = final[final["status"] == OK]
    seed_values = {  # per listed arm only: Results.summary() of every arm took seconds on 2,000 arms
        key: group[metric].to_numpy(dtype=float) for key, group in ok.groupby(["arm", "backend"], sort=False)
    }
    rows = []
    for backend in results.backends:
        best, worst = grid_effects.ranked_arms(means[means["backend"] == backend], metric, LISTED_ARMS)
        for place, part in (("top", best), ("bottom", worst.iloc[::-1])):  # bottom 1: the worst
            for rank, row in enumerate(part.to_dict("records"), start=1):
                interval = mean_interval(seed_values.get((row["arm"], backend), []), metric)
                low, high = interval.low, interval.high
                rows.append(
                    [
                        f"{place} {rank}",
                        row["arm"],
                        backend,
                        *(row[axis] for axis in results.axes),
                        int(row["n"]),
                        format_number(float(row["mean"])),
                        _interval(low, high),
                    ]
                )
    direction = "highest" if is_higher_better(metric) else "lowest"
    return [
        _table(
            "top_bottom",
            "Top and bottom arms",
            f"The {LISTED_ARMS} best arms ({direction} {metric}) and the {LISTED_ARMS} worst, of "
            f"{len(results.arms)}; mean over ok seeds and its 95% CI. {CSV_NOTE}",
            ["place", "arm", "backend", *results.axes, "n", f"{metric} (mean)", "95% CI"],
            rows,
        )
    ]


def main_effects_table(results: Results) -> list[DisplayTable]:
    """Per axis and variant: the mean over the arms with that variant and its 95% CI over them."""
    if not is_large_grid(results):
        return []
    table = grid_effects.main_effects(_means(results), results.primary_metric, results.axes, results.variant_order())
    rows = [
        [
            row["axis"],
            row["variant"],
            row["backend"],
            int(row["n"]),
            format_number(float(row["mean"])),
            _interval(float(row["ci_low"]), float(row["ci_high"])),
        ]
        for row in table.to_dict("records")
    ]
    return [
        _table(
            "main_effects",
            "Main effects",
            f"Mean final {results.primary_metric} of the arms with each variant, the other axes averaged "
            "out: each arm's mean over its ok seeds is one value, the 95% t interval is over those arms.",
            ["axis", "variant", "backend", "arms", f"{results.primary_metric} (mean)", "95% CI"],
            rows,
        )
    ]


def importance_table(results: Results) -> list[DisplayTable]:
    """The ANOVA on the grid: each axis's and pair's share of the variance between arms."""
    if not is_large_grid(results):
        return []
    means = _means(results)
    frames = [grid_effects.anova_importance(means, results.axes, backend) for backend in results.backends]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows = [
        [
            row["term"],
            row["backend"],
            format_number(row["df"]),
            f"{row['share']:.1%}",
            format_number(row["F"], 3),
            _p_value(row["p"]),
        ]
        for row in table.to_dict("records")
    ]
    return [
        _table(
            "importance",
            "Hyperparameter importance",
            f"ANOVA of the arms' mean {results.primary_metric} on the grid's axes as categorical factors (and "
            "their pairs when the grid has the arms for it; statsmodels OLS, type II sums of squares): each "
            "term's share of the variance between arms (eta squared), F and p. Residual: what no term explains "
            "(seed noise, higher-order interactions).",
            ["term", "backend", "df", "share of variance", "F", "p"],
            rows,
        )
    ]


def main_effect_figures(results: Results) -> list[ReportFigure]:
    if not is_large_grid(results):
        return []
    backend = results.backends[0]
    table = grid_effects.main_effects(_means(results), results.primary_metric, results.axes, results.variant_order())
    table = table[table["backend"] == backend]
    if table.empty:
        return []
    figure = figures.main_effects_plot(table, metric=results.primary_metric, axes=results.axes)
    return [
        ReportFigure(
            "main_effects",
            f"Main effects ({backend})",
            f"Mean {results.primary_metric} per variant of each axis, the other axes averaged out, with the 95% "
            "interval over the arms (the Main effects table).",
            figure,
        )
    ]


def importance_figures(results: Results) -> list[ReportFigure]:
    if not is_large_grid(results):
        return []
    backend = results.backends[0]
    table = grid_effects.anova_importance(_means(results), results.axes, backend)
    if table.empty:
        return []
    figure = figures.importance_plot(table, title=f"Share of the variance between arms ({backend})")
    return [
        ReportFigure(
            "importance",
            f"Hyperparameter importance ({backend})",
            "Each axis's and pair's share of the variance of the arms' means (the Hyperparameter importance table).",
            figure,
        )
    ]


def interaction_figures(results: Results) -> list[ReportFigure]:
    if not is_large_grid(results) or len(results.axes) < 2:
        return []
    backend, metric = results.backends[0], results.primary_metric
    means, order = _means(results), results.variant_order()
    found = []
    for rows, columns in list(itertools.combinations(results.axes, 2))[:MAX_INTERACTIONS]:
        table = grid_effects.interaction(means, rows, columns, order, backend)
        if table.isna().all().all():
            continue
        others = [axis for axis in results.axes if axis not in (rows, columns)]
        figure = figures.grid_heatmap(
            table,
            metric=metric,
            higher_is_better=is_higher_better(metric),
            title=f"Mean {metric}: {rows} x {columns} ({backend})",
        )
        found.append(
            ReportFigure(
                f"interaction_{rows}_{columns}".replace(".", "_"),
                f"Interaction: {rows} x {columns} ({backend})",
                f"Mean {metric} of each cell"
                + (f", averaged over {', '.join(others)}" if others else "")
                + ". Parallel bands mean the two axes act independently; a pattern that bends means they interact.",
                figure,
            )
        )
    return found


GRID_TABLE_BUILDERS = [top_bottom_table, main_effects_table, importance_table]
GRID_FIGURE_BUILDERS = [main_effect_figures, importance_figures, interaction_figures]
