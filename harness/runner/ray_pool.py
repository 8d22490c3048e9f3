"""Trials on a Ray cluster: reusable actors, one trial in flight each; the driver alone writes the store.

Imported only for `run_trials(..., executor="ray")` (it imports ray). Mirrors pool.py:

- Each actor is bound to one worker `Environment` (its Keras backend) and reused for many
  trials, so a framework is imported once per actor. Its environment variables (thread counts
  = num_cpus, KERAS_BACKEND, GPU memory growth, the test crash hook) travel with it in the
  actor's runtime_env, never from the driver's shell. Ray gives an actor with num_gpus its
  own GPU(s) through CUDA_VISIBLE_DEVICES.
- Results come back to the driver as plain dicts, which records them; nothing on the cluster
  touches the store, so no shared file system is needed. The cluster's nodes need harness and
  the frameworks installed (`pip install "harness[torch,keras]"`).
- An actor that dies (SIGKILL, segfault, its node lost, Ray's memory monitor) fails its
  trial's ObjectRef; the trial is retried once on a new actor, then recorded 'failed'.
  A trial past training.max_seconds + grace has its actor killed and is recorded 'timeout'.
- Actors are owned by the driver: if the driver dies, Ray ends them, and the next run
  resumes from the store by content hash, exactly as locally.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import ray

from harness.adapters.loop import TrialResult, now
from harness.errors import HarnessError
from harness.runner.devices import Environment, worker_variables
from harness.runner.hooks import VARIABLE as CRASH_HOOK_VARIABLE
from harness.runner.tasks import MAX_ATTEMPTS, RunEvent, Task, TaskQueue, deadline, death_result, timeout_result
from harness.runner.worker import TrialExecutor
from harness.spec.types import Trial, TrialSpec

POLL_SECONDS = 1.0  # longest wait between checks of timeouts and held trials
CAUSE_CHARACTERS = 600  # Ray's actor-death messages run long; the stored cause keeps their start


class TrialActor:
    """The body of a Ray actor: a TrialExecutor that lives as long as the actor (made remote in RayPool)."""

    def __init__(self, threads: int) -> None:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver alone decides what stops
        except ValueError:  # not the actor process's main thread: Ray delivers no terminal signals there anyway
            pass
        self.executor = TrialExecutor(threads)

    def prepare(self, backend: str) -> dict[str, Any]:
        """Import and configure the backend's adapter now, so a trial's clock starts warm."""
        try:
            self.executor.adapter(backend)
        except Exception:  # noqa: BLE001 - the trial itself reports the error, as a failed result
            pass
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(self, spec: TrialSpec, attempt: int) -> dict[str, Any]:
        """Train one trial -> {'result': TrialResult fields, 'crashed': cause or None}."""
        result = self.executor.run(spec, attempt=attempt)
        return {"result": dataclasses.asdict(result), "crashed": self.executor.unusable}


@dataclasses.dataclass
class Slot:
    """One actor and what it is doing."""

    actor: Any
    environment: Environment
    ready: Any  # ObjectRef of prepare(); None once it has answered
    pid: int | None = None
    task: Task | None = None
    call: Any = None  # ObjectRef of the run() in flight
    trials_done: int = 0


def connect(address: str | None) -> bool:
    """Connect this process to Ray (`address`: 'auto', 'host:port', 'ray://host:port', or None: the
    RAY_ADDRESS variable, else a new local instance). Returns whether this call connected (so the
    caller disconnects at the end).

    Raises:
        HarnessError: no cluster answers at `address`.
    """
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise HarnessError(
            f"--address: cannot connect to a Ray cluster at {address!r} ({str(error).splitlines()[0]}). "
            "Expected the address of a running cluster's head node (host:port, as `ray start --head` prints it), "
            "'auto' for the one on this machine, or no --address to start a local Ray instance. "
            "Fix: start the cluster with `ray start --head`, or correct --address."
        ) from None
    return True


def cluster_slots(num_cpus: float, num_gpus: float) -> int:
    """How many actors the cluster can hold at once with these resources each.

    Raises:
        HarnessError: not even one fits (Ray would keep the actor pending forever).
    """
    resources = ray.cluster_resources()
    for flag, name, wanted in (("--num-cpus", "CPU", num_cpus), ("--num-gpus", "GPU", num_gpus)):
        if wanted > resources.get(name, 0.0):
            raise HarnessError(
                f"{flag}: each trial reserves {wanted:g} {name}(s), but the Ray cluster has {resources.get(name, 0.0):g} "
                f"in all. Fix: lower {flag}, or add nodes with {name}s to the cluster."
            )
    slots = int(resources.get("CPU", 1) // num_cpus) if num_cpus > 0 else int(resources.get("CPU", 1))
    if num_gpus > 0:
        slots = min(slots, int(resources.get("GPU", 0) // num_gpus))
    return max(1, slots)


def _rebuild(fields: dict[str, Any]) -> TrialResult:
    fields = dict(fields)
    fields["metrics"] = [tuple(row) for row in fields["metrics"]]
    return TrialResult(**fields)


def _cause(error: BaseException) -> str:
    text = " ".join(str(error).split())
    kind = type(error).__name__
    detail = text[:CAUSE_CHARACTERS] + ("..." if len(text) > CAUSE_CHARACTERS else "")
    return f"Ray actor died ({kind}: {detail})"


class RayPool:
    """Runs trials on up to `jobs` Ray actors, each holding num_cpus CPUs and num_gpus GPUs.

    Args: as WorkerPool's (jobs, threads, on_result, on_event, grace_seconds), plus
        num_cpus, num_gpus: resources each actor reserves (Ray schedules them on nodes with room).
    """

    def __init__(
        self,
        jobs: int,
        threads: int,
        on_result: Callable[[Trial, TrialResult, int], None],
        on_event: Callable[[RunEvent], None] | None = None,
        grace_seconds: float | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
    ) -> None:
        self.jobs, self.threads = jobs, threads
        self.on_result, self.on_event = on_result, on_event
        self.grace_seconds = grace_seconds
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.slots: list[Slot] = []
        self._remote = ray.remote(TrialActor)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, queue: TaskQueue) -> None:
        """Run every task of the queue to a recorded result. KeyboardInterrupt propagates (call close())."""
        while queue.pending() or any(slot.task for slot in self.slots):
            self._schedule(queue)
            self._wait(queue)

    def _schedule(self, queue: TaskQueue) -> None:
        queue.release_held()
        for slot in self.slots:
            if slot.task is None:
                task = queue.take(slot.environment)
                if task is not None:
                    self._dispatch(slot, task)
        waiting = queue.waiting()
        if waiting:  # an idle actor of an environment with no work left frees its resources
            for slot in [s for s in self.slots if s.task is None and s.environment not in waiting]:
                self._remove(slot)
        while len(self.slots) < self.jobs:
            waiting = queue.waiting()
            if not waiting:
                break
            count = {env: sum(s.environment == env for s in self.slots) for env in waiting}
            environment = max(waiting, key=lambda env: waiting[env] / (1 + count[env]))
            task = queue.take(environment)
            if task is not None:
                self._dispatch(self._start(environment, task.trial.spec.backend), task)

    def _start(self, environment: Environment, backend: str) -> Slot:
        variables = worker_variables(environment, self.threads)
        if os.environ.get(CRASH_HOOK_VARIABLE):
            variables[CRASH_HOOK_VARIABLE] = os.environ[CRASH_HOOK_VARIABLE]
        actor = self._remote.options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_concurrency=1,
            runtime_env={"env_vars": variables},
        ).remote(self.threads)
        slot = Slot(actor, environment, actor.prepare.remote(backend))
        self.slots.append(slot)
        return slot

    def _dispatch(self, slot: Slot, task: Task) -> None:
        task.attempts += 1
        task.dispatched_at, task.started_at = time.perf_counter(), None
        slot.task, slot.call = task, slot.actor.run.remote(task.trial.spec, task.attempts)
        self._emit(RunEvent("dispatched", task.trial, slot.pid, task.attempts, worker_trials=slot.trials_done))
        if slot.ready is None:
            self._started(slot)

    def _started(self, slot: Slot) -> None:
        """The actor is warm: the trial's clock starts (its run() is next in the actor's queue)."""
        task = slot.task
        if task is not None and task.started_at is None:
            task.started_at, task.started_iso = time.perf_counter(), now()
            self._emit(RunEvent("started", task.trial, slot.pid, task.attempts, worker_trials=slot.trials_done))

    def _wait(self, queue: TaskQueue) -> None:
        timeout = POLL_SECONDS
        for slot in self.slots:
            limit = deadline(slot.task, self.grace_seconds)
            if limit is not None:
                timeout = min(timeout, max(0.0, limit - time.perf_counter()))
        references = [s.ready for s in self.slots if s.ready is not None] + [s.call for s in self.slots if s.call is not None]
        if not references:
            time.sleep(timeout)
            self._check_deadlines()
            return
        ready, _ = ray.wait(references, num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is done too
            ready, _ = ray.wait(references, num_returns=len(references), timeout=0)
        done = set(ready)
        for slot in list(self.slots):
            if slot.ready is not None and slot.ready in done:
                self._on_ready(slot)
            if slot.call is not None and slot.call in done:
                self._on_call(slot, queue)
        self._check_deadlines()

    def _on_ready(self, slot: Slot) -> None:
        try:
            slot.pid = ray.get(slot.ready)["pid"]
        except ray.exceptions.RayError:
            pass  # the actor died while starting: its run() call reports it
        slot.ready = None
        self._started(slot)

    def _on_call(self, slot: Slot, queue: TaskQueue) -> None:
        task, call = slot.task, slot.call
        assert task is not None
        slot.task = slot.call = None
        try:
            answer = ray.get(call)
        except ray.exceptions.RayError as error:  # the actor died (or could not start): retry, then fail
            self._remove(slot, kill=True)
            self._on_death(task, _cause(error), slot.pid, queue)
            return
        if answer["crashed"] is not None:  # out of memory: the actor must not run anything else
            self._remove(slot, kill=True)
            self._on_death(task, answer["crashed"], slot.pid, queue)
            return
        self._finish(task, _rebuild(answer["result"]), slot)
        slot.trials_done += 1

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self, task: Task, result: TrialResult, slot: Slot | None) -> None:
        self.on_result(task.trial, result, task.attempts)
        self._emit(RunEvent(
            "finished", task.trial, slot.pid if slot else None, task.attempts,
            seconds=time.perf_counter() - task.dispatched_at, result=result,
            worker_trials=slot.trials_done if slot else 0,
        ))

    def _on_death(self, task: Task, cause: str, pid: int | None, queue: TaskQueue) -> None:
        if task.attempts < MAX_ATTEMPTS:
            queue.put_back(task)
            self._emit(RunEvent("retry", task.trial, pid, task.attempts))
            return
        self._finish(task, death_result(task, cause), None)

    def _check_deadlines(self) -> None:
        for slot in list(self.slots):
            task = slot.task
            limit = deadline(task, self.grace_seconds)
            if task is None or limit is None or time.perf_counter() < limit:
                continue
            self._remove(slot, kill=True)
            self._finish(task, timeout_result(task, self.grace_seconds), None)

    # -- lifetime -----------------------------------------------------------------------------

    def _remove(self, slot: Slot, kill: bool = True) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
        if kill:
            try:
                ray.kill(slot.actor, no_restart=True)
            except ray.exceptions.RayError:
                pass  # already gone

    def close(self) -> None:
        """Kill every actor (idle ones hold only an imported framework; busy ones an interrupted trial)."""
        slots, self.slots = self.slots, []
        for slot in slots:
            self._remove(slot)

    def _emit(self, event: RunEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)
