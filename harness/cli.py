"""The `harness` command: a thin click layer over the library.

Exit codes: 0 success; 1 a check or parity disagreement; 2 bad input (suite, flags,
store path, missing extra), printed without a traceback; 3 some trials failed or timed
out; 130 interrupted (Ctrl-C; run again to resume).
`harness --help` and `harness validate` import no deep-learning framework.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from harness import __version__
from harness.errors import HarnessError

EXIT_OK, EXIT_DISAGREE, EXIT_USAGE, EXIT_TRIALS_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_STORE = Path("results")

EPILOG = """\b
Exit codes: 0 success, 1 check/parity disagreement, 2 bad input (no traceback,
nothing written), 3 some trials failed or timed out, 130 interrupted (run again to resume).
"""


def load_checked_suite(path: Path, backends: Sequence[str] | None = None, seeds: str | None = None):  # -> Suite
    """Load a suite and check the blocks later stages read (report options), before anything runs."""
    from harness.analysis import check_report_options
    from harness.errors import SpecError
    from harness.suite import load_suite

    suite = load_suite(path, backends=list(backends or []) or None, seeds=_seeds_option(seeds))
    from harness.check import parse_check_block, validate_claims

    try:
        check_report_options(suite.report, suite.arms, where="report")
        validate_claims(suite.expect, suite.arms, where="expect")
        parse_check_block(suite.check, where="check")
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
    return suite


def _seeds_option(value: str | None) -> int | list[int] | None:
    if value is None:
        return None
    try:
        if "," in value:
            return [int(part) for part in value.split(",") if part.strip()]
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a count such as 3 or a list such as 0,1,2, got {value!r}") from None


class HarnessGroup(click.Group):
    """Turns a HarnessError (bad input) into its message on stderr and exit code 2, no traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HarnessError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


@click.group(cls=HarnessGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """Compare deep-learning models, optimizers and training choices, with seeds and confidence intervals.

    Write an experiment once as a YAML suite; `harness run` trains every cell of its
    grid for every seed and backend, stores every result, and prints a summary.
    """


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=click.Path(path_type=Path))
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=DEFAULT_STORE, show_default=True,
              help="Folder for the SQLite store (harness.sqlite) and the exported tables (<store>/<suite>/).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the number of cores), each reused and pinned to cores/jobs threads; "
                   "with --executor ray, trials at once (default: as many as the cluster's CPUs/GPUs hold).")
@click.option("--backend", "backends", multiple=True, metavar="NAME",
              help="Run only these backends (repeatable), overriding the suite's `backends`.")
@click.option("--seeds", "seeds", default=None, metavar="N|LIST",
              help="Override the suite's seeds: a count (3) or a list (0,1,2).")
@click.option("--rerun", is_flag=True, help="Run trials again even when the store has their result.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--device", default=None, metavar="DEVICE",
              help="cpu, auto (a GPU when the backend sees one), cuda or cuda:N; overrides the suite's `device`.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: worker processes here; ray: actors on a Ray cluster (pip install \"harness[ray]\").")
@click.option("--address", default=None, metavar="ADDR",
              help="Ray cluster address (auto, host:port, ray://host:port); default RAY_ADDRESS, else a new local Ray.")
@click.option("--num-cpus", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Ray: CPUs each trial reserves (default 1).")
@click.option("--num-gpus", type=click.FloatRange(min=0), default=None, help="Ray: GPUs each trial reserves (default 0).")
@click.option("--report", "make_report", is_flag=True, help="Also write reports/<suite>/report.html and report.pdf.")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True,
              help="Where --report writes (reports/<suite>/).")
