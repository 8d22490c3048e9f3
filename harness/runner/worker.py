"""What runs inside a worker process: receive a trial, train it, send the result back.

A worker is started with the `spawn` method and reused for many trials, so the framework is
imported once per worker and adapters and datasets stay cached in it. Its environment
(thread counts, KERAS_BACKEND) is set by the driver before the process starts, hence before
any framework import. The worker never touches the store: the driver alone writes it.

Protocol on the Pipe (driver -> worker): `(index, TrialSpec, attempt, checkpoints folder or None)` to run one
trial, or `(index, (TrialSpec, ...), attempt, checkpoints)` to train a stacked group (harness.runner.grouping;
a group keeps no checkpoints: killed, it trains again from the start), `None`
to stop. Worker -> driver: `("started", index)` when training begins (the timeout clock starts),
then `("result", index, TrialResult)` (a list of them, in order, for a group). An exception inside a trial becomes a 'failed'
TrialResult and the worker goes on, except running out of memory: the worker then sends
`("crashed", index, cause)` and exits (its heap may be exhausted or fragmented), and the driver
treats it like a dead worker (retry once on a fresh one). A dying process (signal, segfault,
the kernel's out-of-memory killer) sends nothing; the driver sees it die.

Before its first trial, a worker compares the harness code it imported with the driver's
(code_version.py); when they differ it sends `("code_changed", reason)` and exits without running
anything: the driver stops dispatching and leaves the trial unrecorded for a rerun.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from harness.adapters.result import TrialResult, now
from harness.provenance import process_provenance
from harness.runner.code_version import CodeVersion, code_mismatch
from harness.runner.hooks import crash_if_planned
from harness.spec.types import TrialSpec

TRACEBACK_FRAMES = 4  # frames of the traceback kept in a failed trial's error, innermost last
ERROR_CHARACTERS = 4000  # cap on the stored error text
# Exception class names that mean "out of memory" in torch (CUDA) and TensorFlow; MemoryError is Python's.
OUT_OF_MEMORY_NAMES = ("MemoryError", "OutOfMemoryError", "ResourceExhaustedError")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception reports memory exhaustion (MemoryError, torch.cuda.OutOfMemoryError, TF's
    ResourceExhaustedError), judged by class names so no framework is imported here."""
    return any(kind.__name__ in OUT_OF_MEMORY_NAMES for kind in type(error).__mro__)


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
        self.unusable: str | None = None  # set when a trial ran out of memory: this process should exit

    def adapter(self, backend: str) -> Any:
        """The configured adapter of a backend, imported and configured on first use."""
        if backend not in self._adapters:
            from harness.adapters import get_adapter

            adapter = get_adapter(backend)
            adapter.configure(self.threads)
            self._adapters[backend] = adapter
        return self._adapters[backend]

    def run(
        self,
        spec: TrialSpec,
        on_start: Callable[[], None] = lambda: None,
        attempt: int = 1,
        checkpoints: str | None = None,
    ) -> TrialResult:
        """Train one trial; any exception becomes a 'failed' result (the worker stays usable, unless
        it ran out of memory: then `unusable` names the cause).

        Args:
            spec: the trial to run.
            on_start: called once the adapter and dataset are ready, right before training.
            attempt: 1 for the first execution of this trial, 2 for its retry (read by the test hook).
            checkpoints: the folder of in-trial checkpoints (resumed, written, removed), or None.
        """
        started_at, clock = now(), time.perf_counter()
        adapter = None
        try:
            from harness.adapters.loop import train_trial
            from harness.data import load_dataset  # cached per process (functools.lru_cache), per seed if resplit

            adapter = self.adapter(spec.backend)
            data = load_dataset(spec.dataset, spec.seed)
            on_start()
            crash_if_planned(spec.hash, attempt)  # test hook; inert unless HARNESS_TEST_CRASH names this trial
            result = train_trial(spec, adapter, data, checkpoints)
        except Exception as error:
            self._note_out_of_memory(error)
            return self._failed(error, clock, started_at, _safe_versions(adapter))
        return self._annotate(result)

    def run_group(
        self, specs: Sequence[TrialSpec], on_start: Callable[[], None] = lambda: None, attempt: int = 1
    ) -> list[TrialResult]:
        """Train trials as one stacked model (harness.adapters.vectorize.train_group), one result per spec.

        When the stacked run raises, the members are trained one by one instead (`run`), so a problem of
        the stacked path costs time, never a member's result; running out of memory fails them all and
        makes the worker `unusable`, as in `run`.
        """
        started_at, clock = now(), time.perf_counter()
        try:
            from harness.adapters.vectorize import train_group
            from harness.data import load_dataset

            adapter = self.adapter(specs[0].backend)
            data = load_dataset(specs[0].dataset, specs[0].seed)  # resplit: group_key keeps one seed per group
            on_start()
            for spec in specs:
                crash_if_planned(spec.hash, attempt)
            results = train_group(specs, adapter, data)
        except Exception as error:
            if self._note_out_of_memory(error):
                return [self._failed(error, clock, started_at, {}) for _ in specs]
            fallback = f"stacked training failed ({type(error).__name__}: {error}); trained alone"
            results = [self.run(spec, attempt=attempt) for spec in specs]
            for result in results:
                result.device = {**result.device, "vectorized_fallback": fallback[:ERROR_CHARACTERS]}
            return results
        return [self._annotate(result) for result in results]

    def _note_out_of_memory(self, error: Exception) -> bool:
        """Out of memory makes the worker `unusable` (the driver replaces it); True when it was."""
        if not is_out_of_memory(error):
            return False
        detail = f": {error}" if str(error) else ""
        self.unusable = f"worker out of memory ({type(error).__name__}{detail})"
        return True

    def _failed(self, error: Exception, clock: float, started_at: str, versions: dict[str, str]) -> TrialResult:
        """A 'failed' result for `error`, with the worker's provenance like any other result."""
        failed = TrialResult(
            status="failed",
            error=describe_exception(error),
            wall_seconds=time.perf_counter() - clock,
            versions=versions,
            started_at=started_at,
            finished_at=now(),
        )
        failed.provenance, failed.provenance_blobs = process_provenance(self.threads)
        return failed

    def _annotate(self, result: TrialResult) -> TrialResult:
        # What the framework's view of its device rests on: the threads it was pinned to, and the
        # physical GPU(s) behind its cuda:0.. when the worker's CUDA_VISIBLE_DEVICES restricts them.
        result.device = {**result.device, "threads": str(self.threads)}
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            result.device["cuda_visible_devices"] = visible
        result.provenance, result.provenance_blobs = process_provenance(self.threads)  # computed once per process
        return result


