"""`harness export`: a suite's stored results in MLflow or as TensorBoard event files."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import path_option, store_option, suite_or_results_argument
from harness.errors import HarnessError
from harness.export import EXPORT_TARGETS

DEFAULT_TENSORBOARD = Path("tensorboard")


@click.command()
@suite_or_results_argument()
@click.option("--to", "target_kind", type=click.Choice(EXPORT_TARGETS), required=True, help="Where to export.")
@click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="mlflow: the tracking store (sqlite:///mlflow.db, http://host:5000, file:///path); "
    "default: MLflow's own (MLFLOW_TRACKING_URI).",
)
@path_option(
    "--output",
    "-o",
    "output",
    help=f"tensorboard: the log folder; the suite's runs go to <output>/<suite>/ (default: {DEFAULT_TENSORBOARD}).",
)
@store_option(help="The store folder (default: results/ for a suite file, the parent of a results folder).")
def export(
    target: Path, target_kind: str, tracking_uri: str | None, output: Path | None, store_dir: Path | None
) -> None:
    """Export SUITE_OR_RESULTS's stored trials to MLflow or TensorBoard (again: nothing duplicated).

    \b
    MLflow: one run per arm (its summary: mean, CI, n per metric) with one nested run
    per trial (tags, the resolved spec as params, every epoch's metrics by step).
    TensorBoard: scalars per trial and the HParams table.
    \b
    Examples:
      harness export results/optimizers --to mlflow --tracking-uri sqlite:///mlflow.db
      harness export suites/optimizers.yaml --to tensorboard -o runs
    """
    from harness.results_folder import open_results

    if target_kind == "mlflow" and output is not None:
        raise HarnessError("--output: applies to --to tensorboard; MLflow writes where --tracking-uri points.")
    if target_kind == "tensorboard" and tracking_uri is not None:
        raise HarnessError("--tracking-uri: applies to --to mlflow; TensorBoard writes to --output.")
    results, _ = open_results(target, store_dir)
    if target_kind == "mlflow":
        from harness.export.mlflow import export_mlflow

        click.echo(f"{results.name}: {export_mlflow(results, tracking_uri).describe()}")
    else:
        from harness.export.tensorboard import export_tensorboard

        click.echo(f"{results.name}: {export_tensorboard(results, output or DEFAULT_TENSORBOARD).describe()}")
