"""The tolerance as a region of practical equivalence: one-sided tests against it and the three outcomes.

For one row, `change = after - before` and `limit` its tolerance in the metric's units. Say
higher is better (for lower-is-better metrics every sign flips). Two one-sided t tests against
the tolerance's edge -limit (Schuirmann's TOST, from statsmodels: `ttost_paired` on the seeds
both sides ran, `ttost_ind(usevar='unequal')`, Welch, otherwise) give:

    p_worse      H1: change < -limit   (worse beyond the tolerance)
    p_not_worse  H1: change > -limit   (non-inferiority: inside the tolerance, or better)
    p_better     H1: change > +limit   (better beyond the tolerance; informational)

The outcomes, at ALPHA = 5% one-sided:

    REGRESSED     Holm-adjusted p_worse < ALPHA. The Holm family is the rows that can fail
                  (tested rows, less speed rows measured on another machine), so a table of 12
                  rows with nothing changed false-alarms at most 5% of the time.
    WITHIN        p_not_worse < ALPHA (no correction: every row must show it on its own, which is
                  the intersection-union rule, valid without adjustment).
    IMPROVED      WITHIN and p_better < ALPHA.
    INCONCLUSIVE  neither: the seeds cannot tell. The row then carries the smallest regression it
                  could have detected, (t_{1-a} + t_{POWER}) * standard error beyond the edge (80%
                  power, a = ALPHA / m, Holm's first step over m rows that can fail), and the
                  seeds that would decide a true change equal to the one measured (at a when it
                  is beyond the edge, at ALPHA and at least the check's min_seeds when inside).

All functions take arrays with seeds along axis 0 and any shape after it, so the simulation
tests run thousands of replicates through the same code as `harness check`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # one-sided level of every decision
POWER = 0.80  # for the detectable change of an inconclusive row
MAX_SEEDS_SEARCHED = 1000  # "seeds needed" beyond this is reported as more than this

WITHIN, REGRESSED, IMPROVED, INCONCLUSIVE = "WITHIN", "REGRESSED", "IMPROVED", "INCONCLUSIVE"


@dataclass(frozen=True)
class MarginTests:
    """One-sided p-values of the change against its tolerance, and the spread behind them (arrays)."""

    p_worse: np.ndarray
    p_not_worse: np.ndarray
    p_better: np.ndarray
    standard_error: np.ndarray  # of the change
    degrees_of_freedom: np.ndarray
    seed_sd: np.ndarray  # sd of one seed's change: of the paired differences, or sqrt(s_before^2 + s_after^2)
    zero_spread: np.ndarray  # True where the seeds agree exactly (no spread: the t tests are undefined)


def margin_tests(
    after: np.ndarray, before: np.ndarray, paired: bool, limit: np.ndarray | float, higher_is_better: bool
) -> MarginTests:
    """The three one-sided p-values of the module docstring, from statsmodels' TOST.

    Args:
        after, before: values with seeds along axis 0 (aligned by seed when `paired`), any shape after.
        paired: pair by position (`ttost_paired`), else Welch (`ttost_ind`, unequal variances).
        limit: the tolerance in the metric's units (>= 0), broadcast over the trailing shape.
        higher_is_better: the metric's direction.
    """
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    after, before = np.asarray(after, dtype=np.float64), np.asarray(before, dtype=np.float64)
    shape = np.broadcast_shapes(after.shape[1:], before.shape[1:], np.shape(limit))
    # statsmodels' descriptive statistics take (seeds, columns): flatten the trailing shape, restore it below.
    after = np.broadcast_to(after, (len(after), *shape)).reshape(len(after), -1)
    before = np.broadcast_to(before, (len(before), *shape)).reshape(len(before), -1)
    limit = np.broadcast_to(np.asarray(limit, dtype=np.float64), shape).reshape(-1)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # zero spread: statsmodels divides by 0; flagged by zero_spread
        if paired:
            _, lower, upper = ttost_paired(after, before, -limit, limit)
            difference = after - before
            seed_sd = difference.std(axis=0, ddof=1)
            standard_error = seed_sd / math.sqrt(len(difference))
        else:
            _, lower, upper = ttost_ind(after, before, -limit, limit, usevar="unequal")
            variance_after, variance_before = after.var(axis=0, ddof=1), before.var(axis=0, ddof=1)
            seed_sd = np.sqrt(variance_after + variance_before)
            standard_error = np.sqrt(variance_after / len(after) + variance_before / len(before))
    # (t, p, df) of H1: change > -limit (lower) and H1: change < +limit (upper); the opposite tails by scipy.
    t_lower, p_above_lower, df = (np.asarray(item, dtype=np.float64) for item in lower)
    t_upper, p_below_upper, _ = (np.asarray(item, dtype=np.float64) for item in upper)
    p_below_lower, p_above_upper = stats.t.cdf(t_lower, df), stats.t.sf(t_upper, df)
    if higher_is_better:
        p_worse, p_not_worse, p_better = p_below_lower, p_above_lower, p_above_upper
    else:
        p_worse, p_not_worse, p_better = p_above_upper, p_below_upper, p_below_lower

    def restored(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), standard_error.shape).reshape(shape)

    return MarginTests(
        restored(p_worse),
        restored(p_not_worse),
        restored(p_better),
        restored(standard_error),
        restored(df),
        restored(seed_sd),
        ~(restored(standard_error) > 0),
    )


def holm_last_axis(p_values: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (one family per row of the leading axes); NaN stays
    out of the family. The same numbers as `harness.analysis.statistics.holm` per family."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(np.where(np.isfinite(p), p, np.inf), axis=-1, kind="stable")
    ordered = np.take_along_axis(p, order, axis=-1)
    finite = np.isfinite(ordered)
    m = finite.sum(axis=-1, keepdims=True)
    rank = np.arange(p.shape[-1])
    scaled = np.where(finite, np.minimum(1.0, (m - rank) * np.where(finite, ordered, 0.0)), 0.0)
    adjusted_sorted = np.where(finite, np.maximum.accumulate(scaled, axis=-1), np.nan)
    adjusted = np.empty_like(adjusted_sorted)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=-1)
    return adjusted


def decide(
    p_worse: np.ndarray,
    p_not_worse: np.ndarray,
    p_better: np.ndarray,
    can_fail: np.ndarray | bool = True,
    may_pass: np.ndarray | bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The outcome of every row, families along the last axis.

    Args:
        p_worse, p_not_worse, p_better: `MarginTests` p-values; NaN where a row was not tested.
        can_fail: rows in the Holm family (a row outside it is never REGRESSED).
        may_pass: rows allowed to be WITHIN/IMPROVED (False below the check's min_seeds).

    Returns:
        (statuses as an object array of WITHIN/REGRESSED/IMPROVED/INCONCLUSIVE, Holm-adjusted p_worse).
    """
    p_worse = np.asarray(p_worse, dtype=np.float64)
    can_fail = np.broadcast_to(np.asarray(can_fail, dtype=bool), p_worse.shape)
    may_pass = np.broadcast_to(np.asarray(may_pass, dtype=bool), p_worse.shape)
    p_holm = holm_last_axis(np.where(can_fail, p_worse, np.nan))
    regressed = can_fail & (p_holm < ALPHA)
    within = ~regressed & may_pass & (np.asarray(p_not_worse) < ALPHA)
    improved = within & (np.asarray(p_better) < ALPHA)
    statuses = np.full(p_worse.shape, INCONCLUSIVE, dtype=object)
    statuses[within] = WITHIN
    statuses[improved] = IMPROVED
    statuses[regressed] = REGRESSED
    return statuses, p_holm


