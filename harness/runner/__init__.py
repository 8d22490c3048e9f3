"""The local runner: every trial not yet in the store, on reusable worker processes.

    from harness.runner import run_trials
    with Store("results") as store:
        summary = run_trials(suite.trials, store, jobs=2)

Trials already finished in the store (ok, diverged, timeout) are skipped unless `rerun`;
failed ones run again. Each trial is recorded by this (driver) process in one transaction
as its result arrives, so Ctrl-C or a kill loses at most the trials in flight, and running
again resumes. A worker pinned to max(1, cores // jobs) threads runs one trial at a time;
a trial that raises is recorded 'failed' with its error, a worker that dies has its trial
retried once and then recorded 'failed', a trial past training.max_seconds plus a grace
period is killed and recorded 'timeout'; the other trials go on in every case.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.runner.pool import MAX_ATTEMPTS, RunEvent, WorkerPool, environment_of
from harness.runner.progress import RunProgress, progress_enabled
from harness.spec.types import Trial
from harness.store import Store

if TYPE_CHECKING:
    from harness.adapters.loop import TrialResult

__all__ = ["MAX_ATTEMPTS", "RunEvent", "RunSummary", "environment_of", "run_trials", "worker_threads"]


@dataclass
class RunSummary:
    """What one `run_trials` call did. Counts are of unique trials (by content hash)."""

    total: int  # unique trials asked for
    skipped: int  # already finished in the store
    ok: int
    diverged: int
    failed: int
    timeout: int
    interrupted: bool  # Ctrl-C: finished trials are stored; run again to resume
    wall_seconds: float


def worker_threads(jobs: int, cpu_count: int | None = None) -> int:
    """Threads per worker: the cores shared out so `jobs` workers do not oversubscribe them."""
    return max(1, (cpu_count or os.cpu_count() or 1) // jobs)


def run_trials(
    trials: Sequence[Trial],
    store: Store,
    *,
    jobs: int | None = None,
    rerun: bool = False,
    quiet: bool = False,
    on_event: Callable[[RunEvent], None] | None = None,
    grace_seconds: float | None = None,
) -> RunSummary:
    """Run every trial not yet finished in the store, recording each as it ends.

    Args:
        trials: the trials (a suite's `trials`); duplicates by hash run once.
        store: where results go; also says which trials are already done.
        jobs: worker processes (None: the number of cores).
        rerun: run trials again even when the store has their final result.
        quiet: no progress display (it is also off when stdout is not a terminal).
        on_event: optional observer of the pool's RunEvents (dispatched, started, retry, finished).
        grace_seconds: how far past training.max_seconds a trial may run before its worker is
            killed (None: max(10 s, half of max_seconds)).

    Returns:
        A RunSummary; `interrupted` is True after Ctrl-C (the caller says how to resume).

    Raises:
        HarnessError: jobs < 1.
    """
    clock = time.perf_counter()
    if jobs is None:
        jobs = os.cpu_count() or 1
    if not isinstance(jobs, int) or jobs < 1:
        raise HarnessError(f"jobs: expected a whole number of worker processes >= 1, got {jobs!r}. Fix: pass --jobs 1 or more.")
    unique: dict[str, Trial] = {}
    for trial in trials:
        unique.setdefault(trial.hash, trial)  # the first of duplicates wins
    done = set() if rerun else store.finished(unique)
    todo = [trial for trial in unique.values() if trial.hash not in done]
    summary = RunSummary(
        total=len(unique), skipped=len(unique) - len(todo), ok=0, diverged=0, failed=0, timeout=0,
        interrupted=False, wall_seconds=0.0,
    )
    if todo:
        with RunProgress(len(todo), progress_enabled(quiet)) as progress:

            def record(trial: Trial, result: TrialResult, attempts: int) -> None:
                store.record(trial, result, attempts=attempts)
                setattr(summary, result.status, getattr(summary, result.status) + 1)
                progress.finished(result.status)

            def observe(event: RunEvent) -> None:
                if event.kind == "dispatched":
                    progress.running(event.trial)
                if on_event is not None:
                    on_event(event)

            pool = WorkerPool(min(jobs, len(todo)), worker_threads(jobs), record, observe, grace_seconds)
            try:
                pool.run(todo)
            except KeyboardInterrupt:
                summary.interrupted = True
            finally:
                pool.close()
    summary.wall_seconds = time.perf_counter() - clock
    return summary
