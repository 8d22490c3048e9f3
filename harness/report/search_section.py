"""The report's "Hyperparameter search" section, present when the suite searched (`Results.search`).

Tables: each arm's chosen values with the budget its search spent, and the ranges of every round.
Figures (seaborn):
- the objective against each searched dimension, per arm, coloured by round, each later round's
  narrowed range shaded (log axes for log dimensions): where the good values live;
- the expected best validation score against the number of configurations tried (Dodge et al. 2019,
  "Show Your Work"), from each arm's round-0 configurations (the independent draws from the
  full ranges), with a 95% bootstrap band: whether the ranking of the arms depends on the budget;
- the learning curves (the objective's metric per epoch, mean over search seeds) of each arm's best
  configurations;
- learning-rate sensitivity: the objective against every dimension named `*.lr`, all arms on one
  axis, with the median per log-spaced bin.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from harness.analysis.text import format_number
from harness.measures import is_higher_better
from harness.report.figures import WIDTH, arm_colors, figure_style, new_figure
from harness.report.gallery import ReportFigure
from harness.report.sections import DisplayTable

if TYPE_CHECKING:
    from harness.analysis import Results
    from harness.search.tables import SearchTables

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0  # a fixed band: the same report from the same results
MAX_PANELS = 6  # arms side by side in one figure; beyond, they wrap into rows


def search_tables(results: Results) -> list[DisplayTable]:
    """The chosen values with each arm's search budget, and the ranges each round sampled in."""
    search = results.search
    if search is None:
        return []
    chosen = search.chosen.set_index("arm") if not search.chosen.empty else pd.DataFrame()
    rows = []
    for record in search.budget.to_dict("records"):
        arm = str(record["arm"])
        values = [
            _cell(chosen.at[arm, path]) if arm in chosen.index and path in chosen.columns else "-"
            for path in search.dimensions
        ]
        objective = _cell(chosen.at[arm, search.objective]) if arm in chosen.index else "-"
        rows.append(
            (
                arm,
                *values,
                objective,
                str(record["configurations"]),
                str(record["trials_run"]),
                str(record["optimizer_steps"]),
                format_number(float(record["train_seconds"])),
            )
        )
    chosen_table = DisplayTable(
        "search_chosen",
        "Hyperparameter search: chosen values and budget",
        f"Each arm's configuration with the best {search.objective} (validation, mean over the search seeds), which "
        "then ran on the suite's seeds for the comparison above; and what each arm's search spent: configurations, "
        "trials (configurations x search seeds, pruner rungs included), optimizer steps and training seconds.",
        ("arm", *search.dimensions, search.objective, "configs", "trials", "steps", "train s"),
        tuple(rows),
    )
    range_rows = tuple(
        (
            str(r["arm"]),
            str(r["round"]),
            str(r["dimension"]),
            str(r["choices"]) if r["kind"] == "choice" else f"[{_cell(r['low'])}, {_cell(r['high'])}]",
        )
        for r in search.ranges.to_dict("records")
    )
    ranges_table = DisplayTable(
        "search_ranges",
        "Hyperparameter search: ranges per round",
        "The range each round sampled in: round 0 is the suite's; each later round spans the best `keep` fraction "
        "of the round before (choices: the values seen among them).",
        ("arm", "round", "dimension", "range"),
        range_rows,
    )
    return [chosen_table, ranges_table]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return format_number(value)
    return "-" if value is None else str(value)


def search_figures(results: Results) -> list[ReportFigure]:
    """The search section's figures (none when the suite did not search)."""
    search = results.search
    if search is None or search.configurations.empty:
        return []
    arms = [arm for arm in results.arms if arm in set(search.configurations["arm"])]
    found = [_scatter(search, arms, path) for path in search.dimensions]
    found.append(_expected_best(search, arms))
    if not search.curves.empty:
        found.append(_best_curves(search, arms))
    found.extend(_sensitivity(search, arms, path) for path in search.dimensions if path.split(".")[-1] == "lr")
    return [figure for figure in found if figure is not None]


def _log_axis(axis: Axes, dense: bool = True) -> None:
    """A log x axis labelled in plain text (0.001): the report's style turns mathtext off. Dense: ticks at
    1, 2 and 5 per decade (a narrowed range inside one decade still gets some); else decades only (narrow panels)."""
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if dense else (1.0,)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())


