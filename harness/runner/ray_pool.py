"""Trials on a Ray cluster: reusable actors, one trial in flight each; the driver alone writes the store.

Imported only for `run_trials(..., executor="ray")` (it imports ray). An Executor (executor.py:
the scheduling loop and outcome rules) like pool.py's WorkerPool; here a worker is an actor:

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
- An actor whose harness code differs from the driver's (code_version.py: the files changed during
  the run, or a node has another checkout) refuses every trial; the executor stops dispatching and
  leaves the trial unrecorded, as locally.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Collection
from typing import Any

import ray

from harness.adapters.result import TrialResult
from harness.errors import HarnessError
from harness.exit_codes import EXIT_CLUSTER_LOST
from harness.runner.code_version import CodeVersion, code_mismatch
from harness.runner.devices import Environment, worker_variables
from harness.runner.executor import Executor, ExecutorSettings, begin_attempt
from harness.runner.hooks import VARIABLE as CRASH_HOOK_VARIABLE
from harness.runner.tasks import Task, TaskQueue
from harness.runner.worker import TrialExecutor
from harness.spec.types import TrialSpec

CAUSE_CHARACTERS = 600  # Ray's actor-death messages run long; the stored cause keeps their start
PLACEMENT_SECONDS = 20.0  # an actor not started by then may never be (its node lost); measured start: 3-6 s
HEAD_PROBES = 3  # connection attempts, HEAD_PROBE_SECONDS apart, before the head node counts as lost
HEAD_PROBE_SECONDS = 0.5


class ClusterLost(HarnessError):
    """The Ray cluster's head node stopped answering in the middle of a run. Ray itself would end the
    driver process about 60 s later without a word (its GCS reconnect timeout), so the run stops first."""

    exit_code = EXIT_CLUSTER_LOST


def head_address() -> tuple[str, int] | None:
    """Where this driver's cluster keeps its head (the GCS server), None when Ray does not say (client mode)."""
    try:
        host, _, port = str(ray.get_runtime_context().gcs_address).rpartition(":")
        return (host, int(port)) if host else None
    except Exception:
        return None


def head_answers(address: tuple[str, int]) -> bool:
    """Whether the head node accepts a connection, asked HEAD_PROBES times before saying no."""
    for _ in range(HEAD_PROBES):
        try:
            socket.create_connection(address, timeout=HEAD_PROBE_SECONDS).close()
            return True
        except OSError:
            time.sleep(HEAD_PROBE_SECONDS)
    return False


class TrialActor:
    """The body of a Ray actor: a TrialExecutor that lives as long as the actor (made remote in RayPool)."""

    def __init__(self, threads: int, code: CodeVersion | None = None) -> None:
        self.code_mismatch = code_mismatch(code)  # this actor's code against the driver's; None: the same
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver alone decides what stops
        except ValueError:  # not the actor process's main thread: Ray delivers no terminal signals there anyway
            pass
        self.executor = TrialExecutor(threads)

    def prepare(self, backend: str) -> dict[str, Any]:
        """Import and configure the backend's adapter now, so a trial's clock starts warm."""
        try:
            self.executor.adapter(backend)
        except Exception:
            pass
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(
        self, spec: TrialSpec | tuple[TrialSpec, ...], attempt: int, checkpoints: str | None = None
    ) -> dict[str, Any]:
        """Train one trial, or a stacked group (a tuple of specs, harness.runner.grouping) ->
        {'result': TrialResult fields (a list of them for a group), 'crashed': cause or None, 'code_changed': None};
        an actor running other code than the driver's runs nothing: {'code_changed': why}."""
        if self.code_mismatch is not None:
            return {"code_changed": self.code_mismatch}
        if isinstance(spec, tuple):
            results = self.executor.run_group(spec, attempt=attempt)
            answer: Any = [dataclasses.asdict(result) for result in results]
        else:
            answer = dataclasses.asdict(self.executor.run(spec, attempt=attempt, checkpoints=checkpoints))
        return {"result": answer, "crashed": self.executor.unusable, "code_changed": None}


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


