"""Workers started at the first line of `harness run`, before its suite is read.

A cold worker spends about a second importing torch. Started once the suite was loaded and the store
opened (TrialRunner.start, ~0.4 s into a command here), it was ready ~1.7 s into a one-trial command;
started first, its import runs beside the driver's own start (its imports, the suite, the store).

What to start is a guess made before the suite is read: workers for torch trials on the CPU (the
default environment, preloading torch), pinned to the run's threads, one per job, but at most
MAX_EARLY and one core fewer than the machine has: the driver's own start is on the way to the first
trial too, and on 2 cores two workers importing beside it delayed the first trial (+2.3-2.6 s with
two early workers at --jobs 2, against +2.1-2.3 s with none).
When the run then starts a worker of exactly that kind (WorkerPool._start), it takes one of these
instead; TrialRunner.start discards the rest as soon as it knows the run's trials (a Keras-only suite,
fewer trials than jobs, every trial already stored), and `harness run` discards any left when it ends
(a suite it refused included). A worker found dead is never handed out.

None is started where the guess is wrong or not needed: with a worker server running (its spares are
warm already), and on a machine that may have GPUs (CUDA_VISIBLE_DEVICES set, or nvidia-smi on the
PATH), where a worker's environment depends on the suite's devices. The caller (harness run) starts
them only for the local executor.

Imports only light modules (the standard library, harness.runner.environment, code_version, spares):
the point is to start before the driver imports anything else. A worker that cannot be started here
(out of processes or file descriptors) costs nothing but the head start: the others are killed and
the run starts its own, reporting what fails then.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from harness.runner.environment import DEFAULT_ENVIRONMENT, Environment, start_worker, worker_count, worker_threads

MAX_EARLY = 4  # workers started on a guess; the rest of a large --jobs start when the trials are known
PRELOAD = ("torch",)


@dataclass
class _Early:
    """A worker started here: always DEFAULT_ENVIRONMENT, preloading PRELOAD, pinned to `threads`."""

    threads: int
    connection: Connection
    process: Any


_started: list[_Early] = []


def start(jobs: int | None, threads: int | None) -> int:
    """Start torch workers for a local run with these --jobs and --threads (None: their defaults), unless
    a worker server runs or the machine may have GPUs; returns how many started (see the module docstring)."""
    if _started or not _worthwhile():
        return 0
    from harness.runner.code_version import PROCESS_CODE_VERSION

    count = worker_count(jobs)
    threads = threads or worker_threads(count)
    context = multiprocessing.get_context("spawn")
    try:
        for _ in range(min(count, MAX_EARLY, max(1, (os.cpu_count() or 1) - 1))):
            connection, process = start_worker(
                context, DEFAULT_ENVIRONMENT, threads, None, PROCESS_CODE_VERSION, PRELOAD
            )
            _started.append(_Early(threads, connection, process))
    except OSError:
        discard()
    return len(_started)


def _worthwhile() -> bool:
    """No worker server runs (its spares are warm) and no GPU may be visible (see the module docstring)."""
    from harness.runner import spares

    if spares.supported() and spares.socket_path().exists():
        return False
    return os.environ.get("CUDA_VISIBLE_DEVICES") is None and shutil.which("nvidia-smi") is None


def take(
    environment: Environment, threads: int, visible_devices: str | None, preload: tuple[str, ...]
) -> tuple[Connection, Any] | None:
    """A live early worker of exactly this kind (its pipe end and process), or None."""
    if (environment, preload, visible_devices) != (DEFAULT_ENVIRONMENT, PRELOAD, None):
        return None
    for index, early in enumerate(_started):
        if early.threads == threads and early.process.is_alive():
            del _started[index]
            return early.connection, early.process
    return None


def discard() -> None:
    """Kill the early workers nothing took (perhaps still importing)."""
    while _started:
        early = _started.pop()
        early.process.kill()
        early.process.join()
        early.connection.close()


def pids() -> tuple[int | None, ...]:
    """The process ids of the early workers nothing has taken yet."""
    return tuple(early.process.pid for early in _started)
