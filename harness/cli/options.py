"""The arguments and options several commands declare, each written once.

`--store`, `--backend`, the SUITE_OR_RESULTS argument and every path-valued option are declared
here, so their names, types and defaults cannot drift between commands; a command passes only the
help text it words for itself. The order of the decorators in a command is the order `--help` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

Declared = TypeVar("Declared", bound=Callable[..., Any])

# The help of --store wherever a command reads results a run stored (baseline save, check).
STORE_OF_RUN_HELP = "The folder given to `harness run --store` (default: results/, or the parent of a results folder)."


def path_option(
    *declarations: str, help: str | None = None, default: Path | None = None
) -> Callable[[Declared], Declared]:
    """An option whose value is a `pathlib.Path`; `--help` shows its default when it has one.

    Args:
        declarations: the option's names and, optionally, its parameter name (as for `click.option`).
        help: the option's help text.
        default: the path used when the option is not given (None: the command decides).
    """
    return click.option(
        *declarations,
        type=click.Path(path_type=Path),
        default=default,
        show_default=default is not None,
        help=help,
    )


def path_argument(name: str, metavar: str) -> Callable[[Declared], Declared]:
    """A positional argument whose value is a `pathlib.Path`, shown in usage lines as METAVAR."""
    return click.argument(name, metavar=metavar, type=click.Path(path_type=Path))


def suite_or_results_argument() -> Callable[[Declared], Declared]:
    """The `target` argument of the commands that read stored results: a suite file or a results folder."""
    return path_argument("target", "SUITE_OR_RESULTS")


def store_option(help: str = STORE_OF_RUN_HELP, default: Path | None = None) -> Callable[[Declared], Declared]:
    """`--store` (parameter `store_dir`): the folder holding harness.sqlite and the results folders."""
    return path_option("--store", "store_dir", help=help, default=default)


def backend_option(help: str) -> Callable[[Declared], Declared]:
    """`--backend NAME` (parameter `backends`, repeatable): the backends a command is limited to."""
    return click.option("--backend", "backends", multiple=True, metavar="NAME", help=help)
