"""Drawing a round's configurations with Optuna, and narrowing the ranges between rounds.

Determinism: a round's configurations depend only on (suite name, arm, round, trial index) and the
stored results of the earlier rounds, never on the order trials finish or on --jobs, because all
of a round's configurations are asked from a fresh seeded sampler in ONE batch before any of them
runs:
- random: Optuna's RandomSampler, seeded per (suite, arm, round).
- sobol: Optuna's QMCSampler (scrambled Sobol, seeded the same way). It draws the first
  configuration of a round independently (at random) and the rest from the Sobol sequence.
- tpe: Optuna's TPESampler told every earlier round's configurations (in round, then index order,
  each with its objective averaged over the search seeds; one that diverged or timed out on any
  seed as failed), then asked the whole round at once. Asked without being told in between, TPE
  draws each configuration from the same model with its own random state, a batch scheme whose
  result is fixed by the history; round 0 has no history and is drawn at random.

Values are rounded to 6 significant digits (readable tables, same hashes every time) and clipped to
their range.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from harness.suite.search import Dimension, SearchSpec

SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True)
class Observed:
    """A configuration of an earlier round with its objective (NaN: not ok on some seed)."""

    round: int
    index: int
    values: Mapping[str, Any]
    ranges: tuple[Dimension, ...]
    objective: float


def sampler_seed(suite: str, arm: str, round_index: int) -> int:
    """A 32-bit seed from the suite, arm and round alone (stable across processes, unlike hash())."""
    digest = hashlib.sha256(f"{suite}\0{arm}\0{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def draw_round(
    search: SearchSpec,
    suite: str,
    arm: str,
    round_index: int,
    ranges: Sequence[Dimension],
    history: Sequence[Observed],
) -> list[dict[str, Any]]:
    """The round's `search.trials` configurations ({path: value}), in index order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = sampler_seed(suite, arm, round_index)
    direction: Literal["maximize", "minimize"] = "maximize" if search.higher_is_better else "minimize"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QMCSampler and add_trial's experimental-feature warnings
        sampler = _sampler(search, seed)
        study = optuna.create_study(direction=direction, sampler=sampler)
        if search.sampler == "tpe":
            for observed in history:
                study.add_trial(
                    optuna.trial.create_trial(
                        params=_to_optuna(observed.values, observed.ranges),
                        distributions=_distributions(observed.ranges),
                        value=None if math.isnan(observed.objective) else observed.objective,
                        state=optuna.trial.TrialState.FAIL
                        if math.isnan(observed.objective)
                        else optuna.trial.TrialState.COMPLETE,
                    )
                )
        distributions = _distributions(ranges)
        asked = [study.ask(distributions).params for _ in range(search.trials)]
    return [_from_optuna(params, ranges) for params in asked]


def _sampler(search: SearchSpec, seed: int) -> Any:
    import optuna

    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.trials)


def _distributions(ranges: Sequence[Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result: dict[str, Any] = {}
    for dimension in ranges:
        if dimension.kind == "choice":
            # Optuna's categories must be plain scalars; a choice may be a list ([64, 64]): sample its index
            result[dimension.path] = CategoricalDistribution(tuple(range(len(dimension.choices))))
        elif dimension.integer:
            assert dimension.low is not None and dimension.high is not None
            result[dimension.path] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            assert dimension.low is not None and dimension.high is not None
            result[dimension.path] = FloatDistribution(dimension.low, dimension.high, log=dimension.log)
    return result


def _to_optuna(values: Mapping[str, Any], ranges: Sequence[Dimension]) -> dict[str, Any]:
    return {
        d.path: d.choices.index(values[d.path]) if d.kind == "choice" else values[d.path]
        for d in ranges
        if d.path in values
    }


def _from_optuna(params: Mapping[str, Any], ranges: Sequence[Dimension]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for dimension in ranges:
        raw = params[dimension.path]
        if dimension.kind == "choice":
            values[dimension.path] = dimension.choices[int(raw)]
        elif dimension.integer:
            values[dimension.path] = int(raw)
        else:
            assert dimension.low is not None and dimension.high is not None
            rounded = float(f"{float(raw):.{SIGNIFICANT_DIGITS}g}")
            values[dimension.path] = min(max(rounded, dimension.low), dimension.high)
    return values


def keep_count(search: SearchSpec, finite: int) -> int:
    """How many of a round's configurations set the next range: ceil(keep x trials), at least 2 (a range
    needs two ends) where the round has them, never more than those with a finite objective."""
    return min(finite, max(2, math.ceil(search.keep * search.trials)))


def narrow(ranges: Sequence[Dimension], best: Sequence[Mapping[str, Any]]) -> tuple[Dimension, ...]:
    """The next round's ranges: each numeric dimension spans the values of the `best` configurations (the same
    span in log space for a log dimension, whose draws are uniform in the log); a choice keeps the values seen
    among them, in their original order. No best configuration (all diverged): the ranges stay as they were."""
    if not best:
        return tuple(ranges)
    narrowed = []
    for dimension in ranges:
        seen = [values[dimension.path] for values in best]
        if dimension.kind == "choice":
            narrowed.append(replace(dimension, choices=tuple(c for c in dimension.choices if c in seen)))
        else:
            narrowed.append(replace(dimension, low=float(min(seen)), high=float(max(seen))))
    return tuple(narrowed)