def _kind(search: SearchTables, path: str) -> str:
    kinds = search.ranges.loc[search.ranges["dimension"] == path, "kind"]
    return str(kinds.iloc[0]) if len(kinds) else "uniform"


def _panels(count: int) -> tuple[int, int]:
    columns = min(count, MAX_PANELS // 2 if count > MAX_PANELS else count)
    return math.ceil(count / max(columns, 1)), max(columns, 1)


def _scatter(search: SearchTables, arms: list[str], path: str) -> ReportFigure | None:
    table = search.configurations
    mine = [arm for arm in arms if table.loc[table["arm"] == arm, path].notna().any()]
    if not mine:
        return None
    kind = _kind(search, path)
    rows, columns = _panels(len(mine))
    with figure_style():
        figure = new_figure(WIDTH, 2.6 * rows)
        axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
        palette = sns.color_palette("crest", n_colors=int(table["round"].max()) + 1)
        for index, arm in enumerate(mine):
            axis = axes[index // columns][index % columns]
            data = table[(table["arm"] == arm) & table[path].notna()]
            if kind == "choice":
                sns.stripplot(
                    data=data.astype({path: str}),
                    x=path,
                    y=search.objective,
                    hue="round",
                    palette=palette,
                    ax=axis,
                    legend=index == 0,
                )
            else:
                rounds = search.ranges[(search.ranges["arm"] == arm) & (search.ranges["dimension"] == path)]
                for r in rounds.to_dict("records"):
                    if int(r["round"]) > 0:  # the narrowed ranges; round 0 is the whole axis
                        axis.axvspan(
                            float(r["low"]), float(r["high"]), color=palette[int(r["round"])], alpha=0.15, lw=0
                        )
                sns.scatterplot(
                    data=data,
                    x=path,
                    y=search.objective,
                    hue="round",
                    palette=palette,
                    ax=axis,
                    legend=index == 0,
                    s=22,
                )
                if kind in ("log_uniform", "int_log_uniform"):
                    _log_axis(axis, dense=columns <= 2)
            pruned = int((data["status"] != "ok").sum())
            axis.set_title(arm + (f" ({pruned} without objective)" if pruned else ""), fontsize="small")
        for index in range(len(mine), rows * columns):
            axes[index // columns][index % columns].set_visible(False)
    return ReportFigure(
        f"search_{path.replace('.', '_')}",
        f"Search: {search.objective} vs {path}",
        f"Every configuration's {search.objective} (validation, mean over search seeds) against its {path}, "
        "coloured by round; shaded: each later round's narrowed range. Configurations that diverged, timed out or "
        "were pruned have no objective and are not drawn.",
        figure,
    )


def expected_best(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """E[best of n draws] for n = 1..N from the empirical distribution of `values` (Dodge et al. 2019):
    with v_(1) <= ... <= v_(N) (best last), sum_i v_(i) ((i/N)^n - ((i-1)/N)^n)."""
    ordered = np.sort(values) if higher_is_better else -np.sort(-values)
    count = len(ordered)
    positions = np.arange(1, count + 1) / count
    n = np.arange(1, count + 1)[:, None]
    weights = positions[None, :] ** n - (positions[None, :] - 1 / count) ** n
    return np.asarray(weights @ ordered)


def _expected_best(search: SearchTables, arms: list[str]) -> ReportFigure | None:
    table = search.configurations
    higher = is_higher_better(search.objective)
    colors = arm_colors(arms)
    generator = np.random.default_rng(BOOTSTRAP_SEED)
    with figure_style():
        figure = new_figure(WIDTH, 3.2)
        axis = figure.subplots()
        drawn = 0
        for arm in arms:
            first = table[(table["arm"] == arm) & (table["round"] == 0)]
            values = first[search.objective].to_numpy(dtype=float)
            if not np.isfinite(values).any():
                continue
            # a configuration without objective (diverged, pruned) is a draw that came out worst: it counts
            # as the worst score any configuration of the arm reached
            worst = np.nanmin(values) if higher else np.nanmax(values)
            values = np.where(np.isnan(values), worst, values)
            curve = expected_best(values, higher)
            samples = np.stack(
                [expected_best(generator.choice(values, len(values)), higher) for _ in range(BOOTSTRAP_SAMPLES)]
            )
            low, high = np.percentile(samples, [2.5, 97.5], axis=0)
            n = np.arange(1, len(values) + 1)
            axis.plot(n, curve, color=colors[arm], label=arm)
            axis.fill_between(n, low, high, color=colors[arm], alpha=0.2, lw=0)
            drawn += 1
        if not drawn:
            return None
        axis.set_xlabel("configurations tried (round 0)")
        axis.set_ylabel(f"expected best {search.objective}")
        axis.legend(frameon=False, fontsize="small")
    return ReportFigure(
        "search_expected_best",
        "Search: expected best validation score vs budget",
        f"Expected best {search.objective} among n configurations drawn from each arm's round-0 configurations "
        "(independent draws from the full ranges; Dodge et al. 2019, 'Show Your Work'), with a 95% bootstrap band "
        "(a configuration without objective counts as the arm's worst score) "
        f"({BOOTSTRAP_SAMPLES} resamples). Where the curves cross, which arm wins depends on the search budget.",
        figure,
    )


def _best_curves(search: SearchTables, arms: list[str]) -> ReportFigure:
    curves = search.curves
    mine = [arm for arm in arms if arm in set(curves["arm"])]
    rows, columns = _panels(len(mine))
    metric = str(curves["metric"].iloc[0])
    with figure_style():
        figure = new_figure(WIDTH, 2.6 * rows)
        axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
        for index, arm in enumerate(mine):
            axis = axes[index // columns][index % columns]
            data = curves[curves["arm"] == arm].assign(
                configuration=lambda frame: (
                    "#" + frame["rank"].astype(str) + " (round " + frame["round"].astype(str) + ")"
                )
            )
            sns.lineplot(
                data=data, x="epoch", y="value", hue="configuration", errorbar=None, ax=axis, palette="flare_r"
            )
            axis.set_title(arm, fontsize="small")
            axis.set_ylabel(metric)
            axis.legend(frameon=False, fontsize="x-small")
        for index in range(len(mine), rows * columns):
            axes[index // columns][index % columns].set_visible(False)
    return ReportFigure(
        "search_best_curves",
        "Search: learning curves of the best configurations",
        f"{metric} per epoch (mean over search seeds) of each arm's best configurations by {search.objective}, "
        "best first.",
        figure,
    )


BINS = 8


def _sensitivity(search: SearchTables, arms: list[str], path: str) -> ReportFigure | None:
    table = search.configurations
    data = table[table[path].notna() & table[search.objective].notna() & table["arm"].isin(arms)]
    if data.empty:
        return None
    colors = arm_colors(arms)
    with figure_style():
        figure = new_figure(WIDTH, 3.2)
        axis = figure.subplots()
        values = data[path].astype(float)
        edges = np.geomspace(values.min(), values.max() * (1 + 1e-9), BINS + 1) if values.min() > 0 else None
        for arm in arms:
            mine = data[data["arm"] == arm]
            if mine.empty:
                continue
            axis.scatter(mine[path].astype(float), mine[search.objective], color=colors[arm], s=10, alpha=0.5)
            if edges is not None:
                lr = mine[path].to_numpy(dtype=float)
                bins = np.clip(np.digitize(lr, edges) - 1, 0, BINS - 1)
                medians = mine.groupby(bins)[search.objective].median()
                centers = np.sqrt(edges[:-1] * edges[1:])[medians.index.to_numpy(dtype=int)]
                axis.plot(centers, medians.to_numpy(), color=colors[arm], label=arm, marker="o", ms=3)
        if edges is not None:
            _log_axis(axis)
        axis.set_xlabel(path)
        axis.set_ylabel(search.objective)
        axis.legend(frameon=False, fontsize="small")
    return ReportFigure(
        f"search_sensitivity_{path.replace('.', '_')}",
        f"Search: sensitivity to {path}",
        f"{search.objective} of every configuration against its {path} (all rounds), with the median per "
        f"log-spaced bin ({BINS} bins): how wide the window of good values is for each arm.",
        figure,
    )
