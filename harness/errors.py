"""Errors a user can cause. The CLI prints them without a traceback and exits 2.

Every message names the input, what was received, what was expected, and how to fix
it. Bugs may raise anything else; those keep their traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base class of every error a user can cause (bad suite, missing extra, ...)."""

    exit_code = 2


class SpecError(HarnessError):
    """A suite or spec value is malformed, unknown, or inconsistent."""


class DatasetError(HarnessError):
    """A dataset name or option is unknown or inconsistent."""


class BackendError(HarnessError):
    """A backend is unknown or its framework is not installed."""


class StoreError(HarnessError):
    """The results store cannot be created, opened or written."""


def did_you_mean(received: str, valid: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest valid name, or '' if none is close."""
    matches = difflib.get_close_matches(str(received), list(valid), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def unknown_name(kind: str, received: str, valid: Iterable[str], where: str = "") -> SpecError:
    """Build the standard 'unknown X' error listing the valid names."""
    valid = sorted(valid)
    location = f"{where}: " if where else ""
    return SpecError(
        f"{location}unknown {kind} {received!r}.{did_you_mean(received, valid)} Expected one of: {', '.join(valid)}."
    )
