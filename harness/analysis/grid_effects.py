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
from typing import cast

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
    """The ANOVA of the module docstring on one backend's arm means (`IMPORTANCE_COLUMNS`, the terms by share,
    the residual last; empty when the grid has too few arms for even the main effects).

    A complete grid with one value per cell (every sweep that ran whole) is balanced: the sums of squares
    are the classical ones from cell means (type II equals type I there) and cost nothing. Otherwise
    (failed arms, `exclude`) statsmodels fits the main effects (type II), without pairs.
    """
    part = means[means["backend"] == backend]
    varying = [axis for axis in axes if part[axis].nunique() > 1]
    if not varying:
        return pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))
    values = part["mean"].to_numpy(dtype=np.float64)
    levels = {axis: part[axis].nunique() for axis in varying}
    balanced = part.groupby(varying, observed=True).size().eq(1).all() and len(part) == math.prod(levels.values())
    terms = _balanced_sums_of_squares(part, varying, values) if balanced else _unbalanced_sums_of_squares(part, varying)
    if terms is None:
        return pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))
    total = float(((values - values.mean()) ** 2).sum())
    explained_df = sum(df for _, df, _ in terms)
    residual_df = len(values) - 1 - explained_df
    residual_ss = max(total - sum(ss for _, _, ss in terms), 0.0) if balanced else terms_residual(part, varying)
    from scipy import stats

    rows = []
    for label, df, ss in terms:
        f = (ss / df) / (residual_ss / residual_df) if residual_df > 0 and residual_ss > 0 else math.nan
        p = float(stats.f.sf(f, df, residual_df)) if math.isfinite(f) else math.nan
        rows.append(
            {
                "backend": backend,
                "term": label,
                "df": df,
                "sum_sq": ss,
                "share": ss / total if total else math.nan,
                "F": f,
                "p": p,
            }
        )
    rows.sort(
        key=lambda row: -float(cast("float", row["share"])) if math.isfinite(cast("float", row["share"])) else 0.0
    )
    rows.append(
        {
            "backend": backend,
            "term": "Residual",
            "df": residual_df,
            "sum_sq": residual_ss,
            "share": residual_ss / total if total else math.nan,
            "F": math.nan,
            "p": math.nan,
        }
    )
    return pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))


def _balanced_sums_of_squares(
    part: pd.DataFrame, axes: Sequence[str], values: np.ndarray
) -> list[tuple[str, float, float]] | None:
    """(term, df, sum of squares) of every axis, and of every pair when the residual keeps enough degrees of
    freedom (at least 10 and a tenth of the arms), from the marginal means of a complete one-per-cell grid."""
    n, grand = len(values), float(values.mean())
    frame = part[list(axes)].assign(_value=values)
    levels = {axis: frame[axis].nunique() for axis in axes}
    main_df = sum(level - 1 for level in levels.values())
    if n - 1 - main_df < 2:
        return None
    marginal = {axis: frame.groupby(axis, observed=True)["_value"].mean() for axis in axes}
    terms = [
        (axis, float(levels[axis] - 1), float(((frame[axis].map(marginal[axis]) - grand) ** 2).sum())) for axis in axes
    ]
    pairs = list(itertools.combinations(axes, 2))
    pair_df = sum((levels[a] - 1) * (levels[b] - 1) for a, b in pairs)
    if pairs and n - 1 - main_df - pair_df >= max(10, n // 10):
        for a, b in pairs:
            cell = frame.groupby([a, b], observed=True)["_value"].transform("mean")
            deviation = cell - frame[a].map(marginal[a]) - frame[b].map(marginal[b]) + grand
            terms.append((f"{a} x {b}", float((levels[a] - 1) * (levels[b] - 1)), float((deviation**2).sum())))
    return terms


def _unbalanced_sums_of_squares(part: pd.DataFrame, axes: Sequence[str]) -> list[tuple[str, float, float]] | None:
    """Type II sums of squares of the main effects (statsmodels OLS on categorical factors)."""
    fitted = _main_effects_fit(part, axes)
    if fitted is None:
        return None
    table, names = fitted
    back = {f"C({name})": axis for axis, name in names.items()}
    return [
        (back[str(term)], float(row["df"]), float(row["sum_sq"])) for term, row in table.iterrows() if str(term) in back
    ]


def terms_residual(part: pd.DataFrame, axes: Sequence[str]) -> float:
    """The residual sum of squares of the main-effects fit (unbalanced grids)."""
    fitted = _main_effects_fit(part, axes)
    return float(fitted[0]["sum_sq"].to_numpy(dtype=np.float64)[-1]) if fitted is not None else math.nan  # last row


def _main_effects_fit(part: pd.DataFrame, axes: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]] | None:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    names = {axis: f"f{index}" for index, axis in enumerate(axes)}
    frame = part.rename(columns=names)[[*names.values(), "mean"]].astype({name: str for name in names.values()})
    if len(frame) - 1 - sum(frame[name].nunique() - 1 for name in names.values()) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty cell makes the design rank deficient: statsmodels warns
        fit = smf.ols("mean ~ " + " + ".join(f"C({name})" for name in names.values()), data=frame).fit()
        return anova_lm(fit, typ=2), names
