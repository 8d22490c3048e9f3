"""Every exit code of the `harness` command, declared once.

The library decides some outcomes (a check's verdict, a lost Ray cluster) and the CLI maps the
rest; both import the numbers from here, and the README's table lists the same codes. A code
means one thing across every command, so a CI script can act on it without knowing which
command ran.
"""

from __future__ import annotations

EXIT_OK = 0  # success (`check`: also inconclusive rows without --strict)
EXIT_DISAGREE = 1  # `check`: a regression, a missing metric or a false claim; `parity`: an arm disagrees
EXIT_USAGE = 2  # bad input: suite, flags, store, missing extra, a model too big to train; no traceback
EXIT_TRIALS_FAILED = 3  # `run`: some trials failed or timed out; `check`: the results hold such trials
EXIT_CODE_CHANGED = 4  # `run`: the harness code changed on disk during the run; run again to finish
EXIT_INCONCLUSIVE = 5  # `check --strict`: a row the seeds cannot decide, or an undecided claim
EXIT_CLUSTER_LOST = 6  # `run --executor ray`: the head node was lost mid-run; run again to finish
EXIT_INTERRUPTED = 130  # Ctrl-C: finished trials are kept; run again to resume

__all__ = [
    "EXIT_CLUSTER_LOST",
    "EXIT_CODE_CHANGED",
    "EXIT_DISAGREE",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TRIALS_FAILED",
    "EXIT_USAGE",
]
