"""`harness baseline save`: a suite's stored results as a baseline file for `harness check`.

The file format (build, write, read, validate) is library code in harness.check.baseline.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import path_option, store_option, suite_or_results_argument

DEFAULT_BASELINE_FOLDER = Path("baselines")

SAVE_EPILOG = """\b
Exit codes: 0 saved, 2 bad input (suite, store, unwritable output).
"""


@click.group(name="baseline")
def baseline() -> None:
    """Save a suite's stored results as a baseline for `harness check`.

    \b
    Example:
      harness baseline save suites/smoke.yaml -o baselines/smoke.json
    """


@baseline.command(name="save", epilog=SAVE_EPILOG)
@suite_or_results_argument()
@path_option("--output", "-o", help="The baseline file to write (default: baselines/<suite>.json).")
@store_option()
def save(target: Path, output: Path | None, store_dir: Path | None) -> None:
    """Write the per-seed final metrics and train_seconds of SUITE_OR_RESULTS as sorted, diffable JSON.

    SUITE_OR_RESULTS is a suite file (suites/x.yaml) or a results folder (results/x/).
    """
    from harness.check.baseline import build_baseline, write_baseline
    from harness.results_folder import open_results

    results, record = open_results(target, store_dir)
    document = build_baseline(results, source=str(target))
    path = write_baseline(document, output if output is not None else DEFAULT_BASELINE_FOLDER / f"{record.name}.json")
    cells = document["results"]
    seeds = sorted(
        {
            int(seed)
            for arm in cells.values()
            for cell in arm.values()
            for entry in cell["metrics"].values()
            for seed in entry["seeds"]
        }
    )
    click.echo(
        f"saved {path}: suite {record.name!r}, {len(cells)} arms, backends {', '.join(sorted(document['environment']))}, "
        f"seeds {', '.join(map(str, seeds)) or 'none'}, metrics {', '.join(document['directions'])}"
    )
    failures = results.failures()
    if len(failures):
        click.echo(
            f"warning: {len(failures)} trial(s) are not ok ({', '.join(sorted(set(failures['status'])))}); "
            "the baseline counts them but holds no value for them.",
            err=True,
        )
    expected = len(record.labels)
    if len(results.trials) < expected:
        click.echo(
            f"warning: only {len(results.trials)} of the suite's {expected} trials are in the store; "
            "run `harness run` first for a complete baseline.",
            err=True,
        )
