"""The Python API behind `harness run` and `harness.run`: load a suite checked end to end, run it, record it.

`harness run` (the CLI) and `harness.run(...)` (a notebook, a script) go through the same two
functions: `load_checked_suite` (the suite, with the blocks later stages read validated before
anything runs) and `run_suite` (devices settled, memory checked, trials run, the run recorded
with its commit, the tables written). The CLI adds its printing and exit codes; `harness.run`
adds a progress bar fit for a notebook and returns the `Results`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.analysis import Results
    from harness.results_folder import SuiteRecord
    from harness.runner import RunEvent, RunSummary
    from harness.suite import Suite


@dataclass(frozen=True)
class SuiteRun:
    """What `run_suite` did: the runner's summary, the suite's results and manifest, the tables folder."""

    summary: RunSummary
    results: Results
    record: SuiteRecord
    tables: Path
    suite: Suite  # as run: a search suite's trials are its arms' chosen configurations (none while undecided)
    search_stopped: str | None = None  # why a search stopped before choosing (interrupted, trials failed), else None


def load_checked_suite(
    path: str | Path,
    backends: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Suite:
    """Load a suite and check the blocks later stages read (report options, claims, check block), before
    anything runs.

    on_note receives what loading the data found out (a task inferred, sizes, plug-ins imported).

    Raises:
        HarnessError: the suite is invalid (every independent error, each with its file:line).
    """
    from harness.analysis.options import check_report_options
    from harness.check import parse_check_block, validate_claims
    from harness.data.user_datasets import take_notes
    from harness.errors import SpecError
    from harness.suite import load_suite
    from harness.suite.yaml_source import locate_message

    chosen_seeds = list(seeds) if seeds is not None and not isinstance(seeds, int) else seeds
    try:
        suite = load_suite(path, backends=list(backends or []) or None, seeds=chosen_seeds)
    finally:
        for note in take_notes():  # what the data turned out to be (task inferred, sizes), or plug-ins imported
            if on_note is not None:
                on_note(note)
    # Each arm's variant per axis: a per-axis reference ({optimizer: sgd}) picks each arm's reference by them.
    arm_labels = {trial.arm: dict(trial.cell) for trial in suite.trials}
    try:
        check_report_options(suite.report, suite.arms, where="report", arm_labels=arm_labels)
        validate_claims(suite.expect, suite.arms, where="expect")
        parse_check_block(suite.check, where="check")
        check_validation_reads(suite)
    except SpecError as error:
        # The checkers know the key path, not the file: give the error its file:line like any suite error.
        raise locate_message(Path(path), str(error), type(error)) from None
    return suite


def check_validation_reads(suite: Suite) -> None:
    """A time-to-target target, primary metric or claim that reads a validation metric needs a validation
    split in every arm's dataset (else it could only ever read NaN: never reached, a claim that cannot pass).

    Raises:
        SpecError: naming the key and the first arm whose dataset has none.
    """
    from harness.errors import SpecError
    from harness.measures import AT_BEST_VALIDATION_PREFIX, VALIDATION_SPLIT

    without = next((trial.arm for trial in suite.trials if trial.spec.dataset.validation <= 0), None)
    if without is None:
        return

    def reads_validation(name: str) -> bool:
        bare = name.removeprefix("final_").removeprefix("best_")
        return bare.startswith(f"{VALIDATION_SPLIT}_") or name.startswith(AT_BEST_VALIDATION_PREFIX)

    targets = suite.report.get("targets") or {}
    reads = [f"report.targets.{name}" for name in targets if isinstance(name, str) and reads_validation(name)]
    metric = suite.report.get("metric")
    if isinstance(metric, str) and reads_validation(metric):
        reads.append("report.metric")
    from harness.check.claims import parse_claim

    for index, text in enumerate(suite.expect):
        if any(reads_validation(operand.metric) for operand in parse_claim(text).operands):
            reads.append(f"expect[{index}]")
    if reads:
        raise SpecError(
            f"{reads[0]}: reads a validation metric, and arm {without!r} has no validation split (its dataset's "
            "validation is 0), so it would never have a value. Give the dataset one, e.g. dataset: {name: digits, "
            "validation: 0.2}, or use a test or train metric."
        )


def run_suite(
    suite: Suite,
    suite_path: str | Path,
    store_dir: str | Path,
    *,
    jobs: int | None = None,
    rerun: bool = False,
    quiet: bool = False,
    device: str | None = None,
    executor: str = "local",
    address: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    vectorize: str = "auto",
    threads: int | None = None,
    phase: str = "all",
    on_event: Callable[[RunEvent], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> SuiteRun:
    """Run every trial of a loaded suite not yet in the store, record the run, write the tables.

    A suite with a `search:` block runs its search rounds first (harness.search), then each arm's
    chosen configuration on the suite's seeds.

    Args:
        suite: from `load_checked_suite`.
        suite_path: its file (named in messages; its git checkout is the run's commit).
        store_dir: the store folder (harness.sqlite, and the tables in <store>/<suite>/).
        jobs, rerun, quiet, executor, address, num_cpus, num_gpus, vectorize, threads, on_event: as
            `harness.runner.run_trials`.
        device: cpu, auto, cuda or cuda:N, overriding the suite's `device`.
        phase: all, explore or confirm: which of the suite's seeds run (the tables keep every seed).
        on_start: called with the number of trials to run (those not in the store), before the first
            starts (for a search suite: before its final trials).

    Raises:
        HarnessError: bad options, a GPU the machine lacks, a trial too big for its memory, a store
            that cannot be used; nothing is written then.
    """
    from harness.runner import (
        RunSummary,
        TrialRunner,
        check_executor,
        record_run,
        resolve_devices,
        utc_now,
        with_device,
    )
    from harness.store import Store
    from harness.suite.load import select_phase

    store_dir = Path(store_dir)
    if device is not None:
        suite = dataclasses.replace(suite, trials=with_device(suite.trials, device))
    check_executor(executor, num_cpus, num_gpus, address, threads)  # bad Ray input fails before the store exists
    # 'auto' settled and GPUs checked here, before the hashes are taken (the store's keys, the manifest's)
    where = "--device" if device is not None else f"{suite_path}: device"
    suite = dataclasses.replace(suite, trials=resolve_devices(suite.trials, where, executor, num_gpus))
    if executor == "local":  # a trial too big for this machine's (or GPU's) memory; Ray trials run elsewhere
        from harness.capacity import check_trials_fit

        check_trials_fit(suite.trials, Path(suite_path))
    if any(trial.spec.training.save_weights != "none" for trial in suite.trials):
        from harness.weights import check_weights_writable

        check_weights_writable(store_dir)  # before the store exists: an unwritable weights folder writes nothing
    # The manifest (and so the tables) keeps every seed of the suite: a phase run adds to the store's seeds.
    select_phase(suite, phase)  # a bad phase fails here, before the store exists
    # One set of workers for the whole command: the search rounds, their phases and the final trials
    # (harness.runner.TrialRunner keeps idle workers warm between the calls).
    # The tables' imports (~0.5-1 s: pandas, scipy.stats, the analysis) run in a thread while workers work: after
    # the run they would add to the command, and before the first dispatch they would delay it (workers started
    # at the command's first line, harness.runner.early, are ready before they end). Cold workers: the thread
    # starts with them, beside their framework imports; warm workers only (harness workers): once the first
    # trial is on its way.
    tables = threading.Thread(target=_import_tables, daemon=True)

    def observe(event: RunEvent) -> None:
        if event.kind == "dispatched" and warm_only and tables.ident is None:  # ident: set once started
            tables.start()
        if on_event is not None:
            on_event(event)

    warm_only = False
    runner = TrialRunner(
        jobs=jobs,
        rerun=rerun,
        quiet=quiet,
        on_event=observe,
        executor=executor,
        address=address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        vectorize=vectorize,
        threads=threads,
    )

    def run_final(trials: Sequence[Any]) -> RunSummary:
        if on_start is not None:
            on_start(
                len({trial.hash for trial in trials} - (set() if rerun else store.finished(t.hash for t in trials)))
            )
        return runner.run(trials, store)

    search_stopped = None
    with Store(store_dir) as store, runner:  # validated input first: bad input writes nothing
        started_at = utc_now()  # the run's record (harness history): when, and what the store held already
        reused = set() if rerun else store.finished(trial.hash for trial in suite.trials)
        # Workers start now (or are taken over: harness.runner.early, harness workers).
        if suite.search is not None:  # searched on the suite's first backend
            cold = runner.start([trial for trial in suite.trials if trial.spec.backend == suite.backends[0]])
        else:
            cold = runner.start([trial for trial in select_phase(suite, phase).trials if trial.hash not in reused])
        if cold and suite.search is None:
            tables.start()
        elif cold:  # a search imports the analysis in this thread as it plans: no second importer beside it
            import harness.results_folder  # noqa: F401
        warm_only = not cold and suite.search is None
        if suite.search is not None:  # rounds of search trials first, then each arm's chosen values (harness.search)
            from harness.search import plan_search

            outcome = plan_search(suite, store, run=lambda trials: runner.run(trials, store))
            summaries = list(outcome.runs)
            if outcome.complete:
                suite = dataclasses.replace(suite, trials=outcome.final_trials)
                summaries.append(run_final(select_phase(suite, phase).trials))
            else:
                suite = dataclasses.replace(suite, trials=())  # no final trials yet: only the search tables
                search_stopped = str(outcome.stopped)
            summary = RunSummary.combined(summaries) if summaries else runner.run((), store)
        else:
            summary = run_final(select_phase(suite, phase).trials)
        runner.close()  # the workers are done: their memory and cores are free while the tables are written
        if tables.ident is not None:
            tables.join()
        from harness.results_folder import SuiteRecord, export_tables, record_results

        finished = not summary.interrupted and not summary.code_changed  # an unfinished run is finished by the next
        if finished and search_stopped is None:
            record_run(store, suite.trials, suite=suite.name, started_at=started_at, reused=reused, source=suite_path)
        record = SuiteRecord.from_suite(suite)
        results = record_results(record, store)
        written = export_tables(results, store_dir / suite.name, record)
    return SuiteRun(summary, results, record, written, suite, search_stopped)


def _import_tables() -> None:
    """The tables' modules, imported in a thread; a failure is left for the run's own import to raise."""
    try:
        import harness.results_folder  # noqa: F401
    except Exception:
        pass


def notebook_progress() -> tuple[Callable[[int], None], Callable[[RunEvent], None], Callable[[], None]]:
    """A tqdm progress bar (tqdm.auto: a widget in Jupyter, text elsewhere) as (on_start, on_event, close);
    no-ops where tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return (lambda total: None), (lambda event: None), (lambda: None)
    bars: list[Any] = []

    def start(total: int) -> None:
        bars.append(tqdm(total=total, unit="trial", desc="trials"))

    def observe(event: RunEvent) -> None:
        if bars and event.kind in ("finished", "elsewhere"):
            status = event.result.status if event.result is not None else "elsewhere"
            bars[0].set_postfix_str(
                f"{event.trial.arm} {event.trial.spec.backend} seed {event.trial.spec.seed}: {status}"
            )
            bars[0].update(1)

    def close() -> None:
        for bar in bars:
            bar.close()

    return start, observe, close
