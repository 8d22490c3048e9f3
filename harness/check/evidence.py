"""What makes a claim true: a 95% confidence interval over seeds, per backend.

A claim `left OP right` (see `harness.check.claims`) is evaluated seed by seed: on each backend,
the seeds where every arm it reads has an 'ok' trial with a finite value give one margin
`left - right` per seed (seeds pair the runs: same seed, same initial weights and batches). The
claim PASSES on that backend when the 95% CI of the mean margin (`mean_interval`, the harness's
one interval rule; unbounded, so a Student t interval) lies entirely on the claimed side of 0:

    a > b        CI of the paired difference a - b above 0
    a - b > 0.05 CI of (a - b) - 0.05 above 0, i.e. the paired difference's CI above 0.05
    a > 2.2      CI of a - 2.2 above 0, i.e. the CI of a's mean above 2.2
    >= / <=      the CI may touch 0;  < / <=: the CI below 0

Ratio claims. A claim that multiplies or divides by a measured value (`sgd.train_loss > 3 *
adam.train_loss`, `a.train_seconds / b.train_seconds < 0.5`) is about a ratio of positive
quantities, whose per-seed values are skewed (log-normal-like): a t interval on `left - right`
then misses its level (measured: losses with a log-sd of 1, 3 seeds, at the boundary of `a > 3 *
b`: 16% false passes instead of 2.5%). Such a claim is judged on the log scale: the t interval of
the mean of log(left) - log(right), i.e. of the ratio of the sides' geometric means, which holds
its level (2.5% per side at 3, 5 and 10 seeds, tests/test_claims.py). The interval shown is that
ratio's (`left / right`), and the claim passes when it lies on the claimed side of 1. When a side
is not positive on every seed, there is no log, and the difference is used (and said).

Three outcomes, like the gate's. A claim PASSES when the interval lies on the claimed side, is
FALSE when it lies entirely on the other side, and is UNDECIDED when it straddles: the seeds can
neither show nor refute it, and the message says about how many seeds would decide it. `harness
check` reports an undecided claim as inconclusive (exit 0, or 5 with --strict), never as PASS.

Seeds that agree exactly. When every seed gives the same margin, the interval has zero width;
that says the measurement has no seed-to-seed noise, not that the claim is certain (the test
split, for one, still varies). Such a claim is UNDECIDED: neither passed nor false; `harness
check` reports it as inconclusive (exit 0, or 5 with --strict).

With fewer than two seeds there is no interval and the claim FAILS (it cannot be shown). A
margin that is not finite on a seed (a division by zero) leaves that seed out, and says so. The
claim passes when it passes on every backend that ran; it is undecided when it is undecided on
some backend and false on none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.check.claims import Claim, Operand, check_claim_names, claim_metrics, metric_column, parse_claim
from harness.measures import OK

if TYPE_CHECKING:
    from harness.analysis import Results

SIDE = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


@dataclass(frozen=True)
class ClaimOutcome:
    """A claim on one backend: the numbers behind PASS/FAIL."""

    backend: str
    passed: bool
    n: int  # seeds that entered the interval
    seeds: tuple[int, ...]
    operand_means: Mapping[str, float]  # operand text -> its mean over those seeds
    left_mean: float
    right_mean: float
    margin_mean: float  # mean of (left - right) per seed
    ci_low: float  # 95% CI of the mean margin
    ci_high: float
    ci_method: str  # 't' (or 'exact': the seeds agree exactly, undecided)
    reason: str
    undecided: bool = False  # the seeds agree exactly: no interval to judge by
    log_ratio: bool = False  # judged on log(left / right); ci_low/ci_high are then of the ratio left / right
    ratio: float = math.nan  # the geometric-mean ratio left / right (log_ratio only)


@dataclass(frozen=True)
class ClaimResult:
    """A claim and its outcome on every backend."""

    claim: Claim
    passed: bool
    outcomes: tuple[ClaimOutcome, ...] = field(default_factory=tuple)
    undecided: bool = False  # undecided on some backend, false on none

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return {
            "claim": self.claim.text,
            "passed": self.passed,
            "undecided": self.undecided,
            "outcomes": [
                {
                    key: (
                        dict(value)
                        if isinstance(value, Mapping)
                        else list(value)
                        if isinstance(value, tuple)
                        else clean(value)
                    )
                    for key, value in outcome.__dict__.items()
                }
                for outcome in self.outcomes
            ],
        }


def _operand_values(final: Any, backend: str, operand: Operand) -> dict[int, float]:
    column = metric_column(operand.metric)
    rows = final[(final["arm"] == operand.arm) & (final["backend"] == backend) & (final["status"] == OK)]
    values: dict[int, float] = {}
    for seed, value in zip(rows["seed"], rows[column]):
        value = float(value) if value is not None else math.nan
        if math.isfinite(value):
            values[int(seed)] = value
    return values


def _mean(value: np.ndarray | float) -> float:
    array = np.asarray(value, dtype=np.float64)
    return float(array.mean()) if array.size else math.nan


def evaluate_on_backend(claim: Claim, final: Any, backend: str) -> ClaimOutcome:
    """One claim on one backend's 'ok' trials (`final` is `Results.final()`)."""
    from harness.analysis.statistics import mean_interval

    per_operand = {operand: _operand_values(final, backend, operand) for operand in claim.operands}
    empty = [operand.text() for operand, values in per_operand.items() if not values]
    if empty:
        return ClaimOutcome(
            backend,
            False,
            0,
            (),
            {},
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            "none",
            f"no 'ok' trial with a finite value for {', '.join(empty)} on {backend}",
        )
    seeds = sorted(set.intersection(*(set(values) for values in per_operand.values())))
    arrays = {
        (operand.arm, operand.metric): np.array([values[seed] for seed in seeds], dtype=np.float64)
        for operand, values in per_operand.items()
    }
    margin = claim.margin(arrays) * np.ones(len(seeds))
    finite = np.isfinite(margin)
    used = [seed for seed, keep in zip(seeds, finite) if keep]
    kept = {key: array[finite] for key, array in arrays.items()}
    interval = mean_interval(margin[finite])  # no metric bounds: a margin can take any sign
    n = int(finite.sum())
    operand_means = {operand.text(): _mean(kept[(operand.arm, operand.metric)]) for operand in claim.operands}
    left, right = _mean(claim.left.evaluate(kept)), _mean(claim.right.evaluate(kept))
    dropped = f"; {len(seeds) - n} seed(s) left out where the margin is not finite" if n < len(seeds) else ""
    if n < 2:
        reason = f"needs at least 2 seeds shared by {', '.join(claim.arms)}, has {n}{dropped}"
        return ClaimOutcome(
            backend,
            False,
            n,
            tuple(used),
            operand_means,
            left,
            right,
            _mean(margin[finite]),
            math.nan,
            math.nan,
            interval.method,
            reason,
        )
    left_values = np.asarray(claim.left.evaluate(kept), dtype=np.float64) * np.ones(n)
    right_values = np.asarray(claim.right.evaluate(kept), dtype=np.float64) * np.ones(n)
    verdict = judge(left_values, right_values, claim.comparison, claim.multiplicative)
    return ClaimOutcome(
        backend,
        verdict.passed,
        n,
        tuple(used),
        operand_means,
        left,
        right,
        _mean(margin[finite]),
        verdict.low,
        verdict.high,
        verdict.method,
        verdict.reason + dropped,
        undecided=verdict.undecided,
        log_ratio=verdict.log_ratio,
        ratio=verdict.ratio,
    )


