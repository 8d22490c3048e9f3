"""A small pool of reusable local worker processes that survives its workers dying.

Why not ProcessPoolExecutor: when one of its workers dies, the executor breaks as a whole
and cannot say which task was in flight. Here each worker is one `spawn` Process with its
own Pipe and exactly one trial in flight, so a death (SIGKILL, segfault, out-of-memory
kill) names its trial: that trial is retried once on another worker, then recorded
'failed' with the cause, and every other trial goes on.

Environments (devices.py): Keras reads KERAS_BACKEND once per process, and CUDA libraries
read CUDA_VISIBLE_DEVICES once, so each worker is bound to one `Environment` and runs only
trials of that environment. Thread counts, KERAS_BACKEND and the GPU a worker may see are
placed in the child's environment before it starts, hence before any framework import.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import wait
from typing import Any

from harness.adapters.loop import TrialResult, now
from harness.runner.devices import DEFAULT_ENVIRONMENT, Environment, pick_gpu, worker_variables
from harness.runner.tasks import MAX_ATTEMPTS, RunEvent, Task, TaskQueue, deadline, death_result, timeout_result
from harness.runner.worker import worker_main
from harness.spec.types import Trial

__all__ = ["DEFAULT_ENVIRONMENT", "MAX_ATTEMPTS", "RunEvent", "Task", "Worker", "WorkerPool", "describe_exit"]

STOP_SECONDS = 10.0  # how long a stopping worker may take to exit before it is killed
POLL_SECONDS = 1.0  # longest wait between checks of timeouts, worker health and held trials


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


class Worker:
    """One reusable worker process bound to one environment, with at most one trial in flight.

    Args:
        context: a multiprocessing context (spawn).
        environment: what the process is started with.
        threads: threads it is pinned to.
        visible_devices: the GPU id a one-GPU worker sees (CUDA_VISIBLE_DEVICES), else None.
    """

    def __init__(self, context: Any, environment: Environment, threads: int, visible_devices: str | None = None) -> None:
        self.environment = environment
        self.visible_devices = visible_devices
        self.task: Task | None = None
        self.trials_done = 0
        self.crash_cause: str | None = None  # what the worker said before exiting on its own (out of memory)
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main, args=(child_end, threads), name=f"harness-worker-{environment}", daemon=True,
        )
        with _environment(worker_variables(environment, threads, visible_devices)), _sigint_ignored():
            self.process.start()
        child_end.close()  # so the driver's recv sees EOF when the worker dies

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def dispatch(self, task: Task) -> None:
        task.attempts += 1
        task.dispatched_at, task.started_at = time.perf_counter(), None
        self.task = task
        self.connection.send((task.index, task.trial.spec, task.attempts))

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
        gpu_ids: the GPUs one-GPU workers are spread over (devices.visible_gpu_ids()).
    """

    def __init__(
        self,
        jobs: int,
        threads: int,
        on_result: Callable[[Trial, TrialResult, int], None],
        on_event: Callable[[RunEvent], None] | None = None,
        grace_seconds: float | None = None,
        gpu_ids: Sequence[str] = (),
    ) -> None:
        self.jobs, self.threads = jobs, threads
        self.on_result, self.on_event = on_result, on_event
        self.grace_seconds = grace_seconds
        self.gpu_ids = tuple(gpu_ids)
        self.workers: list[Worker] = []
        self._context = multiprocessing.get_context("spawn")

    # -- the loop -----------------------------------------------------------------------------

    def run(self, queue: TaskQueue) -> None:
        """Run every task of the queue to a recorded result. KeyboardInterrupt propagates (call close())."""
        while queue.pending() or any(worker.task for worker in self.workers):
            self._schedule(queue)
            self._wait(queue)

    def _schedule(self, queue: TaskQueue) -> None:
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
            count = {env: sum(w.environment == env for w in self.workers) for env in waiting}
            environment = max(waiting, key=lambda env: waiting[env] / (1 + count[env]))
            task = queue.take(environment)  # claimed before a process is started for it
            if task is not None:
                self._dispatch(self._start(environment), task)

    def _start(self, environment: Environment) -> Worker:
        visible = None
        if environment.gpus == "one":
            visible = pick_gpu(self.gpu_ids, [w.visible_devices for w in self.workers if w.visible_devices is not None])
        worker = Worker(self._context, environment, self.threads, visible)
        self.workers.append(worker)
        return worker

    def _dispatch(self, worker: Worker, task: Task) -> None:
        try:
            worker.dispatch(task)
        except OSError:  # died before it could take the trial: the health check requeues it
            pass
        self._emit(RunEvent("dispatched", task.trial, worker.pid, task.attempts, worker_trials=worker.trials_done))

    def _wait(self, queue: TaskQueue) -> None:
        timeout = POLL_SECONDS
        for worker in self.workers:
            limit = deadline(worker.task, self.grace_seconds)
            if limit is not None:
                timeout = min(timeout, max(0.0, limit - time.perf_counter()))
        handles = [worker.connection for worker in self.workers] + [worker.process.sentinel for worker in self.workers]
        if handles:
            ready = set(wait(handles, timeout))
        else:  # nothing running: only trials held by another run are left
            time.sleep(timeout)
            ready = set()
        for worker in list(self.workers):
            if worker.connection in ready or worker.process.sentinel in ready:
                self._drain(worker)
            if not worker.process.is_alive():
                self._drain(worker)  # a result sent just before dying still counts
                self._on_death(worker, queue)
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
            elif message[0] == "crashed":  # the worker exits next; its death is handled with this cause
                worker.crash_cause = message[2]

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self, task: Task, result: TrialResult, worker: Worker | None) -> None:
        self.on_result(task.trial, result, task.attempts)
        self._emit(RunEvent(
            "finished", task.trial, worker.pid if worker else None, task.attempts,
            seconds=time.perf_counter() - task.dispatched_at, result=result,
            worker_trials=worker.trials_done if worker else 0,
        ))

    def _on_death(self, worker: Worker, queue: TaskQueue) -> None:
        worker.process.join()
        cause = worker.crash_cause or describe_exit(worker.process.exitcode)
        task = worker.task
        self._remove(worker, already_dead=True)
        if task is None:
            return
        if task.attempts < MAX_ATTEMPTS:
            queue.put_back(task)  # the next free worker of this environment takes it
            self._emit(RunEvent("retry", task.trial, worker.pid, task.attempts))
            return
        self._finish(task, death_result(task, cause), None)

    def _check_deadlines(self) -> None:
        for worker in list(self.workers):
            task = worker.task
            limit = deadline(task, self.grace_seconds)
            if task is None or limit is None or time.perf_counter() < limit:
                continue
            worker.process.kill()
            self._remove(worker, already_dead=True)
            self._finish(task, timeout_result(task, self.grace_seconds), None)

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
