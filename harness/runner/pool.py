"""A small pool of reusable worker processes that survives its workers dying.

Why not ProcessPoolExecutor: when one of its workers dies, the executor breaks as a whole
and cannot say which task was in flight. Here each worker is one `spawn` Process with its
own Pipe and exactly one trial in flight, so a death (SIGKILL, segfault, out-of-memory
kill) names its trial: that trial is retried once on another worker, then recorded
'failed' with the cause, and every other trial goes on.

Environments: Keras reads KERAS_BACKEND once per process, so each worker is bound to one
environment ('default', or a Keras backend name from `BACKENDS[name].keras_backend`) and
runs only trials of that environment. Thread counts and KERAS_BACKEND are placed in the
child's environment before it starts, hence before any framework import.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from harness.adapters import BACKENDS
from harness.adapters.loop import TrialResult, now
from harness.runner.worker import worker_main
from harness.spec.types import Trial

MAX_ATTEMPTS = 2  # a trial whose worker dies is retried once, then recorded 'failed'
DEFAULT_ENVIRONMENT = "default"
THREAD_VARIABLES = (  # read by OpenMP, MKL, OpenBLAS (torch, numpy) and TensorFlow at import
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
)
STOP_SECONDS = 10.0  # how long a stopping worker may take to exit before it is killed
POLL_SECONDS = 1.0  # longest wait between checks of timeouts and worker health


def environment_of(backend: str) -> str:
    """The worker environment a backend needs: its Keras backend, or 'default'."""
    entry = BACKENDS.get(backend)
    return entry.keras_backend if entry is not None and entry.keras_backend else DEFAULT_ENVIRONMENT


def worker_variables(environment: str, threads: int) -> dict[str, str]:
    """Environment variables of a worker process: pinned thread counts and, for Keras, its backend."""
    variables = {name: str(threads) for name in THREAD_VARIABLES}
    variables["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's info logs off the progress bar
    if environment != DEFAULT_ENVIRONMENT:
        variables["KERAS_BACKEND"] = environment
    return variables


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Temporarily set variables in this process's environment, which a spawned child inherits."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while starting a child: an ignored signal stays ignored across exec, so
    Ctrl-C (sent to the whole process group) cannot kill a worker still importing its modules;
    the driver alone decides what stops. Only the main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def describe_exit(exitcode: int | None) -> str:
    """'worker killed by signal 9 (SIGKILL)' or 'worker exited with code 1'."""
    if exitcode is None:
        return "worker stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"worker killed by signal {-exitcode} ({name})"
    return f"worker exited with code {exitcode}"


@dataclass
class Task:
    """One trial on its way through the pool."""

    index: int
    trial: Trial
    attempts: int = 0  # executions started so far (a dead worker's trial is retried)
    dispatched_at: float = 0.0  # time.perf_counter() when sent to a worker
    started_at: float | None = None  # when the worker began training (the timeout clock)
    started_iso: str = ""


@dataclass(frozen=True)
class RunEvent:
    """What the pool reports as it goes (for progress displays, benchmarks and tests).

    kind: 'dispatched' (sent to a worker), 'started' (the worker has its adapter and data and
    begins training), 'retry' (its worker died; queued again), 'finished' (recorded;
    `seconds` = driver time from dispatch to recorded, `result` set).
    """

    kind: str
    trial: Trial
    worker_pid: int | None
    attempt: int
    seconds: float = 0.0
    result: TrialResult | None = None
    worker_trials: int = 0  # trials this worker had finished before this one (0 = a cold worker)


class Worker:
    """One reusable worker process bound to one environment, with at most one trial in flight."""

    def __init__(self, context: Any, environment: str, threads: int) -> None:
        self.environment = environment
        self.task: Task | None = None
        self.trials_done = 0
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main, args=(child_end, threads), name=f"harness-worker-{environment}", daemon=True,
        )
        with _environment(worker_variables(environment, threads)), _sigint_ignored():
            self.process.start()
        child_end.close()  # so the driver's recv sees EOF when the worker dies

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def dispatch(self, task: Task) -> None:
        task.attempts += 1
        task.dispatched_at, task.started_at = time.perf_counter(), None
        self.task = task
        self.connection.send((task.index, task.trial.spec))

    def stop(self) -> None:
        """Ask an idle worker to exit; kill a busy or unresponsive one."""
        if self.task is None and self.process.is_alive():
            try:
                self.connection.send(None)
            except OSError:
                pass
        else:
            self.process.kill()

    def reap(self, seconds: float = STOP_SECONDS) -> None:
        self.process.join(seconds)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


class WorkerPool:
    """Runs trials on up to `jobs` reusable spawn-context worker processes.

    Args:
        jobs: most workers alive at once.
        threads: threads each worker is pinned to.
        on_result: called in the driver with (trial, result, attempts) as each trial ends; it
            records the trial (the driver alone writes the store).
        on_event: optional observer of RunEvents.
        grace_seconds: a trial running this long past training.max_seconds is killed and
            recorded 'timeout'; None: max(10 s, half of max_seconds), since the loop itself
            only stops at an epoch boundary.
    """

    def __init__(
        self,
        jobs: int,
        threads: int,
        on_result: Callable[[Trial, TrialResult, int], None],
        on_event: Callable[[RunEvent], None] | None = None,
        grace_seconds: float | None = None,
    ) -> None:
        self.jobs, self.threads = jobs, threads
        self.on_result, self.on_event = on_result, on_event
        self.grace_seconds = grace_seconds
        self.workers: list[Worker] = []
        self._queues: dict[str, deque[Task]] = {}
        self._context = multiprocessing.get_context("spawn")

    # -- the loop -----------------------------------------------------------------------------

    def run(self, trials: Sequence[Trial]) -> None:
        """Run every trial to a recorded result. KeyboardInterrupt propagates (call close())."""
        for index, trial in enumerate(trials):
            self._queues.setdefault(environment_of(trial.spec.backend), deque()).append(Task(index, trial))
        while any(self._queues.values()) or any(worker.task for worker in self.workers):
            self._schedule()
            self._wait()

    def _schedule(self) -> None:
        for worker in self.workers:
            if worker.task is None and self._queues.get(worker.environment):
                self._dispatch(worker, self._queues[worker.environment].popleft())
        # An idle worker whose environment has no work left frees its slot for another environment.
        if any(self._queues.values()):
            for worker in [w for w in self.workers if w.task is None]:
                if not self._queues.get(worker.environment):
                    self._remove(worker)
        while len(self.workers) < self.jobs:
            waiting = {env: len(queue) for env, queue in self._queues.items() if queue}
            if not waiting:
                break
            count = {env: sum(w.environment == env for w in self.workers) for env in waiting}
            environment = max(waiting, key=lambda env: waiting[env] / (1 + count[env]))
            worker = Worker(self._context, environment, self.threads)
            self.workers.append(worker)
            self._dispatch(worker, self._queues[environment].popleft())

    def _dispatch(self, worker: Worker, task: Task) -> None:
        try:
            worker.dispatch(task)
        except OSError:  # died before it could take the trial: the health check requeues it
            pass
        self._emit(RunEvent("dispatched", task.trial, worker.pid, task.attempts, worker_trials=worker.trials_done))

    def _wait(self) -> None:
        timeout = POLL_SECONDS
        for worker in self.workers:
            deadline = self._deadline(worker.task)
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.perf_counter()))
        handles = [worker.connection for worker in self.workers] + [worker.process.sentinel for worker in self.workers]
        ready = set(wait(handles, timeout)) if handles else set()
        for worker in list(self.workers):
            if worker.connection in ready or worker.process.sentinel in ready:
                self._drain(worker)
            if not worker.process.is_alive():
                self._drain(worker)  # a result sent just before dying still counts
                self._on_death(worker)
        self._check_deadlines()

    def _drain(self, worker: Worker) -> None:
        while True:
            try:
                if not worker.connection.poll():
                    return
                message = worker.connection.recv()
            except (EOFError, OSError):
                return
            task = worker.task
            if task is None or message[1] != task.index:
                continue  # stale: a trial already settled
            if message[0] == "started":
                task.started_at, task.started_iso = time.perf_counter(), now()
                self._emit(RunEvent("started", task.trial, worker.pid, task.attempts, worker_trials=worker.trials_done))
            elif message[0] == "result":
                worker.task = None
                self._finish(task, message[2], worker)
                worker.trials_done += 1

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self, task: Task, result: TrialResult, worker: Worker | None) -> None:
        self.on_result(task.trial, result, task.attempts)
        self._emit(RunEvent(
            "finished", task.trial, worker.pid if worker else None, task.attempts,
            seconds=time.perf_counter() - task.dispatched_at, result=result,
            worker_trials=worker.trials_done if worker else 0,
        ))

    def _on_death(self, worker: Worker) -> None:
        worker.process.join()
        cause = describe_exit(worker.process.exitcode)
        task = worker.task
        self._remove(worker, already_dead=True)
        if task is None:
            return
        if task.attempts < MAX_ATTEMPTS:
            self._queues[worker.environment].appendleft(task)  # next free worker of this environment takes it
            self._emit(RunEvent("retry", task.trial, worker.pid, task.attempts, result=None))
            return
        result = TrialResult(
            status="failed",
            error=(
                f"{cause} while running this trial, on each of {task.attempts} attempts (a crash in native code, "
                "or the system's out-of-memory killer, are the usual causes; check memory use and the worker's stderr)"
            ),
            wall_seconds=time.perf_counter() - task.dispatched_at,
            started_at=task.started_iso,
            finished_at=now(),
        )
        self._finish(task, result, None)

    def _deadline(self, task: Task | None) -> float | None:
        if task is None or task.started_at is None:
            return None
        limit = task.trial.spec.training.max_seconds
        if limit is None:
            return None
        return task.started_at + limit + self._grace(limit)

    def _grace(self, limit: float) -> float:
        return self.grace_seconds if self.grace_seconds is not None else max(10.0, 0.5 * limit)

    def _check_deadlines(self) -> None:
        for worker in list(self.workers):
            task = worker.task
            deadline = self._deadline(task)
            if task is None or deadline is None or time.perf_counter() < deadline:
                continue
            worker.process.kill()
            self._remove(worker, already_dead=True)
            limit = task.trial.spec.training.max_seconds
            assert limit is not None and task.started_at is not None
            elapsed = time.perf_counter() - task.started_at
            result = TrialResult(
                status="timeout",
                error=(
                    f"killed after {elapsed:.1f} s of training: past training.max_seconds={limit} plus a "
                    f"{self._grace(limit):g} s grace (one epoch ran too long to stop at an epoch boundary). "
                    "Raise training.max_seconds, or shorten an epoch (fewer samples, larger batches)."
                ),
                wall_seconds=time.perf_counter() - task.dispatched_at,
                started_at=task.started_iso,
                finished_at=now(),
            )
            self._finish(task, result, None)

    # -- lifetime -----------------------------------------------------------------------------

    def _remove(self, worker: Worker, already_dead: bool = False) -> None:
        self.workers.remove(worker)
        if not already_dead:
            worker.stop()
        worker.reap()

    def close(self) -> None:
        """Stop every worker: idle ones exit cleanly, busy ones (an interrupted run) are killed."""
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.reap()

    def _emit(self, event: RunEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