def _quantile_sum(degrees_of_freedom: np.ndarray | float, alpha: float) -> np.ndarray:
    return np.asarray(stats.t.ppf(1 - alpha, degrees_of_freedom) + stats.t.ppf(POWER, degrees_of_freedom))


def detectable_change(standard_error: float, degrees_of_freedom: float, alpha: float = ALPHA) -> float:
    """The smallest true distance from the tolerance's edge these seeds detect with POWER at one-sided
    level `alpha`: (t_{1-alpha, df} + t_{POWER, df}) * standard error. For a regression, `alpha` is the bar
    of Holm's first step, ALPHA / (rows that can fail)."""
    if not (math.isfinite(standard_error) and degrees_of_freedom > 0):
        return math.nan
    return float(_quantile_sum(degrees_of_freedom, alpha) * standard_error)


def seeds_needed(gap: float, seed_sd: float, paired: bool, alpha: float = ALPHA, least: int = 2) -> int | None:
    """The fewest seeds (pairs, or seeds per side for Welch), at least `least`, that detect a true distance
    `gap` from the tolerance's edge with POWER at one-sided level `alpha`, for this per-seed sd; None when no
    number up to MAX_SEEDS_SEARCHED does (the change sits on the edge, or nearly)."""
    if not (math.isfinite(gap) and math.isfinite(seed_sd)) or gap <= 0:
        return None
    n = np.arange(max(2, least), MAX_SEEDS_SEARCHED + 1, dtype=np.float64)
    degrees_of_freedom = n - 1 if paired else 2 * (n - 1)  # Welch with equal sides and spreads: 2(n - 1)
    enough = np.flatnonzero(_quantile_sum(degrees_of_freedom, alpha) * seed_sd / np.sqrt(n) <= gap)
    return int(n[enough[0]]) if len(enough) else None
