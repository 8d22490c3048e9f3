"""`harness report`: the HTML and PDF report of a suite's stored results."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.common import DEFAULT_REPORTS
from harness.cli.options import path_option, store_option, suite_or_results_argument


@click.command()
@suite_or_results_argument()
@store_option(help="The store folder (default: results/ for a suite file, the parent of a results folder).")
@path_option(
    "--output",
    "-o",
    "reports_dir",
    default=DEFAULT_REPORTS,
    help="Reports go to <output>/<suite>/report.html and report.pdf.",
)
@click.option(
    "--interactive",
    is_flag=True,
    help="Also write report_interactive.html: plotly figures (hover, toggle arms, zoom, parallel coordinates), offline.",
)
def report(target: Path, store_dir: Path | None, reports_dir: Path, interactive: bool) -> None:
    """Write the HTML and PDF report of a suite's stored results.

    \b
    Examples:
      harness report suites/optimizers.yaml
      harness report results/optimizers
      harness report suites/optimizers.yaml --interactive
    """
    from harness.report import write_report
    from harness.results_folder import open_results

    results, record = open_results(target, store_dir)
    html_path, pdf_path = write_report(results, reports_dir / record.name, record.document, interactive)
    click.echo(f"{html_path}\n{pdf_path}")
    if interactive:
        from harness.report.interactive import INTERACTIVE_NAME

        click.echo(str(html_path.parent / INTERACTIVE_NAME))
