"""Start order: the longest trials first, when earlier runs in the store say how long they take.

With N workers, a long trial that starts last keeps one worker busy while the others idle;
starting the longest first (the LPT rule: within 4/3 of the best possible makespan, Graham
1969) avoids that. A trial's duration is estimated from the wall_seconds of trials already
in the store that ran to an end (ok, diverged, timeout), by the most specific match:

    1. the same trial (same content hash: a --rerun, or a trial that failed and runs again)
    2. the same spec but another seed (median over the seeds)
    3. the same suite, arm and backend (median; e.g. the budget changed since)

Trials with no match keep their suite order and go BEFORE the estimated ones: an unknown
trial may be the longest of all, so it must not be left for last. With nothing known
(a first run), the order is the suite's.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence

from harness.spec.types import Trial, canonical_json
from harness.store import Store


def _without_seed(spec: dict) -> str:
    spec = dict(spec)
    spec.pop("seed", None)
    return canonical_json(spec)


def estimate_durations(trials: Sequence[Trial], store: Store) -> dict[str, float | None]:
    """Estimated wall seconds of each trial (by hash) from the store's earlier trials; None: unknown."""
    by_hash: dict[str, float] = {}
    by_spec: dict[str, list[float]] = defaultdict(list)
    by_arm: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in store.duration_rows():  # plain Python values, one dict per stored trial (no pandas)
        by_hash[row["hash"]] = row["wall_seconds"]
        by_spec[_without_seed(json.loads(row["spec"]))].append(row["wall_seconds"])
        by_arm[(row["suite"], row["arm"], row["backend"])].append(row["wall_seconds"])
    estimates: dict[str, float | None] = {}
    for trial in trials:
        if trial.hash in by_hash:
            estimates[trial.hash] = by_hash[trial.hash]
        else:
            seconds = by_spec.get(_without_seed(trial.spec.to_dict())) or by_arm.get(
                (trial.suite, trial.arm, trial.spec.backend)
            )
            estimates[trial.hash] = statistics.median(seconds) if seconds else None
    return estimates


def longest_first(trials: Sequence[Trial], store: Store) -> list[Trial]:
    """The trials in start order: unknown durations first (suite order), then longest estimate first.

    Ties keep suite order (the sort is stable).
    """
    if not trials:
        return []
    estimates = estimate_durations(trials, store)
    unknown = [trial for trial in trials if estimates[trial.hash] is None]
    known = [trial for trial in trials if estimates[trial.hash] is not None]
    return unknown + sorted(known, key=lambda trial: -(estimates[trial.hash] or 0.0))
