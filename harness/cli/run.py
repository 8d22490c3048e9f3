"""`harness run`: train every trial of a suite not yet in the store, then write and print the tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from harness.cli.common import (
    DEFAULT_REPORTS,
    DEFAULT_STORE,
    EXIT_CODE_CHANGED,
    EXIT_INTERRUPTED,
    EXIT_TRIALS_FAILED,
    load_checked_suite,
)
from harness.cli.options import backend_option, path_argument, path_option, store_option


@click.command()
@path_argument("suite_path", "SUITE")
@store_option(
    help="Folder for the SQLite store (harness.sqlite) and the exported tables (<store>/<suite>/).",
    default=DEFAULT_STORE,
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of cores), each reused and pinned to cores/jobs threads; "
    "with --executor ray, trials at once (default: as many as the cluster's CPUs/GPUs hold).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Intra-op threads each local worker is pinned to (default: cores/jobs). A trial's train_seconds "
    "depends on it: pin it (e.g. --threads 1) to compare timings of runs made with different --jobs.",
)
@backend_option(help="Run only these backends (repeatable), overriding the suite's `backends`.")
@click.option(
    "--seeds",
    "seeds",
    default=None,
    metavar="N|LIST",
    help="Override the suite's seeds: a count (3) or a list (0,1,2). Claims are still judged on the "
    "suite's confirmation seeds.",
)
@click.option(
    "--phase",
    type=click.Choice(["all", "explore", "confirm"]),
    default="all",
    show_default=True,
    help="With seeds: {explore: ..., confirm: ...}: run only that seed set (CI: --phase confirm, then "
    "`harness check`, which judges claims on the confirmation seeds).",
)
@click.option("--rerun", is_flag=True, help="Run trials again even when the store has their result.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--device",
    default=None,
    metavar="DEVICE",
    help="cpu, auto (cuda when the run has a GPU, else cpu; settled before trials are hashed), cuda or cuda:N; "
    "overrides the suite's `device`. A GPU the run lacks is refused before anything runs.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help='local: worker processes here; ray: actors on a Ray cluster (pip install "harness[ray]").',
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="Ray cluster address (auto, host:port, ray://host:port); default RAY_ADDRESS, else a new local Ray.",
)
@click.option(
    "--num-cpus",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Ray: CPUs each trial reserves (default 1).",
)
@click.option(
    "--num-gpus", type=click.FloatRange(min=0), default=None, help="Ray: GPUs each trial reserves (default 0)."
)
@click.option(
    "--vectorize",
    type=click.Choice(["auto", "off"]),
    default="auto",
    show_default=True,
    help="auto: trials differing only in seed and scalar hyperparameters (torch MLPs) train as one stacked "
    "model, each recorded as its own trial, with the numbers it gets in any group of any size; off: every "
    "trial alone on the framework's own layers (equal to auto within float32 rounding, not bit for bit: "
    "keep one mode per store).",
)
@click.option("--report", "make_report", is_flag=True, help="Also write reports/<suite>/report.html and report.pdf.")
@path_option("--reports-dir", default=DEFAULT_REPORTS, help="Where --report writes (reports/<suite>/).")
def run(
    suite_path: Path,
    store_dir: Path,
    jobs: int | None,
    threads: int | None,
    backends: Sequence[str],
    seeds: str | None,
    phase: str,
    rerun: bool,
    quiet: bool,
    device: str | None,
    executor: str,
    address: str | None,
    num_cpus: float | None,
    num_gpus: float | None,
    vectorize: str,
    make_report: bool,
    reports_dir: Path,
) -> None:
    """Run every trial of SUITE not yet in the store, then write and print the tables.

    \b
    Example:
      harness run suites/optimizers.yaml --jobs 2
      harness run suites/optimizers.yaml --jobs 2 --threads 1   # timings comparable across --jobs
      harness run suites/architectures.yaml --phase confirm   # only the confirmation seeds
    """
    if executor == "local":  # workers import torch while this process reads the suite (harness.runner.early)
        from harness.runner import early

        click.get_current_context().call_on_close(early.discard)  # first: whatever ends the command
        early.start(jobs, threads)
    from harness.api import run_suite

    if seeds is not None and phase != "all":
        raise click.UsageError("--seeds and --phase both choose the seeds to run; give one of them.")
    done = run_suite(
        load_checked_suite(suite_path, backends, seeds),
        suite_path,
        store_dir,
        jobs=jobs,
        rerun=rerun,
        quiet=quiet,
        device=device,
        executor=executor,
        address=address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        vectorize=vectorize,
        threads=threads,
        phase=phase,
    )
    summary, results, record, written, suite = done.summary, done.results, done.record, done.tables, done.suite
    echo = click.echo
    if results.search is not None:
        from harness.analysis.text import search_text

        echo(search_text(results.search) + "\n")
    if done.search_stopped is None:
        echo(results.summary_text())
        if suite.confirm_seeds:
            echo(f"{record.seed_roles()} (`harness check` judges the claims on the confirmation seeds)")
    elif not (summary.interrupted or summary.code_changed):
        echo(f"The search stopped before choosing: {done.search_stopped}.", err=True)
    if summary.vectorized:
        echo(f"\n{summary.vectorized}")
    if summary.warm_workers:
        echo(f"workers: {summary.warm_workers} warm from the worker server (`harness workers status`)")
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
        echo(
            f"Interrupted. Finished trials are saved; resume with: harness run {suite_path} --store {store_dir}",
            err=True,
        )
        raise SystemExit(EXIT_INTERRUPTED)
    if summary.code_changed:
        settled = summary.skipped + summary.elsewhere + summary.ok + summary.diverged + summary.failed + summary.timeout
        echo(
            f"Stopped: {summary.code_changed}. {summary.total - settled} trial(s) were not run and are not recorded "
            "(those finished are saved). Run the same command again to finish them with the code now on disk: "
            f"harness run {suite_path} --store {store_dir}",
            err=True,
        )
        raise SystemExit(EXIT_CODE_CHANGED)
    if summary.failed or summary.timeout:
        echo("Some trials failed or timed out; see the 'error' column of final.csv.", err=True)
        raise SystemExit(EXIT_TRIALS_FAILED)