class RayPool(Executor[Slot]):
    """Runs trials on up to `jobs` Ray actors, each holding num_cpus CPUs and num_gpus GPUs (the loop: executor.py).

    Args:
        settings: what every executor is given (jobs, threads, on_result, ...).
        num_cpus, num_gpus: resources each actor reserves (Ray schedules them on nodes with room).
    """

    def __init__(self, settings: ExecutorSettings, num_cpus: float = 1.0, num_gpus: float = 0.0) -> None:
        super().__init__(settings)
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._remote = ray.remote(TrialActor)
        self._head = head_address()
        self.cluster_lost = False  # then no Ray call is made any more: each would wait for the lost head

    def _start(self, environment: Environment, task: Task | None) -> Slot:
        assert task is not None, "Ray actors are started for a trial (the Ray path does not prestart)"
        variables = worker_variables(environment, self.threads)
        if os.environ.get(CRASH_HOOK_VARIABLE):
            variables[CRASH_HOOK_VARIABLE] = os.environ[CRASH_HOOK_VARIABLE]
        actor = self._remote.options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_restarts=0,
            max_concurrency=1,
            runtime_env={"env_vars": variables},
        ).remote(self.threads, self.code)
        # ray's ActorProxy types prepare as the plain method; Ray adds .remote at runtime
        return Slot(actor, environment, actor.prepare.remote(task.trial.spec.backend))  # type: ignore[attr-defined]

    def _schedule(self, queue: TaskQueue) -> None:
        if self.code_changed is None:
            self._move_to_idle_actors()
        super()._schedule(queue)

    def _move_to_idle_actors(self) -> None:
        """A trial that has waited PLACEMENT_SECONDS for a new actor to start goes to an idle warm actor of
        its environment instead, and the new actor is dropped. Ray may never place the new one: after a node
        is lost the cluster's CPUs can all be held by this run's idle actors (seen: a worker node killed, its
        trial retried on an actor that stayed pending, the run waiting forever with 7 of 8 trials recorded)."""
        waited_since = time.perf_counter() - PLACEMENT_SECONDS
        for idle in [slot for slot in self.workers if slot.task is None]:
            starting = next(
                (
                    slot
                    for slot in self.workers
                    if slot.task is not None
                    and slot.ready is not None
                    and slot.task.dispatched_at < waited_since
                    and slot.environment == idle.environment
                ),
                None,
            )
            if starting is None:
                continue
            task = starting.task
            assert task is not None
            starting.task = starting.call = None
            self._kill(starting)
            self._remove(starting, stop=False)
            task.attempts -= 1  # it never started there: the same attempt, on the idle actor
            self._dispatch(idle, task)

    def _send(self, slot: Slot, task: Task) -> None:
        begin_attempt(task)
        specs = tuple(trial.spec for trial in task.trials) if task.stacked else task.trial.spec
        slot.task, slot.call = task, slot.actor.run.remote(specs, task.attempts, self.checkpoints)

    def _dispatch(self, slot: Slot, task: Task) -> None:
        super()._dispatch(slot, task)
        if slot.ready is None:  # a warm actor: the trial's run() is next in its queue, so its clock starts now
            self._started(slot)

    def _handles(self) -> list[Any]:
        return [s.ready for s in self.workers if s.ready is not None] + [
            s.call for s in self.workers if s.call is not None
        ]

    def _wait_on(self, handles: list[Any], timeout: float) -> Collection[Any]:
        if self._head is not None and not head_answers(self._head):
            self.cluster_lost = True
            host, port = self._head
            raise ClusterLost(
                f"--executor ray: the Ray cluster's head node at {host}:{port} stopped answering in the middle of the "
                "run (killed, or its machine lost). The trials that finished are saved in the store; those in flight "
                "are not recorded. Fix: start the cluster again (`ray start --head`), or use --executor local, and run "
                "the same command again to finish the rest."
            )
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:  # collect everything else that is done too
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        return set(ready)

    def _collect(self, ready: Collection[Any], queue: TaskQueue) -> None:
        for slot in list(self.workers):
            if slot.ready is not None and slot.ready in ready:
                self._on_ready(slot)
            if slot.call is not None and slot.call in ready:
                self._on_call(slot, queue)

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
            self._remove(slot)
            self._on_death(task, _cause(error), slot.pid, queue)
            return
        if answer["code_changed"] is not None:  # other code than the driver's: it ran nothing
            slot.task = task
            self._refused(slot, answer["code_changed"], queue)
            self._remove(slot)
            return
        if answer["crashed"] is not None:  # out of memory: the actor must not run anything else
            self._remove(slot)
            self._on_death(task, answer["crashed"], slot.pid, queue)
            return
        fields = answer["result"]
        self._finish(task, [_rebuild(one) for one in fields] if isinstance(fields, list) else _rebuild(fields), slot)
        slot.trials_done += 1

    def _kill(self, slot: Slot) -> None:
        """Every way an actor ends: an actor has no clean exit to ask for, and an idle one holds only
        an imported framework. With the head lost, nothing: the actors end with this driver, their owner."""
        if self.cluster_lost:
            return
        try:
            ray.kill(slot.actor, no_restart=True)
        except ray.exceptions.RayError:
            pass  # already gone
