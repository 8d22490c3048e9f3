"""Trials from different environments: harness.analysis.environment, and a results folder copied from
another machine (other library versions, host and CPU) read by `report`, `check` and `compare`.

The copy is simulated on a real store: a real `harness run`, then the `versions`, `host` and
`device` columns of some trials rewritten in the SQLite file, as a run elsewhere would have stored them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.suites import optimizer_grid_suite, write_suite

from harness.analysis.environment import (
    compare_environments,
    describe_differences,
    environment_differences,
    environment_summary,
)
from harness.cli import cli
from harness.store import DATABASE_NAME

SUITE = optimizer_grid_suite(
    "copied",
    "SGD vs Adam on iris, two epochs.",
    dataset="{name: iris}",
    model="{mlp: {hidden: [8]}}",
    training="{epochs: 2, batch_size: 16}",
    seeds=2,
    arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
)
ELSEWHERE = {  # what the other machine recorded for the adam trials
    "host": "laptop",
    "versions": {"numpy": "1.26.4", "torch": "2.1.0"},
    "device": {"device": "cpu", "name": "Intel Xeon", "threads": "2"},
}


def trial_row(arm: str, seed: int, *, torch: str = "2.13.0", host: str = "vm", cpu: str = "AMD EPYC", **fields):
    row = {
        "arm": arm,
        "backend": "torch",
        "seed": seed,
        "status": "ok",
        "host": host,
        "versions": json.dumps({"numpy": "2.0", "torch": torch}),
        "device": json.dumps({"device": "cpu", "name": cpu, "threads": "1"}),
    }
    return {**row, **fields}


# -- the comparison, on frames -----------------------------------------------------------------------------


def test_one_environment_has_no_differences() -> None:
    trials = pd.DataFrame([trial_row(arm, seed) for arm in ("sgd", "adam") for seed in (0, 1)])
    assert environment_differences(trials) == [] and environment_summary([]) == ""


def test_differences_name_the_aspect_its_values_and_the_arms_that_ran_with_each() -> None:
    trials = pd.DataFrame(
        [
            trial_row("sgd", 0),
            trial_row("sgd", 1),
            trial_row("adam", 0),
            trial_row("adam", 1, torch="2.1.0", host="laptop", cpu="Intel Xeon"),
        ]
    )
    lines = describe_differences(environment_differences(trials))
    assert lines == [
        "host (torch trials): vm (3 trials: sgd, adam) vs laptop (1 trial: adam)",
        "torch (torch trials): 2.13.0 (3 trials: sgd, adam) vs 2.1.0 (1 trial: adam)",
        "CPU/GPU (torch trials): AMD EPYC (3 trials: sgd, adam) vs Intel Xeon (1 trial: adam)",
    ]
    assert environment_summary(environment_differences(trials)).startswith("The trials ran in different environments")


def test_backends_are_compared_separately_and_a_trial_failed_before_training_is_no_difference() -> None:
    trials = pd.DataFrame(
        [
            trial_row("sgd", 0),
            # Another backend records other libraries: not a difference between environments.
            trial_row("sgd", 0, backend="keras", versions=json.dumps({"keras": "3.0", "tensorflow": "2.16"})),
            # Failed before its worker recorded anything.
            trial_row("adam", 0, status="failed", host=None, versions="{}", device="{}"),
        ]
    )
    assert environment_differences(trials) == []


def test_two_result_sets_are_compared_by_side() -> None:
    here = pd.DataFrame([trial_row("sgd", seed) for seed in (0, 1)])
    there = pd.DataFrame([trial_row("sgd", seed, torch="2.1.0") for seed in (0, 1)])
    assert describe_differences(compare_environments(here, there)) == [
        "torch (torch trials): 2.13.0 (2 trials: A) vs 2.1.0 (2 trials: B)"
    ]


# -- a results folder copied from another machine -------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real run here ('here'), a baseline of it, and a copy whose adam trials say they ran elsewhere ('copied')."""
    root = tmp_path_factory.mktemp("environments")
    suite = write_suite(root, SUITE, "copied.yaml")
    here = root / "here"
    result = invoke("run", suite, "--store", here, "--jobs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    baseline = root / "baseline.json"
    assert invoke("baseline", "save", here / "copied", "-o", baseline).exit_code == 0
    copied = root / "copied"
    shutil.copytree(here, copied)
    with sqlite3.connect(copied / DATABASE_NAME) as connection:
        connection.execute(
            "UPDATE trials SET host = ?, versions = ?, device = ? WHERE arm = 'adam'",
            (ELSEWHERE["host"], json.dumps(ELSEWHERE["versions"]), json.dumps(ELSEWHERE["device"])),
        )
    connection.close()
    return {"suite": suite, "here": here, "copied": copied, "baseline": baseline, "root": root}


def local_environment(store: Path) -> dict[str, str]:
    with sqlite3.connect(store / DATABASE_NAME) as connection:
        host, versions = connection.execute("SELECT host, versions FROM trials WHERE arm = 'sgd'").fetchone()
    connection.close()
    return {"host": host, "torch": json.loads(versions)["torch"]}


def test_the_report_of_a_copied_folder_says_which_environments_differ(folders: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    here = local_environment(folders["here"])
    output = folders["root"] / "reports"
    result = invoke("report", folders["copied"] / "copied", "-o", output)
    assert result.exit_code == 0, result.output
    html = (output / "copied" / "report.html").read_text(encoding="utf-8")
    assert "The trials ran in different environments" in html
    assert f"torch (torch trials): {here['torch']} (2 trials: sgd) vs 2.1.0 (2 trials: adam)" in html
    assert f"host (torch trials): {here['host']} (2 trials: sgd) vs laptop (2 trials: adam)" in html
    assert "CPU/GPU (torch trials)" in html and "Intel Xeon (2 trials: adam)" in html
    assert "trials ran in different environments (host, numpy, torch, CPU/GPU" in html  # the warning up front

    plain = folders["root"] / "plain"
    assert invoke("report", folders["here"] / "copied", "-o", plain).exit_code == 0
    assert "different environments" not in (plain / "copied" / "report.html").read_text(encoding="utf-8")


def test_check_of_a_copied_folder_works_and_notes_the_environments(folders: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["check", str(folders["copied"] / "copied"), "--baseline", str(folders["baseline"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays the verdicts
    assert "note: The trials ran in different environments" in result.stderr
    assert "torch (torch trials)" in result.stderr and "2.1.0 (2 trials: adam)" in result.stderr
    same = CliRunner().invoke(cli, ["check", str(folders["here"] / "copied"), "--baseline", str(folders["baseline"])])
    assert same.exit_code == 0 and "different environments" not in same.stderr


def test_compare_says_what_differs_between_the_two_sets(folders: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    here = local_environment(folders["here"])
    result = invoke(
        "compare", folders["here"] / "copied", folders["copied"] / "copied", "-o", folders["root"] / "compare"
    )
    assert result.exit_code == 0, result.output
    assert f"environments differ: torch (torch trials): {here['torch']} (6 trials: A, B) vs 2.1.0 (2 trials: B)" in (
        result.output
    )


def test_the_engine_is_environment_and_a_stacked_group_size_is_not() -> None:
    """A stacked trial's numbers do not depend on its group's size (harness.adapters.vectorize), but they
    differ from a lone trial's by float32 rounding: the engine is an environment difference, the size is not."""

    def device(**fields: str) -> str:
        return json.dumps({"device": "cpu", "name": "AMD EPYC", "threads": "1", **fields})

    sizes = pd.DataFrame(
        [trial_row("sgd", seed, device=device(vectorized="stacked", group_size=str(2 + seed))) for seed in (0, 1)]
    )
    assert environment_differences(sizes) == []
    engines = pd.DataFrame([trial_row("sgd", 0), trial_row("adam", 0, device=device(vectorized="stacked"))])
    assert describe_differences(environment_differences(engines)) == [
        "vectorized (torch trials): absent (1 trial: sgd) vs stacked (1 trial: adam)"
    ]
