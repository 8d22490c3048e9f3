"""`harness validate`: check suites without training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from harness.cli.common import EXIT_USAGE, load_checked_suite
from harness.errors import HarnessError


@click.command()
@click.argument("suite_paths", metavar="SUITE...", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(suite_paths: Sequence[Path]) -> None:
    """Check suites without training: schema, names, grid, shapes, backends, and that each trial fits in memory.

    Prints each arm's parameter count and its estimated training memory (float32 weights, gradients,
    optimizer state, activations at the batch size).

    \b
    Example:
      harness validate suites/*.yaml
    """
    from harness.capacity import arm_footprints, check_trials_fit

    failures = 0
    for path in suite_paths:
        try:
            suite = load_checked_suite(path)
            check_trials_fit(suite.trials, path)
            footprints = arm_footprints(suite.trials)
        except HarnessError as error:
            failures += 1
            click.echo(f"error: {error}", err=True)
            continue
        per_arm = len(suite.backends) * len(suite.seeds)
        click.echo(
            f"ok  {path}: {suite.name!r}, {len(suite.arms)} arms x {len(suite.backends)} backends "
            f"({', '.join(suite.backends)}) x {len(suite.seeds)} seeds = {len(suite.trials)} trials"
            + (f" ({suite.seed_roles()})" if suite.confirm_seeds else "")
        )
        python_arms = {trial.arm: trial.spec.model for trial in suite.trials if trial.spec.model.python}
        for arm in suite.arms:
            size = (
                "the user's Python model (its size is known once built; "
                + (
                    f"{len(python_arms[arm].names)} tensors paired: shared init, parity checkable)"
                    if python_arms[arm].paired
                    else "parity not checked)"
                )
                if arm in python_arms
                else footprints[arm].describe()
            )
            click.echo(f"      {arm}  ({per_arm} trials)  {size}")
        if suite.search is not None:  # the footprints above are at the written values; searched ones vary
            search = suite.search
            each = search.trials * search.rounds * len(search.seeds)
            click.echo(
                f"    + search first, on {suite.backends[0]}: {search.trials} configurations x {search.rounds} rounds x "
                f"{len(search.seeds)} search seeds = {each} trials per arm, {each * len(suite.arms)} in all "
                f"({search.sampler}, pruner {search.pruner}, chosen by {search.objective})"
            )
    if failures:
        raise SystemExit(EXIT_USAGE)
