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
import signal
from collections.abc import Collection, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.runner import early, spares
from harness.runner.code_version import CodeVersion
from harness.runner.devices import DEFAULT_ENVIRONMENT, Environment, pick_gpu
from harness.runner.environment import start_worker
from harness.runner.executor import Executor, ExecutorSettings, begin_attempt
from harness.runner.spares import AdoptedProcess, SpareKind
from harness.runner.tasks import MAX_ATTEMPTS, RunEvent, Task, TaskQueue

__all__ = ["DEFAULT_ENVIRONMENT", "MAX_ATTEMPTS", "RunEvent", "Task", "Worker", "WorkerPool", "describe_exit"]

STOP_SECONDS = 10.0  # how long a stopping worker may take to exit before it is killed


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
        code: the driver's code version, which the worker checks its own against before running anything.
        preload: backends whose adapters (hence frameworks) the worker imports as soon as it starts, before
            its first trial arrives.
        started: a worker already started, used instead of starting one: a warm one the worker server handed
            over (harness.runner.spares.take), or one the command started at its first line
            (harness.runner.early.take).
    """

    def __init__(
        self,
        context: Any,
        environment: Environment,
        threads: int,
        visible_devices: str | None = None,
        code: CodeVersion | None = None,
        preload: Sequence[str] = (),
        started: tuple[Connection, Any] | None = None,
    ) -> None:
        self.environment = environment
        self.visible_devices = visible_devices
        self.task: Task | None = None
        self.trials_done = 0
        self.crash_cause: str | None = None  # what the worker said before exiting on its own (out of memory)
        self.process: Any
        self.connection, self.process = started or start_worker(
            context, environment, threads, visible_devices, code, preload
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def adopted(self) -> bool:
        """Whether the worker server started it (harness.runner.spares), not this process."""
        return isinstance(self.process, AdoptedProcess)

    def exit_cause(self) -> str:
        """Why the dead worker ended, as far as this process can tell."""
        if self.crash_cause:
            return self.crash_cause
        if self.adopted:  # its exit status is its parent's, the server's, to read
            return "worker (a spare from the worker server) killed" if self.process.killed else "worker ended"
        return describe_exit(self.process.exitcode)

    def dispatch(self, task: Task, checkpoints: str | None = None) -> None:
        """Send the task as its next attempt (raises OSError when the process is gone)."""
        begin_attempt(task)
        self.task = task
        specs = tuple(trial.spec for trial in task.trials) if task.stacked else task.trial.spec
        self.connection.send((task.index, specs, task.attempts, checkpoints))

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
        if self.adopted:
            self.process.close()  # its pidfd


class WorkerPool(Executor[Worker]):
    """Runs trials on up to `jobs` reusable spawn-context worker processes (the loop: executor.py).

    Args:
        settings: what every executor is given (jobs, threads, on_result, ...).
        gpu_ids: the GPUs one-GPU workers are spread over (devices.visible_gpu_ids()).

    `backends` names, per environment, the backends a new worker of it imports as soon as it starts (the
    driver fills it in from the trials it runs), so a worker started ahead of its run (`prestart`) is warm
    when its first trial arrives.
    """

    def __init__(self, settings: ExecutorSettings, gpu_ids: Sequence[str] = ()) -> None:
        super().__init__(settings)
        self.gpu_ids = tuple(gpu_ids)
        self.backends: dict[Environment, set[str]] = {}
        self._context = multiprocessing.get_context("spawn")
        self.adopted_workers = 0  # workers the worker server handed over (harness.runner.spares)

    def _start(self, environment: Environment, task: Task | None) -> Worker:
        visible = None
        if environment.gpus == "one":
            visible = pick_gpu(self.gpu_ids, [w.visible_devices for w in self.workers if w.visible_devices is not None])
        preload = sorted(self.backends.get(environment, ()))
        kind = SpareKind(environment.keras_backend, environment.gpus, self.threads, visible, tuple(preload))
        # started at the command's first line, if one fits; else a warm worker from the worker server, if one
        # runs and fits; else a new one
        started = early.take(environment, self.threads, visible, tuple(preload))
        if started is None:
            started = spares.take(kind, self.code)
            if started is not None:
                self.adopted_workers += 1
        return Worker(self._context, environment, self.threads, visible, self.code, preload, started)

    def _send(self, worker: Worker, task: Task) -> None:
        try:
            worker.dispatch(task, self.checkpoints)
        except OSError:  # died before it could take the trial: the health check requeues it
            pass

    def _handles(self) -> list[Any]:
        return [worker.connection for worker in self.workers] + [worker.process.sentinel for worker in self.workers]

    def _wait_on(self, handles: list[Any], timeout: float) -> Collection[Any]:
        return set(wait(handles, timeout))

    def _collect(self, ready: Collection[Any], queue: TaskQueue) -> None:
        for worker in list(self.workers):
            if worker.connection in ready or worker.process.sentinel in ready:
                self._drain(worker, queue)
            if not worker.process.is_alive():
                self._drain(worker, queue)  # a result sent just before dying still counts
                self._on_exit(worker, queue)

    def _drain(self, worker: Worker, queue: TaskQueue) -> None:
        while True:
            try:
                if not worker.connection.poll():
                    return
                message = worker.connection.recv()
            except (EOFError, OSError):
                return
            if message[0] == "code_changed":  # it exits next, having run nothing
                self._refused(worker, message[1], queue)
                continue
            task = worker.task
            if task is None or message[1] != task.index:
                continue  # stale: a trial already settled
            if message[0] == "started":
                self._started(worker)
            elif message[0] == "result":
                worker.task = None
                self._finish(task, message[2], worker)
                worker.trials_done += 1
            elif message[0] == "crashed":  # the worker exits next; its death is handled with this cause
                worker.crash_cause = message[2]

    def _on_exit(self, worker: Worker, queue: TaskQueue) -> None:
        worker.process.join()
        cause = worker.exit_cause()
        task = worker.task
        self._remove(worker, stop=False)
        if task is not None:
            self._on_death(task, cause, worker.pid, queue)

    def _kill(self, worker: Worker) -> None:
        worker.process.kill()

    def _stop(self, worker: Worker) -> None:
        if worker.task is None and not worker.trials_done:  # started ahead (prestart), perhaps still importing
            worker.process.kill()
        else:
            worker.stop()

    def _reap(self, worker: Worker) -> None:
        worker.reap()
