"""What every command shares: exit codes, the default folders, and loading a suite with its later-stage blocks checked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from harness.suite import Suite

from harness.exit_codes import (  # noqa: F401 - the CLI's commands import them from here
    EXIT_CLUSTER_LOST,
    EXIT_CODE_CHANGED,
    EXIT_DISAGREE,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TRIALS_FAILED,
    EXIT_USAGE,
)
from harness.paths import DEFAULT_REPORTS, DEFAULT_STORE  # noqa: F401 - commands import them from here


def load_checked_suite(path: Path, backends: Sequence[str] | None = None, seeds: str | None = None) -> Suite:
    """Load a suite and check the blocks later stages read (harness.api.load_checked_suite), printing what
    loading the data found out as notes on stderr."""
    from harness.api import load_checked_suite as load

    return load(path, backends, _seeds_option(seeds), on_note=lambda note: click.echo(f"note: {note}", err=True))


def _seeds_option(value: str | None) -> int | list[int] | None:
    if value is None:
        return None
    try:
        if "," in value:
            return [int(part) for part in value.split(",") if part.strip()]
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a count such as 3 or a list such as 0,1,2, got {value!r}") from None
