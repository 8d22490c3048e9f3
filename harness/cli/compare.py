"""`harness compare A B`: two result sets side by side, B - A per arm and backend.

The table, its statistic and the forest plot are library code in harness.report.compare.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.common import DEFAULT_REPORTS
from harness.cli.options import path_argument, path_option


@click.command("compare")
@path_argument("first", "A")
@path_argument("second", "B")
@path_option(
    "--store-a", help="The store of A (default: results/ for a suite file, the parent folder for a results folder)."
)
@path_option("--store-b", help="The store of B (same default).")
@click.option("--metric", default=None, help="The final metric to compare (default: A's primary metric).")
@path_option(
    "--output", "-o", "output", help="Folder for compare.csv and compare.png (default: reports/compare_<A>_vs_<B>/)."
)
def compare(
    first: Path, second: Path, store_a: Path | None, store_b: Path | None, metric: str | None, output: Path | None
) -> None:
    """Compare two result sets (suite files or results folders) arm by arm: B - A with a 95% CI.

    Paired by seed on the seeds both ran, Welch's t interval otherwise: the rule of `harness check`.

    \b
    Examples:
      harness compare results/optimizers results_new/optimizers
      harness compare suites/optimizers.yaml results/optimizers_v2 --metric test_loss
    """
    from harness.analysis.environment import compare_environments, describe_differences
    from harness.report import figures
    from harness.report.compare import compare_results, comparison_figure, format_table
    from harness.results_folder import open_results  # the store and suite loader load only when the command runs

    results_a, record_a = open_results(first, store_a)
    results_b, record_b = open_results(second, store_b)
    table = compare_results(results_a, results_b, metric)
    output = output or DEFAULT_REPORTS / f"compare_{record_a.name}_vs_{record_b.name}"
    output.mkdir(parents=True, exist_ok=True)
    table.to_csv(output / "compare.csv", index=False)
    click.echo(f"A: {first} ({record_a.name})   B: {second} ({record_b.name})")
    for line in describe_differences(compare_environments(results_a.trials, results_b.trials)):
        click.echo(f"environments differ: {line}")
    if table.empty:
        click.echo("No (arm, backend) finished ok on both sides: nothing to compare.")
        return
    click.echo(format_table(table))
    figure = comparison_figure(table, name_a=str(first), name_b=str(second))
    (output / "compare.png").write_bytes(figures.figure_png(figure))
    click.echo(f"Wrote {output / 'compare.csv'} and {output / 'compare.png'}")