@dataclass(frozen=True)
class Judgement:
    """What `judge` decided for one claim on one backend."""

    passed: bool
    undecided: bool
    low: float  # 95% CI of left - right, or of the ratio left / right when log_ratio
    high: float
    method: str  # 't', 't-log-ratio' or 'exact'
    log_ratio: bool
    ratio: float  # geometric-mean ratio left / right (NaN unless log_ratio)
    reason: str


MAX_SEEDS_TO_DECIDE = 1000  # seeds_to_decide stops counting here


def judge(left: np.ndarray, right: np.ndarray, comparison: str, multiplicative: bool) -> Judgement:
    """The module's rule on per-seed values of a claim's two sides (finite, aligned, at least 2 seeds).

    Args:
        left, right: the claim's sides, one value per seed.
        comparison: '>', '>=', '<' or '<='.
        multiplicative: the claim multiplies or divides by a measured value (`Claim.multiplicative`).
    """
    from harness.analysis.statistics import mean_interval

    log_ratio = multiplicative and bool(np.all(left > 0) and np.all(right > 0))
    judged = np.log(left) - np.log(right) if log_ratio else left - right
    interval = mean_interval(judged)  # no metric bounds: a margin can take any sign
    ratio = math.exp(float(judged.mean())) if log_ratio else math.nan
    note = (
        "; a side is not positive on every seed, so the difference is judged"
        if multiplicative and not log_ratio
        else ""
    )
    if bool(np.all(judged == judged[0])):
        value = f"left / right = {ratio:.6g}" if log_ratio else f"left - right = {float(judged[0]):.6g}"
        reason = (
            f"UNDECIDED: the seeds agree exactly (every seed gives {value}): a zero-width interval says there is "
            f"no seed-to-seed noise, not that the claim is certain{note}"
        )
        low, high = (ratio, ratio) if log_ratio else (interval.low, interval.high)
        return Judgement(False, True, low, high, interval.method, log_ratio, ratio, reason)
    low, high = interval.low, interval.high
    passed = {">": low > 0, ">=": low >= 0, "<": high < 0, "<=": high <= 0}[comparison]
    # Shown false: the interval lies entirely on the other side. Neither: the seeds cannot decide.
    false = {">": high <= 0, ">=": high < 0, "<": low >= 0, "<=": low > 0}[comparison]
    undecided = not passed and not false
    reference = "1" if log_ratio else "0"
    side = f"{SIDE[comparison]} {reference}"
    if passed:
        verdict = f"lies entirely {side}"
    elif false:
        verdict = f"lies entirely on the other side of {reference}: the claim is false"
    else:
        verdict = f"straddles {reference} (not entirely {side})"
    reason = (
        f"95% CI of the ratio left / right (geometric means) {verdict}"
        if log_ratio
        else f"95% CI of left - right {verdict}{note}"
    )
    if undecided:
        reason = (
            f"UNDECIDED: {reason}; these {len(judged)} seeds can neither show nor refute it ({seeds_to_decide(judged)})"
        )
    if log_ratio:
        return Judgement(bool(passed), undecided, math.exp(low), math.exp(high), "t-log-ratio", True, ratio, reason)
    return Judgement(bool(passed), undecided, low, high, interval.method, False, ratio, reason)


