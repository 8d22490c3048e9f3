"""What every executor (local processes, Ray actors) shares: tasks, the waiting queue, events, outcomes.

A `TaskQueue` holds the trials still to run, one queue per worker environment, in schedule
order (longest first, see schedule.py). Before a trial leaves the queue it is claimed in
the store (leases.py): a trial another live run is executing is set aside and asked about
again every few seconds, and one that run recorded meanwhile is dropped ('done elsewhere').
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from harness.adapters.result import TrialResult, now
from harness.spec.types import Trial

MAX_ATTEMPTS = 2  # a trial whose worker dies is retried once, then recorded 'failed'
RECHECK_SECONDS = 2.0  # how often a trial held by another run is asked about again


@dataclass
class Task:
    """One trial on its way through an executor."""

    index: int
    trial: Trial
    attempts: int = 0  # executions started so far (a dead worker's trial is retried)
    dispatched_at: float = 0.0  # time.perf_counter() when sent to a worker
    started_at: float | None = None  # when the worker began training (the timeout clock)
    started_iso: str = ""
    # further trials trained with `trial` as one stacked model (harness.runner.grouping); () for a lone trial
    members: tuple[Trial, ...] = ()
    stacked: bool = False  # trained by the stacked engine (harness.adapters.vectorize), also when alone

    @property
    def trials(self) -> tuple[Trial, ...]:
        """Every trial this task records: `trial`, then the members stacked with it."""
        return (self.trial, *self.members)


@dataclass(frozen=True)
class RunEvent:
    """What an executor reports as it goes (for progress displays, benchmarks and tests).

    kind: 'dispatched' (sent to a worker), 'started' (the worker has its adapter and data and
    begins training), 'retry' (its worker died; queued again), 'finished' (recorded;
    `seconds` = driver time from dispatch to recorded, `result` set), 'elsewhere' (another run
    recorded it while this one waited; nothing was run), 'refused' (its worker imported other
    harness code than the driver's; left unrecorded, and the run dispatches nothing more).
    """

    kind: str
    trial: Trial
    worker_pid: int | None
    attempt: int
    seconds: float = 0.0
    result: TrialResult | None = None
    worker_trials: int = 0  # trials this worker had finished before this one (0 = a cold worker)


# claim(trial) -> 'claimed' | 'done' | 'busy' (Store.claim's answers).
Claim = Callable[[Trial], str]


class TaskQueue:
    """Trials waiting for a worker, grouped by the environment a worker needs for them.

    Args:
        tasks: the tasks in the order they should start.
        environment_of: the (hashable) worker environment a trial needs.
        claim: asked before a task is handed out; None: every task is 'claimed'.
        on_elsewhere: called with a task another run recorded while it waited here.
    """

    def __init__(
        self,
        tasks: Iterable[Task],
        environment_of: Callable[[Trial], Hashable],
        claim: Claim | None = None,
        on_elsewhere: Callable[[Task], None] = lambda task: None,
    ) -> None:
        self.environment_of = environment_of
        self._claim = claim
        self._on_elsewhere = on_elsewhere
        self._queues: dict[Hashable, deque[Task]] = {}
        self._held: list[tuple[float, Task]] = []  # (when to ask again, task) for trials another run holds
        for task in tasks:
            self._queues.setdefault(environment_of(task.trial), deque()).append(task)

    def waiting(self) -> dict[Hashable, int]:
        """Tasks ready to hand out now, per environment (held ones excluded)."""
        return {environment: len(queue) for environment, queue in self._queues.items() if queue}

    def pending(self) -> bool:
        """Whether any task is still to run: queued, or held by another run."""
        return bool(self._held) or any(self._queues.values())

    def take(self, environment: Hashable) -> Task | None:
        """The next task of this environment this run may execute (claimed), or None."""
        queue = self._queues.get(environment)
        while queue:
            task = queue.popleft()
            if task.stacked:
                group = self._claim_group(task)
                if group is not None:
                    return group
                continue
            outcome = "claimed" if self._claim is None else self._claim(task.trial)
            if outcome == "claimed":
                return task
            if outcome == "busy":
                self._held.append((time.monotonic() + RECHECK_SECONDS, task))
            else:  # 'done': another run recorded it while it waited here
                self._on_elsewhere(task)
        return None

    def _claim_group(self, task: Task) -> Task | None:
        """Claim every trial of a stacked group: those another run holds wait apart as lone tasks, those it
        recorded are dropped; the claimed rest (None: none) stays one task."""
        claimed = []
        for trial in task.trials:
            outcome = "claimed" if self._claim is None else self._claim(trial)
            lone = Task(task.index, trial, task.attempts, stacked=True)
            if outcome == "claimed":
                claimed.append(trial)
            elif outcome == "busy":
                self._held.append((time.monotonic() + RECHECK_SECONDS, lone))
            else:
                self._on_elsewhere(lone)
        if not claimed:
            return None
        task.trial, task.members = claimed[0], tuple(claimed[1:])
        return task

    def put_back(self, task: Task) -> None:
        """Queue a task again at the front (its worker died; it is retried next)."""
        self._queues.setdefault(self.environment_of(task.trial), deque()).appendleft(task)

    def release_held(self) -> float | None:
        """Queue again the held tasks whose recheck time has come; returns seconds to the next one (None: none held)."""
        moment = time.monotonic()
        due = [task for when, task in self._held if when <= moment]
        self._held = [(when, task) for when, task in self._held if when > moment]
        for task in sorted(due, key=lambda task: task.index, reverse=True):
            self.put_back(task)  # front of the queue, in their original order
        if not self._held:
            return None
        return max(0.0, min(when for when, _ in self._held) - moment)


def death_result(task: Task, cause: str) -> TrialResult:
    """The 'failed' result of a trial whose worker died on every attempt."""
    return TrialResult(
        status="failed",
        error=(
            f"{cause} while running this trial, on each of {task.attempts} attempts (a crash in native code, "
            "or running out of memory, are the usual causes; check memory use and the worker's stderr)"
        ),
        wall_seconds=time.perf_counter() - task.dispatched_at,
        started_at=task.started_iso,
        finished_at=now(),
    )


def grace(limit: float, grace_seconds: float | None) -> float:
    """How far past training.max_seconds a trial may run before its worker is killed: the loop
    stops only at an epoch boundary. Default: max(10 s, half of max_seconds)."""
    return grace_seconds if grace_seconds is not None else max(10.0, 0.5 * limit)


def deadline(task: Task | None, grace_seconds: float | None) -> float | None:
    """time.perf_counter() after which a started task is killed, or None (no limit / not started)."""
    if task is None or task.started_at is None:
        return None
    limit = task.trial.spec.training.max_seconds
    if limit is None:
        return None
    return task.started_at + limit + grace(limit, grace_seconds)


def timeout_result(task: Task, grace_seconds: float | None) -> TrialResult:
    """The 'timeout' result of a trial killed past its deadline."""
    limit = task.trial.spec.training.max_seconds
    assert limit is not None and task.started_at is not None
    elapsed = time.perf_counter() - task.started_at
    return TrialResult(
        status="timeout",
        error=(
            f"killed after {elapsed:.1f} s of training: past training.max_seconds={limit} plus a "
            f"{grace(limit, grace_seconds):g} s grace (one epoch ran too long to stop at an epoch boundary). "
            "Raise training.max_seconds, or shorten an epoch (fewer samples, larger batches)."
        ),
        wall_seconds=time.perf_counter() - task.dispatched_at,
        started_at=task.started_iso,
        finished_at=now(),
    )