def _safe_versions(adapter: Any) -> dict[str, str]:
    if adapter is None:
        return {}
    try:
        return dict(adapter.versions())
    except Exception:
        return {}


def worker_main(
    connection: Connection, threads: int, code: CodeVersion | None = None, preload: Sequence[str] = ()
) -> None:
    """Entry point of a worker process: serve trials until told to stop or the driver goes away.

    Args:
        connection: the worker's end of the driver's Pipe.
        threads: threads the adapters are pinned to.
        code: the driver's code version; a worker that imported other code refuses to run anything.
        preload: backends whose adapters are imported and configured before the first trial arrives (a
            worker started ahead of its run imports its framework meanwhile); one that fails to load is
            left for the trial to load again, which records the error as its own.

    Exits with os._exit: the worker holds nothing to save (results went down the pipe), and a
    normal interpreter shutdown with torch or TensorFlow loaded takes about a second.
    """
    # Ctrl-C in a terminal reaches the whole process group: the driver alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mismatch = code_mismatch(code)
    if mismatch is not None:
        try:
            connection.send(("code_changed", mismatch))
        except OSError:
            pass
        _exit()
    executor = TrialExecutor(threads)
    for backend in preload:
        try:
            executor.adapter(backend)
        except Exception:
            pass
    if preload:  # what the first trial would otherwise wait for, done while the driver still prepares:
        import harness.adapters.loop
        import harness.adapters.vectorize  # noqa: F401

        process_provenance(threads)  # once per process (git state, ~450 package versions: ~0.3 s)
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            _exit()  # the driver is gone (killed): nobody to report to
        if message is None:
            _exit()
        index, spec, attempt, checkpoints = message
        on_start = partial(connection.send, ("started", index))
        result: TrialResult | list[TrialResult]
        if isinstance(spec, tuple):  # a stacked group (harness.runner.grouping)
            result = executor.run_group(spec, on_start=on_start, attempt=attempt)
        else:
            result = executor.run(spec, on_start=on_start, attempt=attempt, checkpoints=checkpoints)
        try:
            if executor.unusable is not None:
                connection.send(("crashed", index, executor.unusable))
                _exit()
            connection.send(("result", index, result))
        except OSError:
            _exit()


def _exit() -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
