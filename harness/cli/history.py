"""`harness history`: each arm's metric over the stored runs of a suite, steps flagged as `check` would."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import path_option, store_option, suite_or_results_argument


@click.command()
@suite_or_results_argument()
@click.option(
    "--metric", default=None, metavar="NAME", help="The metric followed (default: the suite's primary metric)."
)
@click.option(
    "--tolerance",
    default=None,
    metavar="TOL",
    help="A step's tolerance: absolute (0.01) or relative (1%) (default: the suite's `check:` for the metric, else 1%).",
)
@click.option("--min-seeds", type=int, default=None, help="Seeds a side needs for a WITHIN step (default 3).")
@path_option(
    "--output",
    "-o",
    "output",
    help="Also write <output>/history.csv and history.png (the figure needs the report extra).",
)
@store_option()
def history(
    target: Path,
    metric: str | None,
    tolerance: str | None,
    min_seeds: int | None,
    output: Path | None,
    store_dir: Path | None,
) -> None:
    """Show each arm's metric over the stored runs of SUITE_OR_RESULTS, with the commit of each run.

    Every `harness run` is recorded with its suite checkout's git commit and the trials it trained
    or reused; each run is checked against the one before it with `harness check`'s statistics
    (paired by seed, the tolerance as a region of equivalence, Holm over arms): REGRESSED,
    IMPROVED, WITHIN or INCONCLUSIVE.

    \b
    Examples:
      harness history suites/smoke.yaml
      harness history results/smoke --metric test_loss --tolerance 0.02 -o reports/smoke
    """
    from harness.check.history import RunHistory, history_table, history_text
    from harness.check.options import merge_options, parse_check_block, parse_tolerance
    from harness.errors import HarnessError
    from harness.results_folder import open_results
    from harness.store import Store

    results, record = open_results(target, store_dir)
    options = merge_options(parse_check_block(record.check, "check"), (), min_seeds, None)
    chosen = metric or results.primary_metric
    if chosen not in results.metric_names:
        raise HarnessError(
            f"--metric: {chosen!r} is not a metric of suite {record.name!r}; its metrics: {', '.join(results.metric_names)}."
        )
    limit = (
        parse_tolerance(tolerance, "--tolerance")
        if tolerance is not None
        else options.resolved_metrics(chosen).get(chosen) or parse_tolerance("1%", "default")
    )
    with Store(_store_folder(target, store_dir)) as store:
        runs = RunHistory.read(store, record.name)
    if runs.runs.empty:
        raise HarnessError(
            f"history: the store holds no recorded run of suite {record.name!r} (runs are recorded by `harness run` "
            "from store schema 6 on). Fix: run the suite with `harness run`."
        )
    table = history_table(runs, results, chosen, limit, options.min_seeds)
    click.echo(history_text(table, chosen, limit))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        table.to_csv(output / "history.csv", index=False)
        from harness.report.history_figure import history_figure

        history_figure(table, chosen).savefig(output / "history.png", dpi=120)
        click.echo(f"{output / 'history.csv'}\n{output / 'history.png'}")


def _store_folder(target: Path, store_dir: Path | None) -> Path:
    """The store as `open_results` found it: --store, else a results folder's parent, else results/."""
    from harness.cli.common import DEFAULT_STORE

    if store_dir is not None:
        return store_dir
    return Path(target).parent if Path(target).is_dir() else DEFAULT_STORE
