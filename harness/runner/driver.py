"""The driver: `run_trials` and what it needs before any worker starts (see harness.runner)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.adapters.checkpoints import remove_checkpoint
from harness.errors import HarnessError
from harness.paths import CHECKPOINTS_FOLDER
from harness.runner import devices, early
from harness.runner.code_version import PROCESS_CODE_VERSION
from harness.runner.devices import Environment, environment_for, keras_environment, needs_gpu_query
from harness.runner.environment import worker_count, worker_threads
from harness.runner.executor import ExecutorSettings
from harness.runner.grouping import group_tasks
from harness.runner.leases import LeaseKeeper
from harness.runner.pool import WorkerPool
from harness.runner.progress import RunProgress, progress_enabled
from harness.runner.schedule import longest_first
from harness.runner.tasks import RunEvent, Task, TaskQueue
from harness.spec.types import Trial
from harness.store import Store

if TYPE_CHECKING:
    from harness.adapters.result import TrialResult

__all__ = [
    "EXECUTORS",
    "RunSummary",
    "TrialRunner",
    "check_executor",
    "run_trials",
    "worker_threads",
]  # the package re-exports more

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install "harness[ray]"'
PROBE_SECONDS = 5.0  # how long a Ray head node may take to accept a connection


@dataclass
class RunSummary:
    """What one `run_trials` call did. Counts are of unique trials (by content hash)."""

    total: int  # unique trials asked for
    skipped: int  # already finished in the store when the run started
    ok: int
    diverged: int
    failed: int
    timeout: int
    interrupted: bool  # Ctrl-C: finished trials are stored; run again to resume
    wall_seconds: float
    elsewhere: int = 0  # recorded by another run on the same store while this one waited for them
    # why the run stopped early: a worker imported other harness code than this driver's (the files
    # changed during the run); the trials not run are unrecorded, and running again finishes them
    code_changed: str | None = None
    # which trials trained together as stacked models and why the others ran alone (grouping.Grouping.describe);
    # None when nothing was grouped (vectorize 'off', or no trial to run)
    vectorized: str | None = None
    warm_workers: int = 0  # local workers the worker server handed over (harness.runner.spares), not started here

    @classmethod
    def combined(cls, summaries: Sequence[RunSummary]) -> RunSummary:
        """Several calls' summaries as one (a search runs one call per round, then the final trials)."""
        counts = ("total", "skipped", "ok", "diverged", "failed", "timeout", "elsewhere")
        return cls(
            **{name: sum(getattr(one, name) for one in summaries) for name in counts},
            interrupted=any(one.interrupted for one in summaries),
            wall_seconds=sum(one.wall_seconds for one in summaries),
            code_changed=next((one.code_changed for one in summaries if one.code_changed), None),
            vectorized="\n".join(one.vectorized for one in summaries if one.vectorized) or None,
            warm_workers=sum(one.warm_workers for one in summaries),
        )


def check_executor(
    executor: str,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    address: str | None = None,
    threads: int | None = None,
) -> None:
    """Validate the executor and its options before anything is opened or written.

    Raises:
        HarnessError: unknown executor; Ray options given to the local executor, or --threads to Ray;
            threads or resources below their least; ray not installed (names the extra); nothing listening at
            `address`.
    """
    if executor not in EXECUTORS:
        raise HarnessError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise HarnessError(
            f"--threads: expected a whole number of threads per worker >= 1, got {threads!r}. Fix: pass --threads 1 "
            "or more, or leave it out (cores/jobs)."
        )
    if executor == "local":
        if num_cpus is not None or num_gpus is not None or address is not None:
            raise HarnessError(
                "--address/--num-cpus/--num-gpus: these choose a Ray cluster and the resources each trial reserves "
                "on it, so they apply to --executor ray only. Locally, use --jobs (workers share the cores) and "
                "--device (one GPU per worker)."
            )
        return
    if threads is not None:
        raise HarnessError(
            "--threads: pins the threads of local workers, so it applies to --executor local only. On Ray each "
            "trial's threads follow the CPUs it reserves: use --num-cpus."
        )
    for name, unit, value in (("--num-cpus", "CPUs", num_cpus), ("--num-gpus", "GPUs", num_gpus)):
        if value is not None and not value >= 0:
            raise HarnessError(
                f"{name}: expected the {unit} each trial reserves, a number >= 0 (0.5 shares one), got {value!r}."
            )
    if num_cpus is not None and num_gpus is not None and num_cpus == 0 and num_gpus == 0:
        raise HarnessError("--num-cpus/--num-gpus: a trial must reserve some resource; got 0 CPUs and 0 GPUs.")
    try:
        import ray  # noqa: F401 - only to learn whether it is installed
    except ImportError as error:
        raise HarnessError(
            f"--executor ray: the ray package is not installed ({error}). Install it with: {RAY_INSTALL}"
        ) from None
    check_address(address)


