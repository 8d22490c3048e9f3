"""The structure of a big grid: main effects, two-axis interactions, top and bottom arms, importance.

A grid of hundreds or thousands of arms is read through its axes, not arm by arm. Each function
takes `arm_means` (one row per arm and backend: the arm's mean of the metric over its ok seeds,
with its variant label on every axis) and returns a plain frame:

    main_effects      per axis and variant: the mean over the arms that have that variant (the other
                      axes averaged out) with its 95% t interval over those arms (`describe_groups`).
    interaction       for two axes: the mean over the other axes of every (variant, variant) cell.
    ranked_arms       the best and the worst arms, in the metric's own direction.
    anova_importance  an ANOVA on the grid (statsmodels OLS with every axis as a categorical factor,
                      and every pair of axes when the residual degrees of freedom allow it; type II
                      sums of squares): each term's share of the total sum of squares (eta squared),
                      F and p. A share is how much of the spread between arms that axis (or pair)
                      explains: the grid's answer to "which hyperparameter matters".
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.analysis.statistics import describe_groups
from harness.measures import OK, is_higher_better

MAIN_EFFECT_COLUMNS = ("backend", "axis", "variant", "n", "mean", "std", "sem", "ci_low", "ci_high", "ci_method")
IMPORTANCE_COLUMNS = ("backend", "term", "df", "sum_sq", "share", "F", "p")


def arm_means(final: pd.DataFrame, metric: str, axes: Sequence[str]) -> pd.DataFrame:
    """One row per (arm, backend) with an ok, finite value: arm, backend, every axis label, n, mean."""
    ok = final[(final["status"] == OK) & np.isfinite(final[metric].astype(float))]
    grouped = ok.groupby(["arm", "backend", *axes], sort=False, observed=True)[metric]
    table = grouped.agg(["size", "mean"]).rename(columns={"size": "n"}).reset_index()
    return table


def main_effects(
    means: pd.DataFrame, metric: str, axes: Sequence[str], order: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Per backend, axis and variant (in suite order): the mean over arms with its 95% CI (`MAIN_EFFECT_COLUMNS`;
    the interval keeps to the metric's range, `describe_groups`)."""
    frames = []
    values = means.rename(columns={"mean": metric, "n": "_seeds"})
    for axis in axes:
        described = describe_groups(values, ["backend", axis], [metric])
        described = described.rename(columns={axis: "variant"}).assign(axis=axis)
        rank = {label: index for index, label in enumerate(order.get(axis, []))}
        described = described.assign(_order=described["variant"].map(rank)).sort_values(
            ["backend", "_order"], kind="stable"
        )
        frames.append(described)
    if not frames:
        return pd.DataFrame(columns=list(MAIN_EFFECT_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(MAIN_EFFECT_COLUMNS)]


def interaction(
    means: pd.DataFrame, rows: str, columns: str, order: Mapping[str, Sequence[str]], backend: str
) -> pd.DataFrame:
    """Mean over arms (the other axes averaged out) of every (rows, columns) cell on one backend."""
    part = means[means["backend"] == backend]
    table = part.groupby([rows, columns], observed=True)["mean"].mean().unstack(columns)
    table = table.reindex(index=list(order.get(rows, table.index)), columns=list(order.get(columns, table.columns)))
    table.index.name, table.columns.name = rows, columns
    return table


def ranked_arms(means: pd.DataFrame, metric: str, count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best `count`, worst `count`) rows of `means`, best first / worst last, in the metric's direction."""
    ordered = means.sort_values("mean", ascending=not is_higher_better(metric), kind="stable")
    return ordered.head(count), ordered.tail(count)


def anova_importance(means: pd.DataFrame, axes: Sequence[str], backend: str) -> pd.DataFrame:
    """The ANOVA of the module docstring on one backend's arm means (`IMPORTANCE_COLUMNS`; empty when the
    grid has too few arms for even the main effects)."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    part = means[means["backend"] == backend]
    names = {axis: f"f{index}" for index, axis in enumerate(axes) if part[axis].nunique() > 1}
    if not names:
        return pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))
    frame = part.rename(columns=names)[[*names.values(), "mean"]].astype({name: str for name in names.values()})
    main = [f"C({name})" for name in names.values()]
    pairs = [f"{a}:{b}" for a, b in itertools.combinations(main, 2)]
    levels = {name: frame[name].nunique() for name in names.values()}
    main_df = sum(level - 1 for level in levels.values())
    pair_df = sum((levels[a] - 1) * (levels[b] - 1) for a, b in itertools.combinations(names.values(), 2))
    residual = len(frame) - 1 - main_df
    terms = main + (pairs if residual - pair_df >= max(10, len(frame) // 10) else [])
    if residual < 2:
        return pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty cell makes the design rank deficient: statsmodels warns
        fit = smf.ols("mean ~ " + " + ".join(terms), data=frame).fit()
        table = anova_lm(fit, typ=2)
    total = float(((frame["mean"] - frame["mean"].mean()) ** 2).sum())
    back = {f"C({name})": axis for axis, name in names.items()}
    rows = []
    for term, row in table.iterrows():
        label = " x ".join(back.get(part_name, part_name) for part_name in str(term).split(":"))
        rows.append(
            {
                "backend": backend,
                "term": label,
                "df": float(row["df"]),
                "sum_sq": float(row["sum_sq"]),
                "share": float(row["sum_sq"]) / total if total > 0 else math.nan,
                "F": float(row["F"]),
                "p": float(row["PR(>F)"]),
            }
        )
    result = pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))
    is_residual = result["term"] == "Residual"
    return pd.concat(
        [result[~is_residual].sort_values("share", ascending=False, kind="stable"), result[is_residual]],
        ignore_index=True,
    )
