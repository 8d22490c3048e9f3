"""`harness check`: results vs a baseline and the suite's `expect:` claims; exit 1 on a regression.

The gate, the claims and the rendering are library code in harness.check; heavy imports (pandas,
scipy) happen inside the command, so `harness --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli.options import path_option, store_option, suite_or_results_argument
from harness.errors import HarnessError
from harness.exit_codes import EXIT_INCONCLUSIVE

if TYPE_CHECKING:  # pandas loads only when the command runs
    import pandas as pd

    from harness.analysis import Results
    from harness.check.baseline import Baseline
    from harness.check.options import CheckOptions
    from harness.check.render import ClaimSeeds
    from harness.results_folder import SuiteRecord

CHECK_EPILOG = """\b
Exit codes:
  0  nothing failed: every checked metric WITHIN its tolerance (or IMPROVED, NEW)
     and every claim holds; or some row INCONCLUSIVE / claim undecided, which the
     result line says (`result: INCONCLUSIVE`, never PASS)
  1  a metric REGRESSED or is MISSING from the results, or a claim is false
  2  bad input: suite, flags, store, or the baseline file (missing, truncated,
     another schema version, another suite's); nothing is compared
  3  some checked trials failed, diverged or timed out (takes precedence over 1)
  5  --strict only: some row INCONCLUSIVE or claim undecided (1 and 3 take precedence)

\b
Verdicts, per arm x backend x metric (the tolerance is a region of practical
equivalence; two one-sided t tests at 5%, paired by seed when seeds match,
Welch otherwise):
  WITHIN        shown not worse than the tolerance allows
  REGRESSED     shown worse beyond the tolerance (Holm-corrected over the rows
                that can fail)
  IMPROVED      shown better beyond the tolerance (does not fail)
  INCONCLUSIVE  neither: the seeds cannot tell. Prints the smallest change these
                seeds detect (80% power) and about how many seeds would decide
                it; also fewer than --min-seeds seeds (never WITHIN), seeds that
                agree exactly, and speed across different CPUs/versions
  MISSING       in the baseline, not in the results (fails)
  NEW           in the results, not in the baseline (does not fail)

\b
Metrics checked: the suite's `check:` block plus --fail-on (the CLI wins);
when neither names one: the primary metric at 1% and train_seconds at 20%.
"""


@click.command(name="check", epilog=CHECK_EPILOG)
@suite_or_results_argument()
@path_option(
    "--baseline",
    "baseline_path",
    help="Baseline file from `harness baseline save`. Optional when the suite has `expect:` claims.",
)
@click.option(
    "--against-last",
    "against_last",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Instead of a baseline file: the N runs of the suite stored before the latest one (`harness history`), "
    "each seed's value averaged over them.",
)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="METRIC:TOL",
    help="Check METRIC with this tolerance: absolute (test_accuracy:0.01) or relative (train_seconds:20%). "
    "Repeatable; overrides the suite's `check:` for that metric.",
)
@click.option(
    "--min-seeds",
    type=int,
    default=None,
    help="Seeds needed on each side for a WITHIN verdict (default 3, or the suite's check.min_seeds); "
    "fewer can still show a regression.",
)
@click.option(
    "--few-seeds",
    type=click.Choice(["pass", "tolerance"]),
    default=None,
    help="Rows the seeds cannot test (fewer than --min-seeds, or seeds that agree exactly): 'pass' reports "
    "them INCONCLUSIVE (default); 'tolerance' lets the tolerance alone decide.",
)
@click.option(
    "--strict",
    is_flag=True,
    help=f"Fail with exit code {EXIT_INCONCLUSIVE} when a row is INCONCLUSIVE or a claim undecided (default: exit 0, and the "
    "result line says INCONCLUSIVE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON (the same verdicts and exit code).")
@store_option()
def check(
    target: Path,
    baseline_path: Path | None,
    against_last: int | None,
    fail_on: Sequence[str],
    min_seeds: int | None,
    few_seeds: str | None,
    strict: bool,
    as_json: bool,
    store_dir: Path | None,
) -> None:
    """Compare SUITE_OR_RESULTS with a baseline and evaluate the suite's `expect:` claims; exit 1 on a regression.

    \b
    Examples:
      harness check suites/smoke.yaml --baseline baselines/smoke.json
      harness check suites/smoke.yaml --baseline baselines/smoke.json --strict   # inconclusive fails (5)
      harness check suites/smoke.yaml --baseline baselines/smoke.json --fail-on test_accuracy:0.02 --json
      harness check suites/initializers.yaml          # claims only
      harness check suites/smoke.yaml --against-last 3   # vs the 3 runs stored before the latest
    """
    from harness.check.baseline import read_baseline
    from harness.check.evidence import evaluate_claims
    from harness.check.gate import compare
    from harness.check.options import check_arms, merge_options, parse_check_block
    from harness.check.render import CheckOutcome, render_json, render_text
    from harness.measures import DIVERGED
    from harness.results_folder import open_results

    results, record = open_results(target, store_dir)
    options = merge_options(parse_check_block(record.check, "check"), fail_on, min_seeds, few_seeds)
    if baseline_path is not None and against_last is not None:
        raise HarnessError(
            "check: --baseline and --against-last both name what to compare with. Fix: pass one of them."
        )
    if baseline_path is None and against_last is None and not record.expect:
        raise HarnessError(
            f"check: nothing to check for suite {record.name!r}: no --baseline and no `expect:` claims in the suite. "
            f"Fix: create a baseline with `harness baseline save {target} -o baselines/{record.name}.json` and pass "
            f"--baseline baselines/{record.name}.json, or add claims such as "
            '`expect: ["adam.test_accuracy > sgd.test_accuracy"]` to the suite.'
        )
    claim_seeds = _claim_seeds(results, record, target, store_dir) if record.expect else None
    judged_on = claim_seeds.seeds if claim_seeds is not None else None
    claims = evaluate_claims(results, record.expect, seeds=judged_on) if record.expect else []
    loaded = read_baseline(baseline_path, suite=record.name) if baseline_path is not None else None
    if against_last is not None:
        loaded = _recent_runs_baseline(results, record.name, target, store_dir, against_last, options)
    verdicts = compare(results, loaded, options) if loaded is not None else []
    not_ok = results.failures()
    expected_divergence = None
    if options.expect_diverged:
        check_arms(options.expect_diverged, results.arms, "check.expect_diverged")
        expected = (not_ok["status"] == DIVERGED) & not_ok["arm"].isin(options.expect_diverged)
        expected_divergence, not_ok = not_ok[expected], not_ok[~expected]
    outcome = CheckOutcome(
        suite=record.name,
        options=options,
        verdicts=verdicts,
        claims=claims,
        trials_not_ok=not_ok,
        expected_divergence=expected_divergence,
        baseline=loaded,
        strict=strict,
        claim_seeds=claim_seeds,
    )
    click.echo(render_json(outcome) if as_json else render_text(outcome))
    _warn_about_environments(results.trials)
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


def _claim_seeds(results: Results, record: SuiteRecord, target: Path, store_dir: Path | None) -> ClaimSeeds | None:
    """The seeds the claims are judged on: the suite's confirmation seeds when it has them (None: all).

    Raises:
        HarnessError: the suite has confirmation seeds and the store holds none of them (says what to run).
    """
    from harness.check.render import ClaimSeeds
    from harness.suite.schema import seed_text

    confirm = tuple(record.confirm_seeds)
    if not confirm:
        return None
    stored = {int(seed) for seed in results.trials["seed"]}
    present = tuple(seed for seed in confirm if seed in stored)
    store = f" --store {store_dir}" if store_dir is not None else ""
    command = f"harness run {target} --phase confirm{store}"
    if not present:
        raise HarnessError(
            f"check: suite {record.name!r} judges its claims on its confirmation seeds {seed_text(confirm)}, "
            f"and the store holds none of them (it has seeds {seed_text(sorted(stored))}). Run `{command}` first."
        )
    missing = tuple(seed for seed in confirm if seed not in stored)
    return ClaimSeeds(present, tuple(record.explore_seeds), missing, command)


def _warn_about_environments(trials: pd.DataFrame) -> None:
    """On stderr (stdout stays the verdicts, JSON with --json): the checked trials ran in different
    environments, e.g. a results folder copied from another machine and resumed here."""
    from harness.analysis.environment import environment_differences, environment_summary

    note = environment_summary(environment_differences(trials))
    if note:
        click.echo(f"note: {note}", err=True)


def _recent_runs_baseline(
    results: Results, suite: str, target: Path, store_dir: Path | None, last: int, options: CheckOptions
) -> Baseline:
    """`--against-last N`: a baseline made of the N runs of the suite stored before the latest one."""
    from harness.check.history import RunHistory, baseline_of_runs
    from harness.cli.history import _store_folder
    from harness.store import Store

    with Store(_store_folder(target, store_dir)) as store:
        history = RunHistory.read(store, suite)
        metrics = list(options.resolved_metrics(results.primary_metric))
        return baseline_of_runs(history, results, last, metrics, store)
