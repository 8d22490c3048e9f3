"""harness.analysis.before_after: the one rule that pairs, or not, the seeds of a before/after change."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.analysis.before_after import INSUFFICIENT, PAIRED, WELCH, before_after

BEFORE = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93, 4: 0.89}
AFTER = {0: 0.86, 1: 0.87, 2: 0.87, 3: 0.88, 4: 0.84}


def test_same_seeds_are_paired_and_match_scipy() -> None:
    result = before_after(BEFORE, AFTER, 3)
    reference = stats.ttest_rel(list(AFTER.values()), list(BEFORE.values()))
    assert (result.method, result.n_before, result.n_after, result.shared_seeds) == (PAIRED, 5, 5, 5)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-12)
    assert result.change == pytest.approx(np.mean(list(AFTER.values())) - np.mean(list(BEFORE.values())), abs=1e-15)


def test_partly_shared_seeds_pair_on_the_common_ones_and_the_change_is_theirs() -> None:
    after = {2: AFTER[2], 3: AFTER[3], 4: AFTER[4], 7: 0.99}
    result = before_after(BEFORE, after, 3)
    common = [2, 3, 4]
    reference = stats.ttest_rel([after[s] for s in common], [BEFORE[s] for s in common])
    assert (result.method, result.n_before, result.n_after, result.shared_seeds) == (PAIRED, 3, 3, 3)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.change == pytest.approx(np.mean([after[s] - BEFORE[s] for s in common]), abs=1e-15)
    assert result.mean_after == pytest.approx(np.mean(list(after.values())), abs=1e-15)  # every seed of the side


def test_too_few_common_seeds_use_welch() -> None:
    after = {seed + 3: value for seed, value in AFTER.items()}  # seeds 3..7: 2 in common with 0..4
    result = before_after(BEFORE, after, 3)
    reference = stats.ttest_ind(list(after.values()), list(BEFORE.values()), equal_var=False)
    assert (result.method, result.n_before, result.n_after, result.shared_seeds) == (WELCH, 5, 5, 2)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-12)


def test_below_the_minimum_nothing_is_tested() -> None:
    result = before_after({0: 0.9, 1: 0.91}, {0: 0.8, 1: 0.81}, 3)
    assert result.method == INSUFFICIENT and (result.n_before, result.n_after) == (2, 2)
    assert result.change == pytest.approx(-0.1, abs=1e-12)
    assert all(math.isnan(value) for value in (result.ci_low, result.ci_high, result.p_value))
    assert before_after({0: 0.9, 1: 0.91}, {0: 0.8, 1: 0.81}, 2).method == PAIRED  # a minimum of 2 pairs them


def test_non_finite_values_are_left_out_before_deciding() -> None:
    before = {**BEFORE, 5: math.nan}
    after = {**AFTER, 5: 0.5, 6: math.inf}
    result = before_after(before, after, 3)
    assert (result.method, result.n_before, result.n_after) == (PAIRED, 5, 5)
    assert result.change == pytest.approx(before_after(BEFORE, {**AFTER, 5: 0.5}, 3).change, abs=1e-15)
