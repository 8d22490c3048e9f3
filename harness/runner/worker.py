"""What runs inside a worker process: receive a trial, train it, send the result back.

A worker is started with the `spawn` method and reused for many trials, so the framework is
imported once per worker and adapters and datasets stay cached in it. Its environment
(thread counts, KERAS_BACKEND) is set by the driver before the process starts, hence before
any framework import. The worker never touches the store: the driver alone writes it.

Protocol on the Pipe (driver -> worker): `(index, TrialSpec)` to run one trial, `None` to stop.
Worker -> driver: `("started", index)` when training begins (the timeout clock starts), then
`("result", index, TrialResult)`. An exception inside a trial becomes a 'failed' TrialResult;
only a dying process (signal, segfault, out of memory) goes unreported, and the driver sees it.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from harness.adapters.loop import TrialResult, now
from harness.spec.types import TrialSpec

TRACEBACK_FRAMES = 4  # frames of the traceback kept in a failed trial's error, innermost last
ERROR_CHARACTERS = 4000  # cap on the stored error text


def describe_exception(error: BaseException) -> str:
    """'ExceptionType: message' followed by the last traceback frames (innermost last)."""
    headline = f"{type(error).__name__}: {error}"
    frames = traceback.format_tb(error.__traceback__)[-TRACEBACK_FRAMES:]
    if not frames:
        return headline
    text = headline + "\nTraceback (last frames):\n" + "".join(frames).rstrip()
    return text if len(text) <= ERROR_CHARACTERS else text[: ERROR_CHARACTERS - 3] + "..."


class TrialExecutor:
    """Runs trials in this process, caching one configured adapter per backend name.

    Args:
        threads: intra-op threads each adapter is pinned to (`Adapter.configure`).
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._adapters: dict[str, Any] = {}

    def adapter(self, backend: str) -> Any:
        """The configured adapter of a backend, imported and configured on first use."""
        if backend not in self._adapters:
            from harness.adapters import get_adapter

            adapter = get_adapter(backend)
            adapter.configure(self.threads)
            self._adapters[backend] = adapter
        return self._adapters[backend]

    def run(self, spec: TrialSpec, on_start: Callable[[], None] = lambda: None) -> TrialResult:
        """Train one trial; any exception becomes a 'failed' result (the worker stays usable).

        Args:
            spec: the trial to run.
            on_start: called once the adapter and dataset are ready, right before training.
        """
        started_at, clock = now(), time.perf_counter()
        adapter = None
        try:
            from harness.adapters.loop import train_trial
            from harness.data import load_dataset  # cached per process (functools.lru_cache)

            adapter = self.adapter(spec.backend)
            data = load_dataset(spec.dataset)
            on_start()
            return train_trial(spec, adapter, data)
        except Exception as error:  # noqa: BLE001 - isolating a trial's failure is this function's job
            return TrialResult(
                status="failed",
                error=describe_exception(error),
                wall_seconds=time.perf_counter() - clock,
                versions=_safe_versions(adapter),
                started_at=started_at,
                finished_at=now(),
            )


def _safe_versions(adapter: Any) -> dict[str, str]:
    if adapter is None:
        return {}
    try:
        return dict(adapter.versions())
    except Exception:  # noqa: BLE001 - the original error matters, not this one
        return {}


def worker_main(connection: Connection, threads: int) -> None:
    """Entry point of a worker process: serve trials until told to stop or the driver goes away.

    Exits with os._exit: the worker holds nothing to save (results went down the pipe), and a
    normal interpreter shutdown with torch or TensorFlow loaded takes about a second.
    """
    # Ctrl-C in a terminal reaches the whole process group: the driver alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    executor = TrialExecutor(threads)
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            _exit()  # the driver is gone (killed): nobody to report to
        if message is None:
            _exit()
        index, spec = message
        result = executor.run(spec, on_start=lambda: connection.send(("started", index)))
        try:
            connection.send(("result", index, result))
        except OSError:
            _exit()


def _exit() -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