def run(suite_path: Path, store_dir: Path, jobs: int | None, backends: Sequence[str], seeds: str | None,
        rerun: bool, quiet: bool, device: str | None, executor: str, address: str | None, num_cpus: float | None,
        num_gpus: float | None, make_report: bool, reports_dir: Path) -> None:
    """Run every trial of SUITE not yet in the store, then write and print the tables.

    \b
    Example:
      harness run suites/optimizers.yaml --jobs 2
    """
    from harness.results import SuiteRecord, export_tables, record_results
    from harness.runner import run_trials
    from harness.store import Store

    import dataclasses

    from harness.runner import check_executor, with_device

    suite = load_checked_suite(suite_path, backends, seeds)
    if device is not None:
        suite = dataclasses.replace(suite, trials=with_device(suite.trials, device))
    check_executor(executor, num_cpus, num_gpus, address)  # bad Ray input fails before the store exists
    with Store(store_dir) as store:  # validated input first: bad input writes nothing
        summary = run_trials(suite.trials, store, jobs=jobs, rerun=rerun, quiet=quiet, executor=executor,
                             address=address, num_cpus=num_cpus, num_gpus=num_gpus)
        record = SuiteRecord.from_suite(suite)
        results = record_results(record, store)
        written = export_tables(results, store_dir / suite.name, record)
    echo = click.echo
    echo(results.summary_text())
    echo(
        f"\n{summary.total} trials: {summary.skipped} already in the store, "
        + (f"{summary.elsewhere} run by another process, " if summary.elsewhere else "")
        + f"{summary.ok} ok, "
        f"{summary.diverged} diverged, {summary.failed} failed, {summary.timeout} timed out "
        f"({summary.wall_seconds:.1f} s). Tables: {written}"
    )
    if make_report and not results.trials.empty:
        from harness.report import write_report

        html_path, pdf_path = write_report(results, reports_dir / suite.name, record.document)
        echo(f"Report: {html_path}  {pdf_path}")
    if summary.interrupted:
        echo(f"Interrupted. Finished trials are saved; resume with: harness run {suite_path} --store {store_dir}", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    if summary.failed or summary.timeout:
        echo("Some trials failed or timed out; see the 'error' column of final.csv.", err=True)
        raise SystemExit(EXIT_TRIALS_FAILED)


@cli.command()
@click.argument("suite_paths", metavar="SUITE...", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(suite_paths: Sequence[Path]) -> None:
    """Check suites without training: schema, names, grid, shapes, backends.

    \b
    Example:
      harness validate suites/*.yaml
    """
    failures = 0
    for path in suite_paths:
        try:
            suite = load_checked_suite(path)
        except HarnessError as error:
            failures += 1
            click.echo(f"error: {error}", err=True)
            continue
        per_arm = len(suite.backends) * len(suite.seeds)
        click.echo(
            f"ok  {path}: {suite.name!r}, {len(suite.arms)} arms x {len(suite.backends)} backends "
            f"({', '.join(suite.backends)}) x {len(suite.seeds)} seeds = {len(suite.trials)} trials"
        )
        for arm in suite.arms:
            click.echo(f"      {arm}  ({per_arm} trials)")
    if failures:
        raise SystemExit(EXIT_USAGE)


@cli.command()
@click.argument("target", metavar="SUITE_OR_RESULTS", type=click.Path(path_type=Path))
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
              help="The store folder (default: results/ for a suite file, the parent of a results folder).")
@click.option("--output", "-o", "reports_dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True,
              help="Reports go to <output>/<suite>/report.html and report.pdf.")
def report(target: Path, store_dir: Path | None, reports_dir: Path) -> None:
    """Write the HTML and PDF report of a suite's stored results.

    \b
    Examples:
      harness report suites/optimizers.yaml
      harness report results/optimizers
    """
    from harness.report import write_report
    from harness.results import open_results

    results, record = open_results(target, store_dir)
    html_path, pdf_path = write_report(results, reports_dir / record.name, record.document)
    click.echo(f"{html_path}\n{pdf_path}")


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=click.Path(path_type=Path))
@click.option("--backend", "backends", multiple=True, metavar="NAME",
              help="Backends to compare (repeatable; default: the suite's, at least two). The first is the reference.")
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
    results = parity_for_suite(suite, steps=steps, backends=list(backends) or None)
    width = max(len(result.label) for result in results)
    click.echo(f"{'arm':<{width}}  backends          steps  max|dloss|  max|dparam|  verdict")
    for result in results:
        verdict = "agree" if result.passed else "DISAGREE"
        click.echo(f"{result.label:<{width}}  {' vs '.join(result.backends):<16}  {result.steps:>5}  "
                   f"{result.max_loss_delta:>10.2e}  {result.max_param_delta:>11.2e}  {verdict}")
    notes = sorted({result.note for result in results if result.note})
    for note in notes:
        click.echo(f"note: {note}")
    failed = [result for result in results if not result.passed]
    for result in failed:
        click.echo(result.message(), err=True)
    click.echo(f"{len(results) - len(failed)}/{len(results)} arms agree.")
    if failed:
        raise SystemExit(EXIT_DISAGREE)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["all", "suites", "datasets", "components", "backends"]), default="all")
@click.option("--suites-dir", type=click.Path(path_type=Path), default=Path("suites"), show_default=True)
def list_command(what: str, suites_dir: Path) -> None:
    """List shipped suites, datasets, components (with their canonical formulas) and backends.

    \b
    Example:
      harness list components
    """
    from harness.listing import list_backends, list_components, list_datasets_text, list_suites

    sections = {
        "suites": lambda: list_suites(suites_dir),
        "datasets": list_datasets_text,
        "components": list_components,
        "backends": list_backends,
    }
    for name, render in sections.items():
        if what in ("all", name):
            click.echo(render())


def _register_commands() -> None:
    from harness.check.commands import baseline, check
    from harness.report.compare import compare

    cli.add_command(baseline)
    cli.add_command(check)
    cli.add_command(compare)


_register_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`harness`, `python -m harness`)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="harness")


if __name__ == "__main__":  # pragma: no cover
    main()
