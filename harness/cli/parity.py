"""`harness parity`: every arm of a suite trains identically in each backend, or exit 1."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from harness.cli.common import EXIT_DISAGREE, load_checked_suite
from harness.cli.options import backend_option, path_argument


@click.command()
@path_argument("suite_path", "SUITE")
@backend_option(
    help="Backends to compare (repeatable; default: the suite's, at least two). The first is the reference."
)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Optimizer steps per arm.")
def parity(suite_path: Path, backends: Sequence[str], steps: int) -> None:
    """Check that every arm of SUITE trains identically in each backend.

    Each arm (first seed) starts from the same shared initial weights in every backend and
    takes STEPS optimizer steps on the same batches; the loss at every step and every
    parameter at the end must agree within the component's stated tolerance (see
    docs/semantics.md). Dropout runs as identity (masks cannot match across frameworks).
    Exits 1 if any arm disagrees.

    \b
    Example:
      harness parity suites/optimizers.yaml --backend torch --backend keras
    """
    from harness.parity import parity_for_suite

    suite = load_checked_suite(suite_path, backends or None)
    from harness.adapters.python_models import PARITY_NOT_CHECKED

    results = parity_for_suite(suite, steps=steps, backends=list(backends) or None)
    for arm in sorted({trial.arm for trial in suite.trials if trial.spec.model.python and not trial.spec.model.paired}):
        click.echo(
            f"{arm}: {PARITY_NOT_CHECKED}: the user's Python model does not pair its torch and Keras parameters "
            "(model.names), so the two backends cannot start from the same weights and be compared step by step."
        )
    if not results:
        return
    width = max(len(result.label) for result in results)
    click.echo(f"{'arm':<{width}}  backends          steps  max|dloss|  max|dparam|  verdict")
    for result in results:
        verdict = "agree" if result.passed else "DISAGREE"
        click.echo(
            f"{result.label:<{width}}  {' vs '.join(result.backends):<16}  {result.steps:>5}  "
            f"{result.max_loss_delta:>10.2e}  {result.max_param_delta:>11.2e}  {verdict}"
        )
    notes = sorted({result.note for result in results if result.note})
    for note in notes:
        click.echo(f"note: {note}")
    failed = [result for result in results if not result.passed]
    for result in failed:
        click.echo(result.message(), err=True)
    click.echo(f"{len(results) - len(failed)}/{len(results)} arms agree.")
    if failed:
        raise SystemExit(EXIT_DISAGREE)
