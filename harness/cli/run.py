"""`harness run`: train every trial of a suite not yet in the store, then write and print the tables."""

from __future__ import annotations

import dataclasses
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
    "model, each recorded as its own trial with the results it has alone; off: every trial alone.",
)
@click.option("--report", "make_report", is_flag=True, help="Also write reports/<suite>/report.html and report.pdf.")
@path_option("--reports-dir", default=DEFAULT_REPORTS, help="Where --report writes (reports/<suite>/).")
def run(
    suite_path: Path,
    store_dir: Path,
    jobs: int | None,
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
      harness run suites/architectures.yaml --phase confirm   # only the confirmation seeds
    """
    from harness.results_folder import SuiteRecord, export_tables, record_results
    from harness.runner import check_executor, record_run, resolve_devices, run_trials, utc_now, with_device
    from harness.store import Store
    from harness.suite.load import select_phase

    if seeds is not None and phase != "all":
        raise click.UsageError("--seeds and --phase both choose the seeds to run; give one of them.")
    suite = load_checked_suite(suite_path, backends, seeds)
    if device is not None:
        suite = dataclasses.replace(suite, trials=with_device(suite.trials, device))
    check_executor(executor, num_cpus, num_gpus, address)  # bad Ray input fails before the store exists
    # 'auto' settled and GPUs checked here, before the hashes are taken (the store's keys, the manifest's)
    where = "--device" if device is not None else f"{suite_path}: device"
    suite = dataclasses.replace(suite, trials=resolve_devices(suite.trials, where, executor, num_gpus))
    if executor == "local":  # a trial too big for this machine's (or GPU's) memory; Ray trials run elsewhere
        from harness.capacity import check_trials_fit

        check_trials_fit(suite.trials, suite_path)
    if any(trial.spec.training.save_weights != "none" for trial in suite.trials):
        from harness.weights import check_weights_writable

        check_weights_writable(store_dir)  # before the store exists: an unwritable weights folder writes nothing
    # The manifest (and so the tables) keeps every seed of the suite: a phase run adds to the store's seeds.
    select_phase(suite, phase)  # a bad --phase fails here, before the store exists
    options = dict(
        jobs=jobs,
        rerun=rerun,
        quiet=quiet,
        executor=executor,
        address=address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        vectorize=vectorize,
    )
    searched = None
    with Store(store_dir) as store:  # validated input first: bad input writes nothing
        started_at = utc_now()  # the run's record (harness history): when, and what the store held already
        reused = set() if rerun else store.finished(trial.hash for trial in suite.trials)
        if suite.search is not None:  # rounds of search trials first, then each arm's chosen values (harness.search)
            from harness.runner import RunSummary
            from harness.search import plan_search

            outcome = plan_search(suite, store, run=lambda trials: run_trials(trials, store, **options))
            summaries = list(outcome.runs)
            searched = outcome
            if outcome.complete:
                suite = dataclasses.replace(suite, trials=outcome.final_trials)
                summaries.append(run_trials(select_phase(suite, phase).trials, store, **options))
            summary = RunSummary.combined(summaries) if summaries else run_trials((), store, **options)
        else:
            summary = run_trials(select_phase(suite, phase).trials, store, **options)
        if searched is not None and not searched.complete:
            suite = dataclasses.replace(suite, trials=())  # no final trials yet: only the search tables
        finished = not summary.interrupted and not summary.code_changed  # an unfinished run is finished by the next
        if finished and (searched is None or searched.complete):
            record_run(store, suite.trials, suite=suite.name, started_at=started_at, reused=reused, source=suite_path)
        record = SuiteRecord.from_suite(suite)
        results = record_results(record, store)
        written = export_tables(results, store_dir / suite.name, record)
    echo = click.echo
    if results.search is not None:
        from harness.analysis.text import search_text

        echo(search_text(results.search) + "\n")
    if searched is None or searched.complete:
        echo(results.summary_text())
        if suite.confirm_seeds:
            echo(f"{record.seed_roles()} (`harness check` judges the claims on the confirmation seeds)")
    elif not (summary.interrupted or summary.code_changed):
        echo(f"The search stopped before choosing: {searched.stopped}.", err=True)
    if summary.vectorized:
        echo(f"\n{summary.vectorized}")
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
