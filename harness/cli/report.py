"""`harness report`: the HTML and PDF report of a suite's stored results."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("target", metavar="SUITE_OR_RESULTS", type=click.Path(path_type=Path))
@click.option(
    "--store",
    "store_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The store folder (default: results/ for a suite file, the parent of a results folder).",
)
@click.option(
    "--output",
    "-o",
    "reports_dir",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Reports go to <output>/<suite>/report.html and report.pdf.",
)
def report(target: Path, store_dir: Path | None, reports_dir: Path) -> None:
    """Write the HTML and PDF report of a suite's stored results.

    \b
    Examples:
      harness report suites/optimizers.yaml
      harness report results/optimizers
    """
    from harness.report import write_report
    from harness.results_folder import open_results

    results, record = open_results(target, store_dir)
    html_path, pdf_path = write_report(results, reports_dir / record.name, record.document)
    click.echo(f"{html_path}\n{pdf_path}")
