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

With fewer than two seeds there is no interval and the claim FAILS (it cannot be shown). A
margin that is not finite on a seed (a division by zero) leaves that seed out, and says so. The
claim passes when it passes on every backend that ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    ci_method: str
    reason: str


@dataclass(frozen=True)
class ClaimResult:
    """A claim and its outcome on every backend."""

    claim: Claim
    passed: bool
    outcomes: tuple[ClaimOutcome, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return {
            "claim": self.claim.text,
            "passed": self.passed,
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
    low, high = interval.low, interval.high
    passed = {">": low > 0, ">=": low >= 0, "<": high < 0, "<=": high <= 0}[claim.comparison]
    verb = "lies" if passed else "does not lie"
    reason = f"95% CI of left - right {verb} entirely {SIDE[claim.comparison]} 0{dropped}"
    return ClaimOutcome(
        backend,
        bool(passed),
        n,
        tuple(used),
        operand_means,
        left,
        right,
        _mean(margin[finite]),
        low,
        high,
        interval.method,
        reason,
    )


def evaluate_claims(results: Results, texts: Sequence[str], where: str = "expect") -> list[ClaimResult]:
    """Parse, name-check and evaluate a suite's claims on its results, on every backend that ran.

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
    outcomes = []
    for claim in claims:
        per_backend = tuple(evaluate_on_backend(claim, final, backend) for backend in results.backends)
        outcomes.append(ClaimResult(claim, bool(per_backend) and all(item.passed for item in per_backend), per_backend))
    return outcomes