def check_address(address: str | None) -> None:
    """Fail fast on a Ray address nobody listens at (ray.init would retry for minutes first).

    Raises:
        HarnessError: not 'auto', host:port or ray://host:port; or no connection to it within PROBE_SECONDS.
    """
    if address is None or address == "auto":  # RAY_ADDRESS / a new local instance; the cluster on this machine
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise HarnessError(
            f"--address: expected 'auto', host:port or ray://host:port (as `ray start --head` prints it), got {address!r}."
        )
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as error:
        raise HarnessError(
            f"--address: nothing answers at {address!r} ({error.strerror or error}). Expected the address of a running "
            "Ray cluster's head node. Fix: start it with `ray start --head` (it prints the address), or correct --address."
        ) from None


def run_trials(
    trials: Sequence[Trial],
    store: Store,
    *,
    jobs: int | None = None,
    rerun: bool = False,
    quiet: bool = False,
    on_event: Callable[[RunEvent], None] | None = None,
    grace_seconds: float | None = None,
    executor: str = "local",
    address: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    vectorize: str = "auto",
    threads: int | None = None,
) -> RunSummary:
    """Run every trial not yet finished in the store, recording each as it ends.

    One call with its own workers, started and stopped in it; a command that runs trials in several
    calls (search rounds, then the final trials) keeps one warm set of workers across them with
    `TrialRunner`, whose `run` this is.

    Args:
        trials: the trials (a suite's `trials`); duplicates by hash run once.
        store: where results go; also says which trials are done and how long earlier ones took.
        jobs: trials at once: local worker processes (None: the number of cores), or Ray actors
            (None: as many as the cluster's CPUs and GPUs hold).
        rerun: run trials again even when the store has their final result.
        quiet: no progress display (it is also off when stdout is not a terminal).
        on_event: optional observer of RunEvents (dispatched, started, retry, finished, elsewhere).
        grace_seconds: how far past training.max_seconds a trial may run before its worker is
            killed (None: max(10 s, half of max_seconds)).
        executor: 'local' (worker processes on this machine) or 'ray' (actors on a Ray cluster).
        address: Ray only: the cluster ('auto', 'host:port', 'ray://host:port'); None: RAY_ADDRESS,
            else a new local Ray instance.
        num_cpus, num_gpus: Ray only: resources each actor (one trial at a time) reserves
            (default 1 CPU, 0 GPUs); its threads are pinned to max(1, num_cpus).
        vectorize: 'auto' (the default): trials that differ only in seed and scalar hyperparameters train as one
            stacked model, each recorded as its own trial (harness.runner.grouping), on either executor;
            'off': every trial alone.
        threads: local only: intra-op threads each worker is pinned to (None: the cores shared out,
            `worker_threads`). A trial's `train_seconds` depends on it; pin it to compare runs made with
            different `jobs`.

    Returns:
        A RunSummary; `interrupted` is True after Ctrl-C, `code_changed` says why the run stopped
        dispatching when a worker found other harness code than the driver's (the caller says how to
        resume in both cases).

    Raises:
        HarnessError: jobs < 1; bad executor options (see check_executor); no Ray cluster at `address`.
    """
    with TrialRunner(
        jobs=jobs,
        rerun=rerun,
        quiet=quiet,
        on_event=on_event,
        grace_seconds=grace_seconds,
        executor=executor,
        address=address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        vectorize=vectorize,
        threads=threads,
    ) as runner:
        return runner.run(trials, store)


