"""What a local worker process is started with, and starting one: its environment variables (thread
counts, Keras backend, visible GPUs), read by the frameworks once, at import, hence set before it starts.

Apart from devices.py (which decides a trial's environment from its spec, with the suite's and the
adapters' modules) so that `harness run` can start a worker before it imports anything else
(harness.runner.early): this module imports the standard library only.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.runner.code_version import CodeVersion

THREAD_VARIABLES = (  # read by OpenMP, MKL, OpenBLAS (torch, numpy) and TensorFlow at import
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
GPU_VARIABLES = {
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # TensorFlow takes GPU memory as it needs it, not all of it at start
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # JAX: the same (it preallocates 75% by default)
}


@dataclass(frozen=True)
class Environment:
    """What a worker process is started with; a trial runs only on a worker of its environment.

    keras_backend: KERAS_BACKEND of the worker ('default': not set, for torch trials).
    gpus: 'inherit' (sees what the driver sees), 'none' (sees no GPU), 'one' (pinned to one GPU,
        chosen when the worker starts).
    """

    keras_backend: str = "default"
    gpus: str = "inherit"

    def __str__(self) -> str:
        return self.keras_backend if self.gpus == "inherit" else f"{self.keras_backend}/gpus={self.gpus}"


DEFAULT_ENVIRONMENT = Environment()


def worker_variables(environment: Environment, threads: int, visible_devices: str | None = None) -> dict[str, str]:
    """Environment variables of a worker: pinned thread counts, its Keras backend, GPU memory growth,
    and CUDA_VISIBLE_DEVICES when it is restricted ('' hides every GPU)."""
    variables = {name: str(threads) for name in THREAD_VARIABLES}
    variables["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # keep TF's info logs off the progress bar
    variables.update(GPU_VARIABLES)
    if environment.keras_backend != DEFAULT_ENVIRONMENT.keras_backend:
        variables["KERAS_BACKEND"] = environment.keras_backend
    if environment.gpus == "none":
        variables["CUDA_VISIBLE_DEVICES"] = ""
    elif environment.gpus == "one":
        if visible_devices is None:
            raise ValueError("a one-GPU worker needs the GPU id it is pinned to")
        variables["CUDA_VISIBLE_DEVICES"] = visible_devices
    return variables


def worker_count(jobs: int | None) -> int:
    """Local workers at once: `jobs`, else one per core."""
    return jobs or os.cpu_count() or 1


def worker_threads(jobs: int, cpu_count: int | None = None) -> int:
    """Threads per worker: the cores shared out so `jobs` workers do not oversubscribe them."""
    return max(1, (cpu_count or os.cpu_count() or 1) // jobs)


@contextmanager
def _variables_set(variables: dict[str, str]) -> Iterator[None]:
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


def start_worker(
    context: Any,
    environment: Environment,
    threads: int,
    visible_devices: str | None,
    code: CodeVersion | None,
    preload: Sequence[str],
) -> tuple[Connection, Any]:
    """Start one worker process (harness.runner.worker.worker_main) in `environment`, pinned to `threads`.

    Args:
        context: a multiprocessing context (spawn).
        visible_devices: the GPU id a one-GPU worker sees (CUDA_VISIBLE_DEVICES), else None.
        code: the driver's code version, which the worker checks its own against before running anything.
        preload: backends whose adapters (hence frameworks) the worker imports as soon as it starts.

    Returns:
        the driver's end of the worker's pipe, and the started process.
    """
    connection, child_end = context.Pipe(duplex=True)
    process = context.Process(
        target=_worker_entry,
        args=(child_end, threads, code, tuple(preload)),
        name=f"harness-worker-{environment}",
        daemon=True,
    )
    with _variables_set(worker_variables(environment, threads, visible_devices)), _sigint_ignored():
        process.start()
    child_end.close()  # so the driver's recv sees EOF when the worker dies
    return connection, process


def _worker_entry(connection: Connection, threads: int, code: CodeVersion | None, preload: tuple[str, ...]) -> None:
    """A worker process's target, importing the worker's modules in the worker only (the driver that starts
    it early has not imported them yet)."""
    from harness.runner.worker import worker_main

    worker_main(connection, threads, code, preload)
