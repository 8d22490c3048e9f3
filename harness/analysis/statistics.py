"""Statistics over seeds: confidence intervals, paired tests and Holm's correction.

Every test and interval comes from `scipy.stats`; this module only chooses which one and
handles the degenerate cases (fewer than two values, zero variance) explicitly.

Confidence-interval rule (`mean_interval`), for the mean of one metric over seeds:

1. n < 2: no interval (NaN, method 'none').
2. Every value equal: the interval is that value (method 'exact'); a t interval would be 0/0.
3. Otherwise the Student t interval, `scipy.stats.t.interval(0.95, n - 1, mean, sem)` ('t').
4. If the metric has a bound (accuracy in [0, 1], r2 <= 1, losses, mae, error_rate and seconds >= 0) and
   the t interval crosses it, the t interval cannot be right: with n >= BOOTSTRAP_MIN_N the
   BCa bootstrap (`scipy.stats.bootstrap`, method 'BCa', fixed seed) replaces it ('bootstrap'):
   a resampled mean never leaves the metric's range. With fewer values the t interval is
   clipped to the bound ('t-clipped').

Why the bootstrap is NOT used for small n: it resamples the n observed values, so with 3 seeds
it sees 10 distinct resamples and its interval is far too narrow. Measured here (400 repetitions
each, 95% nominal, BCa with 2,000 resamples): normal data, n=3: t covers 96%, BCa 70%; n=5: 95%
vs 82%; n=10: 96% vs 90%; data piled near a bound (Beta(40, 2)), n=5: t 92%, BCa 82%. The t
interval is the honest choice for few seeds; the bootstrap serves only where the t interval
leaves the metric's range.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# A metric's range is declared once, in harness.measures (its direction too: `is_higher_better`).
from harness.measures import bounds as metric_bounds

CONFIDENCE = 0.95  # every interval in the harness is a 95% interval
ALPHA = 0.05  # significance level of the Holm-corrected paired tests
BOOTSTRAP_MIN_N = 10  # below this the bootstrap under-covers (see the module docstring)
BOOTSTRAP_RESAMPLES = 9999  # scipy's default; about 4 ms per interval at n = 10 here
BOOTSTRAP_SEED = 0  # fixed: the same results give the same report
# The statistic columns of `describe` and `describe_groups`, in the order their tables list them.
DESCRIBE_COLUMNS = ("n", "mean", "std", "sem", "ci_low", "ci_high", "ci_method")


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was computed ('none', 'exact', 't', 't-clipped', 'bootstrap')."""

    low: float
    high: float
    method: str


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def mean_interval(values: Sequence[float] | np.ndarray, metric: str = "") -> Interval:
    """95% confidence interval of the mean of `values` (non-finite values dropped), by the module's rule.

    Args:
        values: one value per seed.
        metric: the metric's name, for its bounds (see `metric_bounds`).

    Returns:
        The interval and the method that produced it.
    """
    array = _clean(values)
    n = len(array)
    if n < 2:
        return Interval(math.nan, math.nan, "none")
    if np.all(array == array[0]):
        return Interval(float(array[0]), float(array[0]), "exact")
    mean, sem = float(array.mean()), float(stats.sem(array))
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)
    lower_bound, upper_bound = metric_bounds(metric)
    if low >= lower_bound and high <= upper_bound:
        return Interval(float(low), float(high), "t")
    if n >= BOOTSTRAP_MIN_N:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa warns on near-degenerate data; NaN is handled below
            result = stats.bootstrap(
                (array,),
                np.mean,
                n_resamples=BOOTSTRAP_RESAMPLES,
                confidence_level=CONFIDENCE,
                method="BCa",
                vectorized=True,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        interval = result.confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            return Interval(float(interval.low), float(interval.high), "bootstrap")
    return Interval(float(max(low, lower_bound)), float(min(high, upper_bound)), "t-clipped")


def describe(values: Sequence[float] | np.ndarray, metric: str = "") -> dict[str, float | int | str]:
    """n, mean, std (ddof=1), sem and the 95% interval of the finite `values`.

    Returns:
        {'n', 'mean', 'std', 'sem', 'ci_low', 'ci_high', 'ci_method'}; NaN where undefined.
    """
    array = _clean(values)
    n = len(array)
    interval = mean_interval(array, metric)
    return {
        "n": n,
        "mean": float(array.mean()) if n else math.nan,
        "std": float(array.std(ddof=1)) if n > 1 else math.nan,
        "sem": float(stats.sem(array)) if n > 1 else math.nan,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "ci_method": interval.method,
    }


def t_half_widths(std: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Vectorized half-width of the 95% t interval, t_{0.975, n-1} * std / sqrt(n); NaN where n < 2.

    Used for learning-curve bands (thousands of (arm, epoch) cells, where a per-cell bootstrap
    would be far too slow and the bound rule is applied by clipping in the caller).
    """
    std = np.asarray(std, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, np.where(n >= 2, n - 1, np.nan))
        return np.where(n >= 2, quantile * std / np.sqrt(n), np.nan)


def describe_groups(frame: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """`describe` for every group of `frame` (grouped by `keys`) and every column in `metrics`, vectorized.

    Non-finite values are left out (a group with none gets n = 0 and NaN statistics). Gives the
    same numbers as `describe` per group: moments from pandas, the t quantile from
    scipy.stats.t.ppf, the bootstrap (rare: a bound crossed with n >= 10) from `mean_interval`.

    Returns:
        Long: *keys, metric, n, mean, std, sem, ci_low, ci_high, ci_method; groups in order of
        first appearance, metrics in the given order within each group.
    """
    keys = list(keys)
    values = frame[[*keys, *metrics]].copy()
    for metric in metrics:
        column = np.array(pd.to_numeric(values[metric], errors="coerce"), dtype=np.float64)
        column[~np.isfinite(column)] = np.nan
        values[metric] = column
    long = values.melt(id_vars=keys, value_vars=list(metrics), var_name="metric", value_name="value")
    grouped = long.groupby([*keys, "metric"], sort=False, dropna=False)["value"]
    table = grouped.agg(n="count", mean="mean", std="std", low="min", high="max").reset_index()
    n = table["n"].to_numpy(dtype=np.float64)
    mean = table["mean"].to_numpy(dtype=np.float64)
    std = np.where(n > 1, table["std"].to_numpy(dtype=np.float64), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = std / np.sqrt(n)
    half = t_half_widths(std, n)
    ci_low, ci_high = mean - half, mean + half
    method = np.where(n < 2, "none", "t").astype(object)
    constant = (n >= 2) & (table["low"].to_numpy() == table["high"].to_numpy())
    ci_low[constant], ci_high[constant], method[constant] = mean[constant], mean[constant], "exact"
    bounds = np.array([metric_bounds(name) for name in table["metric"]], dtype=np.float64).reshape(-1, 2)
    crossed = (method == "t") & ((ci_low < bounds[:, 0]) | (ci_high > bounds[:, 1]))
    if crossed.any():
        samples = dict(iter(long.groupby([*keys, "metric"], sort=False, dropna=False)["value"]))
        for row in np.flatnonzero(crossed):
            key = tuple(table.loc[row, [*keys, "metric"]])
            interval = mean_interval(samples[key].to_numpy(), str(table.at[row, "metric"]))
            ci_low[row], ci_high[row], method[row] = interval.low, interval.high, interval.method
    table = table.drop(columns=["low", "high"]).assign(
        std=std, sem=sem, ci_low=ci_low, ci_high=ci_high, ci_method=method
    )
    rank = {metric: index for index, metric in enumerate(metrics)}
    group_rank = table.groupby(keys, sort=False, dropna=False).ngroup() if keys else pd.Series(0, index=table.index)
    order = np.lexsort((table["metric"].map(rank).to_numpy(), group_rank.to_numpy()))
    return table.iloc[order].reset_index(drop=True)


# float64 rounding of values of order 1 is ~1e-16 per operation; a spread of differences below
# 1000 ulps of the values compared is rounding, not seed-to-seed variation.
ROUNDING_SPREAD = 1000 * float(np.finfo(np.float64).eps)


def paired_test(arm: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Paired comparison of `arm` against `reference` (same seeds, same order).

    Pairs where either value is not finite are dropped. The test is `scipy.stats.ttest_rel`
    (two-sided); the interval of the mean difference is its `confidence_interval(0.95)`;
    Cohen's d_z = mean(d) / std(d, ddof=1) with d = arm - reference.
    With fewer than two pairs every statistic is NaN.

    Differences that agree to rounding. When every seed gives the same difference, std(d) is 0,
    or a few ulps of float64 rounding (0.95 - 0.85 and 0.93 - 0.83 differ by 1e-16), and t, p
    and d_z would read as near-infinite certainty (d_z ~ 1e15). That says the runs show no
    seed-to-seed noise, not that the difference is certain. A spread at or below
    ROUNDING_SPREAD x the largest |value| counts as zero: t, p and d_z are NaN, the CI is the
    difference itself, and 'no_spread' is True (callers say why there is no test).

    Returns:
        {'n_pairs', 'mean_arm', 'mean_reference', 'mean_difference', 'ci_low', 'ci_high',
         't_statistic', 'p_value', 'cohens_dz', 'no_spread'}.
    """
    a = np.asarray(arm, dtype=np.float64).reshape(-1)
    b = np.asarray(reference, dtype=np.float64).reshape(-1)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    result: dict[str, float | int] = {
        "n_pairs": n,
        "mean_arm": float(a.mean()) if n else math.nan,
        "mean_reference": float(b.mean()) if n else math.nan,
        "mean_difference": float((a - b).mean()) if n else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "t_statistic": math.nan,
        "p_value": math.nan,
        "cohens_dz": math.nan,
        "no_spread": False,
    }
    if n < 2:
        return result
    difference = a - b
    spread = float(difference.std(ddof=1))
    mean_difference = float(difference.mean())
    if spread <= ROUNDING_SPREAD * float(max(np.abs(a).max(), np.abs(b).max())):
        result.update(ci_low=mean_difference, ci_high=mean_difference, no_spread=True)
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-variance differences: handled as documented above
        test = stats.ttest_rel(a, b)
        interval = test.confidence_interval(confidence_level=CONFIDENCE)
    effect = mean_difference / spread
    result.update(
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        t_statistic=float(test.statistic),
        p_value=float(test.pvalue),
        cohens_dz=effect,
    )
    return result


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), controlling the family-wise error rate.

    Computed from the sorted p's: with the m finite p's in ascending order p_(1) <= ... <= p_(m),
    adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j)). NaN p's are not part of the
    family and stay NaN. (statsmodels' multipletests(method='holm') gives the same numbers;
    it is not a dependency.)
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def welch_test(current: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Unpaired comparison of two samples of different seeds: Welch's t-test (unequal variances).

    scipy.stats.ttest_ind(current, baseline, equal_var=False), two-sided, and its 95% confidence
    interval of mean(current) - mean(baseline). Non-finite values are dropped. With fewer than
    two values on a side every statistic but the means is NaN. When both sides have zero spread
    scipy gives p = 0 and the CI is the difference itself (or p = NaN when the means are equal).

    Returns:
        {'n_current', 'n_baseline', 'mean_difference', 'ci_low', 'ci_high', 't_statistic', 'p_value'}.
    """
    a = np.asarray(current, dtype=np.float64).reshape(-1)
    b = np.asarray(baseline, dtype=np.float64).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    result = {
        "n_current": len(a),
        "n_baseline": len(b),
        "mean_difference": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "t_statistic": math.nan,
        "p_value": math.nan,
    }
    if len(a) < 2 or len(b) < 2:
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-identical samples: scipy warns; its numbers are still the defined ones
        test = stats.ttest_ind(a, b, equal_var=False)
        interval = test.confidence_interval(confidence_level=CONFIDENCE)
    result.update(
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        t_statistic=float(test.statistic),
        p_value=float(test.pvalue),
    )
    return result