class TrialRunner:
    """Local workers kept warm across the `run_trials` calls of one command, stopped when it ends.

        with TrialRunner(jobs=2) as runner:
            runner.start(suite.trials)          # optional: workers import their framework meanwhile
            for trials in rounds:
                summary = runner.run(trials, store)

    A search runs one call per round (and per phase), then the final trials: with a pool per call,
    each paid the workers' start (a process spawn and a framework import, seconds per worker) again.
    Here an idle worker waits for the next call instead. Each `run` is otherwise what `run_trials`
    always was: its own RunSummary, its own lease owner (leases.py: a call's leases are released when
    it returns, so another run on the store may take whatever this one has not claimed), its own
    vectorize grouping, progress display and recording by the driver. What ends a call ends the pool:
    after Ctrl-C (`interrupted`) its busy workers are killed and the next call starts fresh ones; once a
    worker refused because the code changed, every later call dispatches nothing and returns the same
    `code_changed`. A worker killed for a timeout, or dead, is replaced as in one call. The Ray executor
    keeps its per-call actors (each call connects to the cluster and shuts its actors down).

    Args: as `run_trials`, less the trials and the store, which each `run` is given.
    """

    def __init__(
        self,
        *,
        jobs: int | None = None,
        rerun: bool = False,
        quiet: bool = False,
        on_event: Callable[[RunEvent], None] | None = None,
        grace_seconds: float | None = None,
        executor: str = "local",
        address: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        vectorize: str = "auto",
        threads: int | None = None,
    ) -> None:
        check_executor(executor, num_cpus, num_gpus, address, threads)
        if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
            raise HarnessError(
                f"jobs: expected a whole number of worker processes >= 1, got {jobs!r}. Fix: pass --jobs 1 or more."
            )
        self.jobs, self.rerun, self.quiet, self.on_event = jobs, rerun, quiet, on_event
        self.grace_seconds, self.executor, self.address = grace_seconds, executor, address
        self.num_cpus, self.num_gpus, self.vectorize = num_cpus, num_gpus, vectorize
        self.threads = threads
        self._pool: WorkerPool | None = None
        self._gpu_ids: list[str] | None = None  # asked once, the first time a trial needs them
        self._next_index = 0  # task indices stay unique across calls (a worker's messages name them)
        self._adopted = 0  # the pool's adopted workers already counted in an earlier call's summary

    @property
    def local_jobs(self) -> int:
        """Local workers at once: `jobs`, else one per core."""
        return worker_count(self.jobs)

    @property
    def local_threads(self) -> int:
        """Threads each local worker is pinned to: `threads`, else the cores shared out among the workers."""
        return self.threads or worker_threads(self.local_jobs)

    @property
    def workers(self) -> tuple[int | None, ...]:
        """The process ids of the local workers alive now (started, idle or busy)."""
        return tuple(worker.pid for worker in self._pool.workers) if self._pool is not None else ()

    def start(self, trials: Sequence[Trial]) -> int:
        """Start workers now for the environments of `trials` (up to jobs, one per trial), each importing its
        backends while the caller still prepares (loads data, opens the store); `run` then finds them warm.
        Nothing is leased or run. The Ray executor starts nothing here. Workers `harness run` started at its
        first line (harness.runner.early) are taken where they fit, and the others killed.

        Returns:
            how many of them start cold (importing now), not handed over warm by the worker server: while
            they import, the caller's own imports cost the run nothing.
        """
        try:
            if self.executor != "local" or not trials:
                return 0
            pool = self._local_pool(trials)
            waiting: dict[Environment, int] = {}
            for trial in {trial.hash: trial for trial in trials}.values():
                environment = environment_for(trial, self._gpu_ids or [])
                waiting[environment] = waiting.get(environment, 0) + 1
            started = len(pool.workers)
            pool.prestart(waiting)
            return sum(not worker.adopted for worker in pool.workers[started:])
        finally:
            early.discard()  # started on a guess that these trials did not need

    def _local_gpus(self, trials: Sequence[Trial]) -> int | None:
        """How many GPUs the local workers share (asked once, only when a trial may use one); None on Ray."""
        if self.executor != "local":
            return None
        if self._gpu_ids is None and needs_gpu_query(trials):
            self._gpu_ids = devices.visible_gpu_ids()
        return len(self._gpu_ids or [])

    def _local_pool(self, trials: Sequence[Trial]) -> WorkerPool:
        """The warm pool (made on first use), told the GPUs and the backends these trials need."""
        self._local_gpus(trials)
        jobs = self.local_jobs
        if self._pool is None:
            settings = ExecutorSettings(
                jobs, self.local_threads, _unset_result, None, self.grace_seconds, PROCESS_CODE_VERSION
            )
            self._pool = WorkerPool(settings, self._gpu_ids or [])
        self._pool.gpu_ids = tuple(self._gpu_ids or [])
        for trial in trials:
            environment = environment_for(trial, self._gpu_ids or [])
            self._pool.backends.setdefault(environment, set()).add(trial.spec.backend)
        return self._pool

    def run(self, trials: Sequence[Trial], store: Store) -> RunSummary:
        """Run every trial not yet finished in the store on this runner's workers (see `run_trials`)."""
        clock = time.perf_counter()
        unique: dict[str, Trial] = {}
        for trial in trials:
            unique.setdefault(trial.hash, trial)  # the first of duplicates wins
        done = set() if self.rerun else store.finished(unique)
        todo = longest_first([trial for trial in unique.values() if trial.hash not in done], store)
        summary = RunSummary(
            total=len(unique),
            skipped=len(unique) - len(todo),
            ok=0,
            diverged=0,
            failed=0,
            timeout=0,
            interrupted=False,
            wall_seconds=0.0,
        )
        if todo:
            self._run(todo, store, unique, summary)
        summary.wall_seconds = time.perf_counter() - clock
        return summary

    def _run(self, todo: list[Trial], store: Store, unique: dict[str, Trial], summary: RunSummary) -> None:
        with RunProgress(len(todo), progress_enabled(self.quiet)) as progress:
            keeper = LeaseKeeper(store, seen_attempts=store.attempts(unique), rerun=self.rerun)

            # In-trial checkpoints beside the database (absolute: Ray actors on this machine resolve it too)
            checkpoints = str((store.directory / CHECKPOINTS_FOLDER).resolve())

            def record(trial: Trial, result: TrialResult, attempts: int) -> None:
                store.record(trial, result, attempts=attempts)
                remove_checkpoint(checkpoints, trial.hash)  # recorded: whatever ended it, nothing is left to resume
                setattr(summary, result.status, getattr(summary, result.status) + 1)
                progress.finished(result.status)

            def elsewhere(task: Task) -> None:
                summary.elsewhere += 1
                progress.finished("elsewhere")
                observe(RunEvent("elsewhere", task.trial, None, task.attempts))

            def observe(event: RunEvent) -> None:
                if event.kind == "dispatched":
                    progress.running(event.trial)
                if self.on_event is not None:
                    self.on_event(event)

            tasks = [Task(self._next_index + index, trial) for index, trial in enumerate(todo)]
            self._next_index += len(tasks)
            # Stacked groups on either executor: a trial's numbers depend on the engine (stacked or alone), so
            # the executor must not choose it (a Ray cluster's slots are not known yet: groups fill local cores;
            # GPU groups are split only until each local GPU has one)
            grouping = group_tasks(tasks, self.local_jobs, self.vectorize, self._local_gpus(todo))
            tasks = grouping.tasks
            if grouping.groups:
                summary.vectorized = grouping.describe()
            try:
                if self.executor == "ray":
                    summary.code_changed = _run_on_ray(
                        tasks,
                        keeper,
                        record,
                        observe,
                        elsewhere,
                        self.jobs,
                        self.grace_seconds,
                        self.address,
                        self.num_cpus,
                        self.num_gpus,
                        checkpoints,
                    )
                else:
                    pool = self._local_pool(todo)
                    gpu_ids = self._gpu_ids or []
                    jobs = self.local_jobs
                    queue = TaskQueue(tasks, lambda trial: environment_for(trial, gpu_ids), keeper.lease, elsewhere)
                    pool.configure(
                        ExecutorSettings(
                            jobs,
                            self.local_threads,
                            record,
                            observe,
                            self.grace_seconds,
                            PROCESS_CODE_VERSION,
                            checkpoints,
                        )
                    )
                    pool.run(queue)
                    summary.code_changed = pool.code_changed
                    summary.warm_workers, self._adopted = pool.adopted_workers - self._adopted, pool.adopted_workers
            except KeyboardInterrupt:
                summary.interrupted = True
                self.close()  # its busy workers are killed; a later call starts fresh ones
            except BaseException:
                self.close()  # a worker left busy by an error in the driver (the store) is not kept
                raise
            finally:
                keeper.close()

    def close(self) -> None:
        """Stop every worker (idle ones exit, busy ones are killed); the runner may be used again after."""
        pool, self._pool, self._adopted = self._pool, None, 0
        if pool is not None:
            pool.close()

    def __enter__(self) -> TrialRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _unset_result(trial: Trial, result: TrialResult, attempts: int) -> None:
    raise AssertionError("a warm pool received a result outside a run")  # configure() sets each run's own


