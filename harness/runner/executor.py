"""The scheduling loop every executor shares: local worker processes (pool.py), Ray actors (ray_pool.py).

An `Executor` keeps up to `jobs` workers alive, each bound to one worker environment and
running at most one trial at a time, and owns a trial's whole way through them:

- which idle worker takes which task, and which environment a new worker is started for
  (the one with the most waiting tasks per worker it already has);
- freeing the slot of an idle worker whose environment has no work left;
- outcomes: a result is handed to `on_result` (the driver records it); a trial whose worker
  died is queued again once, then recorded 'failed' with the cause (MAX_ATTEMPTS); a trial
  past training.max_seconds plus a grace period has its worker killed and is recorded
  'timeout'; every other trial goes on;
- a worker that imported other harness code than the driver's (code_version.py) refuses its
  trial: the trial goes back unrecorded, nothing more is dispatched, trials in flight on the other
  workers finish, and `code_changed` says why (the run ends with EXIT_CODE_CHANGED; rerun to finish).
  Retrying on a fresh worker would not help: it would import the same changed files;
- the RunEvents, in the order dispatched -> started -> (retry | finished | refused);
- stopping every worker on close(), also after Ctrl-C (KeyboardInterrupt leaves run()).

A subclass says only how a worker is started (`_start`), given a task (`_send`), waited on
(`_handles`, `_wait_on`, `_collect`) and ended (`_kill`, `_stop`, `_reap`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from harness.adapters.result import TrialResult, now
from harness.runner.code_version import CodeVersion
from harness.runner.tasks import MAX_ATTEMPTS, RunEvent, Task, TaskQueue, deadline, death_result, timeout_result
from harness.spec.types import Trial

__all__ = ["POLL_SECONDS", "Executor", "ExecutorSettings", "WorkerHandle", "begin_attempt"]

POLL_SECONDS = 1.0  # longest wait between checks of timeouts, worker health and held trials


class WorkerHandle(Protocol):
    """What the loop reads and writes on a worker, whatever runs it (a process, an actor)."""

    task: Task | None  # the trial in flight, None when idle
    trials_done: int  # trials it has finished (0: a cold worker, still importing on its first trial)

    # Read-only members are properties: a worker may hold a narrower type (an Environment tuple).
    @property
    def environment(self) -> Hashable:
        """The worker environment it was started with; it runs only trials of that one."""

    @property
    def pid(self) -> int | None:
        """The operating-system process id, None while unknown."""


WorkerType = TypeVar("WorkerType", bound=WorkerHandle)


def begin_attempt(task: Task) -> None:
    """Count one more execution of the task and restart its clocks: sent now, not started yet."""
    task.attempts += 1
    task.dispatched_at, task.started_at = time.perf_counter(), None


@dataclass(frozen=True)
class ExecutorSettings:
    """What every executor is given, whatever runs its workers (processes, Ray actors).

    Attributes:
        jobs: most workers alive at once.
        threads: threads each worker is pinned to.
        on_result: called in the driver with (trial, result, attempts) as each trial ends; it
            records the trial (the driver alone writes the store).
        on_event: optional observer of RunEvents.
        grace_seconds: a trial running this long past training.max_seconds is killed and
            recorded 'timeout'; None: max(10 s, half of max_seconds), since the loop itself
            only stops at an epoch boundary.
        code: the driver's code version (code_version.PROCESS_CODE_VERSION), which each worker
            checks its own against; None: not checked.
        checkpoints: the folder of in-trial checkpoints (harness.adapters.checkpoints) each trial
            resumes from and writes to; None: no checkpoints.
    """

    jobs: int
    threads: int
    on_result: Callable[[Trial, TrialResult, int], None]
    on_event: Callable[[RunEvent], None] | None = None
    grace_seconds: float | None = None
    code: CodeVersion | None = None
    checkpoints: str | None = None  # the folder of in-trial checkpoints workers write and resume (None: none)


class Executor(ABC, Generic[WorkerType]):
    """Runs a TaskQueue's trials on up to `settings.jobs` reusable workers, one trial in flight each."""

    def __init__(self, settings: ExecutorSettings) -> None:
        self.configure(settings)
        self.workers: list[WorkerType] = []
        self.code_changed: str | None = None  # set when a worker refused: its code is not the driver's

    def configure(self, settings: ExecutorSettings) -> None:
        """Take a run's settings; a pool kept warm across runs (driver.TrialRunner) is given each run's own
        callbacks this way. Its workers stay as they are: `threads` and `code` must not change between runs."""
        self.jobs, self.threads = settings.jobs, settings.threads  # jobs may shrink during a run (ray_pool)
        self.on_result, self.on_event = settings.on_result, settings.on_event
        self.grace_seconds = settings.grace_seconds
        self.code = settings.code
        self.checkpoints = settings.checkpoints

    # -- what a subclass provides -------------------------------------------------------------

    @abstractmethod
    def _start(self, environment: Any, task: Task | None) -> WorkerType:
        """Start a worker for `environment`, whose first trial will be `task` (not sent yet; None: started
        ahead of the run by `prestart`, idle until the run hands it a trial)."""

    @abstractmethod
    def _send(self, worker: WorkerType, task: Task) -> None:
        """Hand the task to the idle worker: begin_attempt(task), set worker.task, send it."""

    @abstractmethod
    def _handles(self) -> list[Any]:
        """What `_wait_on` waits for (pipes, process sentinels, object references); [] for nothing."""

    @abstractmethod
    def _wait_on(self, handles: list[Any], timeout: float) -> Collection[Any]:
        """Block until one of the handles is ready or `timeout` seconds pass; returns the ready ones."""

    @abstractmethod
    def _collect(self, ready: Collection[Any], queue: TaskQueue) -> None:
        """Handle what the ready handles say: call _started, _finish and _on_death, remove dead workers."""

    @abstractmethod
    def _kill(self, worker: WorkerType) -> None:
        """End the worker now, whatever it is doing."""

    def _stop(self, worker: WorkerType) -> None:
        """Ask the worker to exit (kill it if it is busy). Default: kill it."""
        self._kill(worker)

    def _reap(self, worker: WorkerType) -> None:
        """Wait for a stopped or killed worker to exit and free what it held. Default: nothing to wait for."""

    def prestart(self, waiting: dict[Any, int]) -> None:
        """Start idle workers ahead of a run, for environments with `waiting` trials each, chosen as `_schedule`
        chooses (the most trials per worker first), up to `jobs` workers and one per trial; a worker imports
        its framework while the driver still prepares the run."""
        waiting = {environment: count for environment, count in waiting.items() if count > 0}
        while len(self.workers) < self.jobs and waiting:
            environment = self._neediest(waiting)
            self.workers.append(self._start(environment, None))
            waiting[environment] -= 1
            if not waiting[environment]:
                del waiting[environment]

    # -- the loop -----------------------------------------------------------------------------

    def run(self, queue: TaskQueue) -> None:
        """Run every task of the queue to a recorded result, or, once a worker refused because the code
        changed, the tasks in flight only. KeyboardInterrupt propagates (call close())."""
        if self.workers:  # kept warm since an earlier run: a worker that died idle is dropped before it gets a task
            self._collect((), queue)
        while (queue.pending() and self.code_changed is None) or any(worker.task for worker in self.workers):
            self._schedule(queue)
            self._wait(queue)

    def _schedule(self, queue: TaskQueue) -> None:
        if self.code_changed is not None:  # the code on disk is not the driver's: start nothing more
            return
        queue.release_held()
        for worker in self.workers:
            if worker.task is None:
                task = queue.take(worker.environment)
                if task is not None:
                    self._dispatch(worker, task)
        # An idle worker whose environment has no work left frees its slot for another environment.
        waiting = queue.waiting()
        if waiting:
            for worker in [w for w in self.workers if w.task is None and w.environment not in waiting]:
                self._remove(worker)
        while len(self.workers) < self.jobs:
            waiting = queue.waiting()
            if not waiting:
                break
            environment = self._neediest(waiting)
            task = queue.take(environment)  # claimed before a worker is started for it
            if task is not None:
                worker = self._start(environment, task)
                self.workers.append(worker)
                self._dispatch(worker, task)

    def _neediest(self, waiting: dict[Any, int]) -> Any:
        """The environment a new worker is started for: the most waiting tasks per worker it already has."""
        count = {env: sum(w.environment == env for w in self.workers) for env in waiting}
        return max(waiting, key=lambda env: waiting[env] / (1 + count[env]))

    def _dispatch(self, worker: WorkerType, task: Task) -> None:
        self._send(worker, task)
        for trial in task.trials:  # each member of a stacked group is a trial of its own to observers
            self._emit(RunEvent("dispatched", trial, worker.pid, task.attempts, worker_trials=worker.trials_done))

    def _started(self, worker: WorkerType) -> None:
        """The worker begins training its task: the trial's timeout clock starts."""
        task = worker.task
        if task is not None and task.started_at is None:
            task.started_at, task.started_iso = time.perf_counter(), now()
            for trial in task.trials:
                self._emit(RunEvent("started", trial, worker.pid, task.attempts, worker_trials=worker.trials_done))

    def _wait(self, queue: TaskQueue) -> None:
        timeout = POLL_SECONDS
        for worker in self.workers:
            limit = deadline(worker.task, self.grace_seconds)
            if limit is not None:
                timeout = min(timeout, max(0.0, limit - time.perf_counter()))
        handles = self._handles()
        if handles:
            ready = self._wait_on(handles, timeout)
        else:  # nothing to wait for: only trials held by another run are left
            time.sleep(timeout)
            ready = set()
        self._collect(ready, queue)
        self._check_deadlines()

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self, task: Task, result: TrialResult | list[TrialResult], worker: WorkerType | None) -> None:
        """Record the task's final result (worker None: it died or was killed): a stacked group's
        members each get their own result (a list, in `task.trials` order), or all the same one (a
        death or timeout)."""
        results = result if isinstance(result, list) else [result] * len(task.trials)
        for trial, outcome in zip(task.trials, results):
            self.on_result(trial, outcome, task.attempts)
            self._emit(
                RunEvent(
                    "finished",
                    trial,
                    worker.pid if worker else None,
                    task.attempts,
                    seconds=time.perf_counter() - task.dispatched_at,
                    result=outcome,
                    worker_trials=worker.trials_done if worker else 0,
                )
            )

    def _on_death(self, task: Task, cause: str, pid: int | None, queue: TaskQueue) -> None:
        """The task's worker died (already removed): queue it again once, then record it 'failed'."""
        if task.attempts < MAX_ATTEMPTS:
            # the next free worker of this environment takes it; a stacked group's members are retried
            # one by one, so one trial that kills its worker does not take the others with it again
            for trial in reversed(task.trials) if task.members else ():
                queue.put_back(Task(task.index, trial, task.attempts, stacked=True))
            if not task.members:
                queue.put_back(task)
            for trial in task.trials:
                self._emit(RunEvent("retry", trial, pid, task.attempts))
            return
        self._finish(task, death_result(task, cause), None)

    def _refused(self, worker: WorkerType, reason: str, queue: TaskQueue) -> None:
        """The worker imported other code than the driver's and exits: its task goes back unrecorded
        (a rerun picks it up) and nothing more is dispatched."""
        task, worker.task = worker.task, None
        self.code_changed = self.code_changed or reason
        if task is not None:
            queue.put_back(task)
            for trial in task.trials:
                self._emit(RunEvent("refused", trial, worker.pid, task.attempts))

    def _check_deadlines(self) -> None:
        for worker in list(self.workers):
            task = worker.task
            limit = deadline(task, self.grace_seconds)
            if task is None or limit is None or time.perf_counter() < limit:
                continue
            self._kill(worker)
            self._remove(worker, stop=False)
            self._finish(task, timeout_result(task, self.grace_seconds), None)

    # -- lifetime -----------------------------------------------------------------------------

    def _remove(self, worker: WorkerType, stop: bool = True) -> None:
        """Drop the worker from the pool; `stop` False when it is already dead or killed."""
        self.workers.remove(worker)
        if stop:
            self._stop(worker)
        self._reap(worker)

    def close(self) -> None:
        """Stop every worker: idle ones exit cleanly, busy ones (an interrupted run) and ones that never ran a
        trial (started ahead by `prestart`, perhaps still importing) are killed."""
        workers, self.workers = self.workers, []
        for worker in workers:  # every one asked first, so they exit side by side
            self._stop(worker)
        for worker in workers:
            self._reap(worker)

    def _emit(self, event: RunEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
