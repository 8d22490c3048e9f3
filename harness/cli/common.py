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
    """Load a suite and check the blocks later stages read (report options), before anything runs."""
    from harness.analysis import check_report_options
    from harness.data.user_datasets import take_notes
    from harness.errors import SpecError
    from harness.suite import load_suite
    from harness.suite.yaml_source import locate_message

    try:
        suite = load_suite(path, backends=list(backends or []) or None, seeds=_seeds_option(seeds))
    finally:
        for note in take_notes():  # what the data turned out to be (task inferred, sizes), or plug-ins imported
            click.echo(f"note: {note}", err=True)
    from harness.check import parse_check_block, validate_claims

    # Each arm's variant per axis: a per-axis reference ({optimizer: sgd}) picks each arm's reference by them.
    arm_labels = {trial.arm: dict(trial.cell) for trial in suite.trials}
    try:
        check_report_options(suite.report, suite.arms, where="report", arm_labels=arm_labels)
        validate_claims(suite.expect, suite.arms, where="expect")
        parse_check_block(suite.check, where="check")
        _check_validation_reads(suite)
    except SpecError as error:
        # The checkers know the key path, not the file: give the error its file:line like any suite error.
        raise locate_message(path, str(error), type(error)) from None
    return suite


def _check_validation_reads(suite: Suite) -> None:
    """A time-to-target target, primary metric or claim that reads a validation metric needs a validation
    split in every arm's dataset (else it could only ever read NaN: never reached, a claim that cannot pass).

    Raises:
        SpecError: naming the key and the first arm whose dataset has none.
    """
    from harness.errors import SpecError
    from harness.measures import AT_BEST_VALIDATION_PREFIX, VALIDATION_SPLIT

    without = next((trial.arm for trial in suite.trials if trial.spec.dataset.validation <= 0), None)
    if without is None:
        return

    def reads_validation(name: str) -> bool:
        bare = name.removeprefix("final_").removeprefix("best_")
        return bare.startswith(f"{VALIDATION_SPLIT}_") or name.startswith(AT_BEST_VALIDATION_PREFIX)

    targets = suite.report.get("targets") or {}
    reads = [f"report.targets.{name}" for name in targets if isinstance(name, str) and reads_validation(name)]
    metric = suite.report.get("metric")
    if isinstance(metric, str) and reads_validation(metric):
        reads.append("report.metric")
    from harness.check.claims import parse_claim

    for index, text in enumerate(suite.expect):
        if any(reads_validation(operand.metric) for operand in parse_claim(text).operands):
            reads.append(f"expect[{index}]")
    if reads:
        raise SpecError(
            f"{reads[0]}: reads a validation metric, and arm {without!r} has no validation split (its dataset's "
            "validation is 0), so it would never have a value. Give the dataset one, e.g. dataset: {name: digits, "
            "validation: 0.2}, or use a test or train metric."
        )


def _seeds_option(value: str | None) -> int | list[int] | None:
    if value is None:
        return None
    try:
        if "," in value:
            return [int(part) for part in value.split(",") if part.strip()]
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a count such as 3 or a list such as 0,1,2, got {value!r}") from None
