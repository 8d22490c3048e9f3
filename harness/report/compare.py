"""`harness compare A B`: two result sets side by side, per arm and backend.

Each side is a suite YAML file (read from its store) or a results folder (`results/<suite>/`),
opened with `harness.results.open_results`. For every (arm, backend) present on both sides, the
difference B - A of a final metric (default: A's primary metric) over the trials that finished
'ok', with its 95% CI:

- paired by seed (`harness.analysis.statistics.paired_test`, a paired t interval) when both
  sides ran the same set of seeds (at least two): the seeds pair the runs, as in a
  before/after comparison of one change;
- Welch's unequal-variance t interval (`welch_test`) otherwise.

Writes `compare.csv` and `compare.png` (a forest plot) into `--output` and prints the table.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # registering the command in the CLI must not load scipy or matplotlib
    import pandas as pd
    from matplotlib.figure import Figure

    from harness.analysis import Results

COLUMNS = ["arm", "backend", "metric", "test", "n_a", "n_b", "mean_a", "mean_b", "mean_difference", "ci_low", "ci_high",
           "p_value"]
MIN_PAIRS = 2  # a paired t interval needs two differences


def _ok_values(results: Results, metric: str) -> pd.DataFrame:
    final = results.final()
    final = final[final["status"] == "ok"]
    return final[["arm", "backend", "seed", metric]]


def compare_results(first: Results, second: Results, metric: str | None = None) -> pd.DataFrame:
    """Per (arm, backend) on both sides: B - A of `metric` with a 95% CI (columns COLUMNS).

    `test` is 'paired' (same seed set on both sides, >= 2 seeds; n_a = n_b = pairs) or 'welch'.
    Arms are in A's order, then B's arms not in A; an (arm, backend) missing on either side is left out.

    Raises:
        SpecError: `metric` was not recorded on one of the sides.
    """
    import pandas as pd

    from harness.analysis.options import check_metric_name
    from harness.analysis.statistics import paired_test, welch_test

    metric = metric or first.primary_metric
    for side, results in (("A", first), ("B", second)):
        check_metric_name(metric, {*results.metric_names, "train_seconds"}, f"compare --metric (result set {side})")
    values_a, values_b = _ok_values(first, metric), _ok_values(second, metric)
    arms = list(dict.fromkeys([*first.arms, *second.arms]))
    backends = list(dict.fromkeys([*first.backends, *second.backends]))
    rows = []
    for arm in arms:
        for backend in backends:
            part_a = values_a[(values_a["arm"] == arm) & (values_a["backend"] == backend)].set_index("seed")[metric]
            part_b = values_b[(values_b["arm"] == arm) & (values_b["backend"] == backend)].set_index("seed")[metric]
            if part_a.empty or part_b.empty:
                continue
            row = {"arm": arm, "backend": backend, "metric": metric,
                   "mean_a": float(part_a.mean()), "mean_b": float(part_b.mean())}
            if set(part_a.index) == set(part_b.index) and len(part_a) >= MIN_PAIRS:
                seeds = sorted(part_a.index)
                test = paired_test(part_b.loc[seeds].to_numpy(), part_a.loc[seeds].to_numpy())
                row.update(test="paired", n_a=int(test["n_pairs"]), n_b=int(test["n_pairs"]))
            else:
                test = welch_test(part_b.to_numpy(), part_a.to_numpy())
                row.update(test="welch", n_a=int(test["n_baseline"]), n_b=int(test["n_current"]))
            row.update(mean_difference=float(part_b.mean() - part_a.mean()), ci_low=test["ci_low"],
                       ci_high=test["ci_high"], p_value=test["p_value"])
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def comparison_figure(table: pd.DataFrame, *, name_a: str, name_b: str) -> Figure:
    """Forest plot of B - A per arm (a marker per backend), 95% CI; filled markers: CI excludes 0."""
    from harness.report import figures

    metric = table["metric"].iloc[0] if len(table) else "metric"
    excludes_zero = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    return figures._interval_plot(  # noqa: SLF001 - the shared point-and-interval layout of the report
        table, value="mean_difference", low="ci_low", high="ci_high", arms=list(dict.fromkeys(table["arm"])),
        backends=list(dict.fromkeys(table["backend"])), zero_line=True, filled=excludes_zero,
        title=f"{name_b} - {name_a} (filled: 95% CI excludes 0)", xlabel=f"{metric}: B - A")


def _format(table: pd.DataFrame) -> str:
    import numpy as np

    shown = table.copy()
    for column in ("mean_a", "mean_b", "mean_difference", "ci_low", "ci_high"):
        shown[column] = shown[column].map(lambda v: f"{v:.4g}" if np.isfinite(v) else "nan")
    shown["p_value"] = shown["p_value"].map(lambda v: f"{v:.3g}" if np.isfinite(v) else "nan")
    return shown.to_string(index=False)


@click.command("compare")
@click.argument("first", metavar="A", type=click.Path(path_type=Path))
@click.argument("second", metavar="B", type=click.Path(path_type=Path))
@click.option("--store-a", type=click.Path(path_type=Path), default=None,
              help="The store of A (default: results/ for a suite file, the parent folder for a results folder).")
@click.option("--store-b", type=click.Path(path_type=Path), default=None, help="The store of B (same default).")
@click.option("--metric", default=None, help="The final metric to compare (default: A's primary metric).")
@click.option("--output", "-o", "output", type=click.Path(path_type=Path), default=None,
              help="Folder for compare.csv and compare.png (default: reports/compare_<A>_vs_<B>/).")
def compare(first: Path, second: Path, store_a: Path | None, store_b: Path | None, metric: str | None,
            output: Path | None) -> None:
    """Compare two result sets (suite files or results folders) arm by arm: B - A with a 95% CI.

    Paired by seed where both ran the same seeds, Welch's t interval otherwise.

    \b
    Examples:
      harness compare results/optimizers results_new/optimizers
      harness compare suites/optimizers.yaml results/optimizers_v2 --metric test_loss
    """
    from harness.report import figures
    from harness.results import open_results  # the store and suite loader load only when the command runs

    results_a, record_a = open_results(first, store_a)
    results_b, record_b = open_results(second, store_b)
    table = compare_results(results_a, results_b, metric)
    output = output or Path("reports") / f"compare_{record_a.name}_vs_{record_b.name}"
    output.mkdir(parents=True, exist_ok=True)
    table.to_csv(output / "compare.csv", index=False)
    click.echo(f"A: {first} ({record_a.name})   B: {second} ({record_b.name})")
    if table.empty:
        click.echo("No (arm, backend) finished ok on both sides: nothing to compare.")
        return
    click.echo(_format(table))
    figure = comparison_figure(table, name_a=str(first), name_b=str(second))
    (output / "compare.png").write_bytes(figures.figure_png(figure))
    click.echo(f"Wrote {output / 'compare.csv'} and {output / 'compare.png'}")
