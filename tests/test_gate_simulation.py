"""The regression gate's decisions measured by simulation: false alarms, power, and the equivalence level.

Synthetic replicates of a 12-row check table (like smoke's: 2 arms x 2 backends x 3 metrics) go
through the gate's own decision functions, `harness.check.equivalence.margin_tests` (statsmodels'
TOST) and `decide` (Holm over the rows that can fail, then the three outcomes), vectorized over
replicates. Each run of a seed has independent noise of sd 0.01 before and after; the tolerance is
0.01. Every rate is estimated from REPLICATES tables; a bound on a rate allows 3 binomial standard
deviations of the estimate, sqrt(rate * (1 - rate) / count), so a gate at its nominal level fails
a bound about 1 time in 700.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower, TTestPower

from harness.check.equivalence import (
    ALPHA,
    INCONCLUSIVE,
    POWER,
    REGRESSED,
    WITHIN,
    decide,
    detectable_change,
    margin_tests,
    seeds_needed,
)

ROWS = 12
REPLICATES = 4000
NOISE_SD = 0.01  # per run
TOLERANCE = 0.01
BASE = 0.9


def simulate(
    seeds: int, drop: float, dropped_rows: int = ROWS, paired: bool = True, replicates: int = REPLICATES, seed: int = 0
) -> np.ndarray:
    """Statuses, shape (replicates, ROWS): the first `dropped_rows` rows truly drop by `drop`, the rest are unchanged."""
    generator = np.random.default_rng(seed)
    shift = np.zeros(ROWS)
    shift[:dropped_rows] = -drop
    before = BASE + generator.normal(0.0, NOISE_SD, (seeds, replicates, ROWS))
    after = BASE + shift + generator.normal(0.0, NOISE_SD, (seeds, replicates, ROWS))
    tests = margin_tests(after, before, paired, TOLERANCE, higher_is_better=True)
    statuses, _ = decide(tests.p_worse, tests.p_not_worse, tests.p_better)
    return statuses


def bound(rate: float, count: int) -> float:
    """`rate` plus 3 binomial standard deviations of its estimate from `count` trials."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / count)


@pytest.mark.parametrize("seeds", [3, 10])
@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_false_alarms_at_zero_change_and_at_the_tolerance(seeds: int, paired: bool) -> None:
    """Family-wise: P(some row of the 12 REGRESSED) <= ALPHA, with nothing changed, and even with every
    row exactly at the tolerance's edge (the worst case Holm has to hold)."""
    for drop, offset in ((0.0, 1), (TOLERANCE, 2)):
        statuses = simulate(seeds, drop, paired=paired, seed=100 * seeds + offset + 10 * paired)
        any_regressed = (statuses == REGRESSED).any(axis=1).mean()
        assert any_regressed <= bound(ALPHA, REPLICATES), (drop, any_regressed)


@pytest.mark.parametrize("seeds", [3, 10])
def test_within_holds_its_level_at_the_edge(seeds: int) -> None:
    """A row whose true change sits exactly on the tolerance's edge is called WITHIN at most ALPHA of
    the time (non-inferiority at 5%), counted over all 12 x REPLICATES rows."""
    statuses = simulate(seeds, TOLERANCE, seed=200 + seeds)
    within = (statuses == WITHIN).mean()
    assert within <= bound(ALPHA, statuses.size), within


def test_five_times_the_tolerance_at_3_seeds_never_passes() -> None:
    """The issue's case: a drop of 5x the tolerance at 3 seeds passed CI 83% of the time. Now it is
    never WITHIN; it is REGRESSED or INCONCLUSIVE (which --strict fails), and REGRESSED at least 15%
    of the time for a single dropped row among 12 (measured ~19%; 3 seeds and Holm over 12 rows allow
    no more: the one-sided critical t at 2 degrees of freedom is 10.9)."""
    statuses = simulate(3, 5 * TOLERANCE, dropped_rows=1, seed=300)
    dropped = statuses[:, 0]
    assert not (dropped == WITHIN).any()
    assert set(np.unique(dropped)) <= {REGRESSED, INCONCLUSIVE}
    assert (dropped == REGRESSED).mean() >= 0.15


@pytest.mark.parametrize(
    "seeds, drop, dropped_rows, least_power",
    [
        (10, 0.03, 1, 0.75),  # measured 83%
        (10, 0.03, ROWS, 0.95),  # measured 99%: the other rows' small p's relax Holm's step-down
        (10, 0.05, 1, 0.99),  # measured 100%
        (3, 0.05, ROWS, 0.18),  # measured 24%
    ],
)
def test_power_at_stated_drops(seeds: int, drop: float, dropped_rows: int, least_power: float) -> None:
    statuses = simulate(seeds, drop, dropped_rows=dropped_rows, seed=400 + seeds + int(drop * 1000) + dropped_rows)
    regressed = (statuses[:, :dropped_rows] == REGRESSED).mean()
    assert regressed >= least_power, regressed


def test_an_unchanged_metric_is_shown_within_at_10_seeds() -> None:
    """The equivalence side's power: nothing changed, 10 seeds, per-seed sd of the difference 0.014
    against a tolerance of 0.01: WITHIN at least 60% of the time (measured 66%), never REGRESSED."""
    statuses = simulate(10, 0.0, seed=500)
    assert (statuses == WITHIN).mean() >= 0.60
    assert not (statuses == REGRESSED).any()


@pytest.mark.parametrize("seed_sd, gap", [(0.0141, 0.02), (0.0141, 0.005), (0.03, 0.01)])
@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_seeds_needed_agrees_with_statsmodels_power(seed_sd: float, gap: float, paired: bool) -> None:
    """`seeds_needed` uses (t_{1-alpha} + t_{power}) * sd / sqrt(n) <= gap; statsmodels solves the exact
    noncentral-t power. They agree within one seed (two for Welch, whose df is approximated)."""
    needed = seeds_needed(gap, seed_sd, paired)
    assert needed is not None
    if paired:
        exact = TTestPower().solve_power(effect_size=gap / seed_sd, alpha=ALPHA, power=POWER, alternative="larger")
        assert abs(needed - math.ceil(exact)) <= 1, (needed, exact)
    else:  # per side; Cohen's d over the pooled sd of one side, sd_side = seed_sd / sqrt(2)
        exact = TTestIndPower().solve_power(
            effect_size=gap / (seed_sd / math.sqrt(2)), alpha=ALPHA, power=POWER, alternative="larger"
        )
        assert abs(needed - math.ceil(exact)) <= 2, (needed, exact)


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_detectable_change_has_about_80_percent_power(seeds: int) -> None:
    """A true distance of `detectable_change` from the edge is detected with power close to 80%
    (the t-quantile formula is an approximation of the noncentral t; within 0.75-0.85)."""
    seed_sd = 0.0141
    distance = detectable_change(seed_sd / math.sqrt(seeds), seeds - 1)
    power = TTestPower().power(effect_size=distance / seed_sd, nobs=seeds, alpha=ALPHA, alternative="larger")
    assert 0.75 <= power <= 0.85, power
