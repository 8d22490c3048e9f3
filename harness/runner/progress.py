"""The run's progress display (rich): trials done/total, ETA, failed/diverged counts, current arm.

Shown only on an interactive terminal and when not quiet, so logs, CI output and piped
output stay clean.
"""

from __future__ import annotations

import sys
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.measures import PROBLEM_STATUSES
from harness.spec.types import Trial


def progress_enabled(quiet: bool) -> bool:
    """Whether to draw progress: not quiet, and stdout is a terminal."""
    return not quiet and sys.stdout.isatty()


class RunProgress:
    """A context manager around a rich Progress bar for one run.

    Args:
        total: trials to run (skipped ones excluded).
        enabled: draw anything at all (see `progress_enabled`).
        console: where to draw (default: a rich Console on stdout).
    """

    def __init__(self, total: int, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.counts: Counter[str] = Counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[outcomes]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(file=sys.stdout),
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task("starting", total=total, outcomes="")

    def running(self, trial: Trial) -> None:
        """A trial was sent to a worker: show its arm (and backend) as the current one."""
        # escape: arm names may hold brackets, which rich would read as markup
        self._progress.update(self._task, description=escape(f"{trial.arm} [{trial.spec.backend}]"))

    def finished(self, status: str) -> None:
        """A trial was recorded with this status."""
        self.counts[status] += 1
        outcomes = ", ".join(f"{self.counts[name]} {name}" for name in PROBLEM_STATUSES if self.counts[name])
        self._progress.update(self._task, advance=1, outcomes=outcomes)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()
