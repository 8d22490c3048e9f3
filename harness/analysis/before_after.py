"""The before/after statistic over seeds: one change, one rule, used by `harness check` and `harness compare`.

Given the per-seed values of one metric before (a baseline, result set A) and after (the current
results, result set B), `before_after` decides how to compare them and measures the change:

1. PAIRED when at least `min_seeds` seeds ran on both sides: a paired t-test on those common
   seeds (`statistics.paired_test`, scipy's ttest_rel). The same seed means the same initial
   weights and batches, so the seed's share of the variance cancels.
2. Otherwise WELCH when both sides have at least `min_seeds` values: Welch's unequal-variance
   t-test on every value (`statistics.welch_test`, scipy's ttest_ind with equal_var=False).
3. Otherwise INSUFFICIENT: too few seeds to test anything; the interval and p-value are NaN.

The change is after - before. It is the difference of the two sides' means, except when the
test paired only some of the seeds (the sides also ran seeds the other did not): the change is
then the mean per-seed difference on the common seeds, so that the change and its interval
describe the same values. Non-finite values are left out before anything is decided.

The result also keeps the values the test used (`used_before`, `used_after`: the common seeds in
seed order when paired, every finite value otherwise), so that `harness check` can test the same
values against its tolerance (`harness.check.equivalence`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.analysis.statistics import paired_test, welch_test

PAIRED, WELCH, INSUFFICIENT = "paired", "welch", "insufficient seeds"
METHODS = (PAIRED, WELCH, INSUFFICIENT)
MIN_PAIRS = 2  # the fewest values a t interval needs on a side (pairs, for a paired one)


@dataclass(frozen=True)
class BeforeAfter:
    """The change of one metric from before to after, over seeds, and how it was tested."""

    method: str  # one of METHODS
    n_before: int  # values the test used: the common seeds when paired, else every finite value of the side
    n_after: int
    shared_seeds: int  # seeds with a finite value on both sides
    mean_before: float  # over every finite value of the side (NaN when none)
    mean_after: float
    change: float  # after - before (see the module docstring)
    ci_low: float  # 95% CI of the change; NaN when INSUFFICIENT
    ci_high: float
    p_value: float  # two-sided; NaN when INSUFFICIENT
    used_before: tuple[float, ...] = ()  # the values the test used (aligned by seed when PAIRED)
    used_after: tuple[float, ...] = ()


def _finite(values: Mapping[int, float]) -> dict[int, float]:
    return {
        int(seed): float(value) for seed, value in values.items() if value is not None and math.isfinite(float(value))
    }


def before_after(before: Mapping[int, float], after: Mapping[int, float], min_seeds: int) -> BeforeAfter:
    """Compare per-seed values before and after by the module's rule.

    Args:
        before: seed -> value before (baseline, result set A), in any order.
        after: seed -> value after (current results, result set B).
        min_seeds: the fewest common seeds to pair on, and the fewest values per side for Welch
            (the check's `min_seeds`, at least MIN_PAIRS).

    Returns:
        The method, the counts, both means, the change after - before, its 95% CI and p-value.

    Example:
        >>> before_after({0: 0.90, 1: 0.92, 2: 0.91}, {0: 0.85, 1: 0.88, 2: 0.86}, 3).method
        'paired'
    """
    before, after = _finite(before), _finite(after)
    mean_before = float(np.mean(list(before.values()))) if before else math.nan
    mean_after = float(np.mean(list(after.values()))) if after else math.nan
    common = sorted(set(before) & set(after))
    change = mean_after - mean_before
    if len(common) >= min_seeds:
        test = paired_test([after[seed] for seed in common], [before[seed] for seed in common])
        if len(common) < max(len(before), len(after)):  # paired on some seeds only: the change is theirs
            change = float(test["mean_difference"])
        method, n_before, n_after = PAIRED, int(test["n_pairs"]), int(test["n_pairs"])
        used_before, used_after = tuple(before[seed] for seed in common), tuple(after[seed] for seed in common)
    elif len(before) >= min_seeds and len(after) >= min_seeds:
        test = welch_test(list(after.values()), list(before.values()))
        method, n_before, n_after = WELCH, int(test["n_baseline"]), int(test["n_current"])
        used_before, used_after = tuple(before.values()), tuple(after.values())
    else:
        return BeforeAfter(
            INSUFFICIENT,
            len(before),
            len(after),
            len(common),
            mean_before,
            mean_after,
            change,
            math.nan,
            math.nan,
            math.nan,
        )
    return BeforeAfter(
        method,
        n_before,
        n_after,
        len(common),
        mean_before,
        mean_after,
        change,
        float(test["ci_low"]),
        float(test["ci_high"]),
        float(test["p_value"]),
        used_before,
        used_after,
    )