@functools.cache
def _t_quantiles() -> tuple[np.ndarray, np.ndarray]:
    """Seed counts 2..MAX_SEEDS_TO_DECIDE and the 97.5% t quantile of each (n - 1 degrees of freedom), computed
    once: a scipy call per count and judgement cost `harness check` ~7 ms a claim (measured)."""
    from scipy import stats

    seeds = np.arange(2, MAX_SEEDS_TO_DECIDE + 1)
    return seeds, stats.t.ppf(0.975, seeds - 1)


def seeds_to_decide(margins: np.ndarray) -> str:
    """About how many seeds would put the 95% t interval of the mean margin clear of 0, were the
    mean and spread of these margins the truth (a planning figure, not a promise)."""
    mean, spread = float(np.mean(margins)), float(np.std(margins, ddof=1))
    if mean == 0.0 or not math.isfinite(spread):
        return "the mean margin is 0: no number of seeds decides it"
    seeds, quantiles = _t_quantiles()
    decided = np.flatnonzero(quantiles * spread / np.sqrt(seeds) < abs(mean))
    if len(decided):
        return f"~{seeds[decided[0]]} seeds would decide it"
    return f"more than {MAX_SEEDS_TO_DECIDE} seeds would be needed"


def evaluate_claims(
    results: Results, texts: Sequence[str], where: str = "expect", seeds: Collection[int] | None = None
) -> list[ClaimResult]:
    """Parse, name-check and evaluate a suite's claims on its results, on every backend that ran.

    `seeds`: judge on these seeds only (a suite's confirmation seeds); None: every seed stored.

    Raises:
        ClaimError: a claim outside the language, or an unknown arm, or a metric this suite did not
            record (did-you-mean), named by its position (expect[2]).
    """
    from harness.check.claims import ClaimError

    metrics = claim_metrics(results.metric_names)
    claims = []
    for index, text in enumerate(texts):
        try:
            claims.append(check_claim_names(parse_claim(text), results.arms, metrics, f"{where}[{index}]"))
        except ClaimError as error:
            message = str(error)
            raise ClaimError(message if message.startswith(where) else f"{where}[{index}]: {message}") from None
    final = results.final()
    if seeds is not None:
        final = final[final["seed"].isin(list(seeds))]
    outcomes = []
    for claim in claims:
        per_backend = tuple(evaluate_on_backend(claim, final, backend) for backend in results.backends)
        false_somewhere = any(not item.passed and not item.undecided for item in per_backend)
        undecided = not false_somewhere and any(item.undecided for item in per_backend)
        passed = bool(per_backend) and all(item.passed for item in per_backend)
        outcomes.append(ClaimResult(claim, passed, per_backend, undecided))
    return outcomes