def _run_on_ray(
    tasks: list[Task],
    keeper: LeaseKeeper,
    record: Callable[[Trial, Any, int], None],
    observe: Callable[[RunEvent], None],
    elsewhere: Callable[[Task], None],
    jobs: int | None,
    grace_seconds: float | None,
    address: str | None,
    num_cpus: float | None,
    num_gpus: float | None,
    checkpoints: str | None = None,
) -> str | None:
    """Run the tasks on Ray actors; returns why the run stopped early when the code changed, else None."""
    import ray

    from harness.runner.ray_pool import RayPool, cluster_slots, connect

    cpus = 1.0 if num_cpus is None else float(num_cpus)
    gpus = 0.0 if num_gpus is None else float(num_gpus)
    connected = connect(address)
    try:
        slots = cluster_slots(cpus, gpus)  # also refuses resources the cluster cannot give even once
        slots = jobs or slots
        # Ray assigns GPUs itself (CUDA_VISIBLE_DEVICES per actor): environments differ by Keras backend only.
        queue = TaskQueue(
            tasks, lambda trial: Environment(keras_environment(trial.spec.backend)), keeper.lease, elsewhere
        )
        settings = ExecutorSettings(
            min(slots, len(tasks)), max(1, int(cpus)), record, observe, grace_seconds, PROCESS_CODE_VERSION, checkpoints
        )
        pool = RayPool(settings, cpus, gpus)
        try:
            pool.run(queue)
            return pool.code_changed
        finally:
            pool.close()
    finally:
        if connected:
            ray.shutdown()
