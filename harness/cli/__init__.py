"""The `harness` command: a thin click layer over the library, one module per command.

    run        harness.cli.run        train a suite's trials, write and print the tables
    validate   harness.cli.validate   check suites without training
    report     harness.cli.report     the HTML and PDF report
    compare    harness.cli.compare    two result sets side by side
    baseline   harness.cli.baseline   `baseline save`: a baseline file for `check`
    check      harness.cli.check      results vs a baseline and `expect:` claims
    export     harness.cli.export     stored results to MLflow or TensorBoard
    history    harness.cli.history    each arm's metric over the stored runs (commits), steps flagged
    parity     harness.cli.parity     every arm trains identically in each backend
    list       harness.cli.listing    shipped suites, datasets, components, backends
    workers    harness.cli.workers    a background server keeping warm workers between runs
    common     what they share: exit codes, the default folders, `load_checked_suite`
    options    the arguments and options several commands declare (`--store`, `--backend`, ...)

Each command only parses its options, calls the library (imported inside the command) and maps
the outcome to an exit code. Exit codes (harness.exit_codes, the one list): 0 success; 1 a check or
parity disagreement; 2 bad input (suite, flags, store, missing extra), printed without a
traceback; 3 some trials failed or timed out; 4 the code changed during a run; 5 `check
--strict` found what the seeds cannot decide; 6 the Ray head node was lost; 130 interrupted.
`harness --help` and `harness validate` import no deep-learning framework.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from harness import __version__
from harness.errors import HarnessError

EPILOG = """\b
Exit codes: 0 success, 1 check/parity disagreement, 2 bad input (no traceback,
nothing written), 3 some trials failed or timed out, 130 interrupted (run again to resume).
"""


class HarnessGroup(click.Group):
    """Turns a HarnessError (bad input) into its message on stderr and exit code 2, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:  # Any: click.Group.invoke returns the command's own result
        try:
            return super().invoke(ctx)
        except HarnessError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


@click.group(
    cls=HarnessGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """Compare deep-learning models, optimizers and training choices, with seeds and confidence intervals.

    Write an experiment once as a YAML suite; `harness run` trains every cell of its
    grid for every seed and backend, stores every result, and prints a summary.
    """


def _register_commands() -> None:
    # Imported here, not bound at module level: `harness.cli.run` etc. stay the modules.
    from harness.cli import (
        baseline,
        check,
        compare,
        export,
        history,
        listing,
        parity,
        report,
        run,
        validate,
        workers,
    )

    for command in (
        run.run,
        validate.validate,
        report.report,
        compare.compare,
        baseline.baseline,
        check.check,
        export.export,
        history.history,
        parity.parity,
        listing.list_command,
        workers.workers,
    ):
        cli.add_command(command)


_register_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`harness`, `python -m harness`).

    Once the command is done (its files closed, its workers stopped) the process ends at once with the
    command's exit code, output flushed, skipping the interpreter's teardown of the modules it loaded
    (pandas, scipy, a framework: 0.2-0.3 s of every command, measured). Not with Ray loaded, whose
    exit handler disconnects from the cluster; and `cli` itself, which tests and scripts call in-process,
    raises SystemExit as click does.
    """
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="harness")
    except SystemExit as stop:
        code = stop.code
    else:
        code = 0
    if "ray" in sys.modules or not (code is None or isinstance(code, int)):
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`harness list | head`) or a closed stream
            pass
    logging = sys.modules.get("logging")  # its handlers flushed, as at a normal exit, where anything imported it
    if logging is not None:
        logging.shutdown()
    os._exit(code or 0)


__all__ = ["EPILOG", "HarnessGroup", "cli", "main"]
