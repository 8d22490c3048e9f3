"""The `harness` command through click's CliRunner, with real training of a tiny suite."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.suites import optimizer_grid_suite, write_suite

from harness.cli import cli

REPO = Path(__file__).resolve().parent.parent

TINY = optimizer_grid_suite(
    "tiny",
    "SGD vs Adam on iris, two epochs.",
    dataset="{name: iris, validation: 0.2}",
    model="{mlp: {hidden: [8], activation: relu}}",
    training="{epochs: 2, batch_size: 16}",
    seeds=2,
    arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
)


@pytest.fixture()
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path, TINY, "tiny.yaml")


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """One real run of the tiny suite, shared by the tests that only read its outputs."""
    folder = tmp_path_factory.mktemp("run")
    suite = write_suite(folder, TINY, "tiny.yaml")
    store = folder / "store"
    result = invoke("run", str(suite), "--store", str(store), "--jobs", "1", "--quiet")
    return suite, store, result


class TestRun:
    def test_run_writes_store_tables_and_prints_the_summary(self, finished_run):
        _, store, result = finished_run
        assert result.exit_code == 0, result.output
        assert (store / "harness.sqlite").is_file()
        for table in ("epochs.csv", "final.csv", "summary.csv", "suite.json"):
            assert (store / "tiny" / table).is_file(), table
        assert "4 trials: 0 already in the store, 4 ok" in result.output
        for arm in ("sgd", "adam"):
            assert arm in result.output

    def test_final_table_has_one_row_per_trial_with_labels(self, finished_run):
        _, store, _ = finished_run
        final = pd.read_csv(store / "tiny" / "final.csv")
        assert len(final) == 4
        assert set(final["arm"]) == {"sgd", "adam"} and set(final["seed"]) == {0, 1}
        assert (final["status"] == "ok").all() and (final["train_seconds"] > 0).all()
        summary = pd.read_csv(store / "tiny" / "summary.csv")
        assert set(summary["arm"]) == {"sgd", "adam"}

    def test_second_run_skips_finished_trials_and_gives_the_same_table(self, finished_run):
        suite, store, _ = finished_run
        before = pd.read_csv(store / "tiny" / "final.csv")
        again = invoke("run", str(suite), "--store", str(store), "--quiet")
        assert again.exit_code == 0
        assert "4 already in the store, 0 ok" in again.output
        pd.testing.assert_frame_equal(before, pd.read_csv(store / "tiny" / "final.csv"))

    def test_report_from_the_results_folder(self, finished_run, tmp_path):
        _, store, _ = finished_run
        result = invoke("report", str(store / "tiny"), "--output", str(tmp_path))
        assert result.exit_code == 0, result.output
        html = (tmp_path / "tiny" / "report.html").read_text()
        assert "SGD vs Adam on iris" in html and (tmp_path / "tiny" / "report.pdf").stat().st_size > 1000
        # the answer first, in words from the real run's statistics (2 seeds: a verdict, not a guess)
        assert html.index('id="answer"') < html.index('id="summary"')
        assert re.search(r"adam vs sgd: (better|worse|undecided|no detectable|identical)", html), html[:3000]

    def test_harness_load_reads_a_results_folder(self, finished_run):
        import harness

        _, store, _ = finished_run
        results = harness.load(store / "tiny")
        summary = results.summary()
        assert set(summary["arm"]) == {"sgd", "adam"}
        assert (summary["n"] == 2).all()

    def test_seed_and_backend_overrides(self, tiny_suite, tmp_path):
        result = invoke(
            "run",
            str(tiny_suite),
            "--store",
            str(tmp_path / "s"),
            "--seeds",
            "5",
            "--backend",
            "torch",
            "--quiet",
            "--jobs",
            "1",
            "--threads",
            "3",  # pinned, whatever cores/jobs would give; recorded with each trial
        )
        assert result.exit_code == 0, result.output
        final = pd.read_csv(tmp_path / "s" / "tiny" / "final.csv")
        assert sorted(set(final["seed"])) == [0, 1, 2, 3, 4]
        from harness.store import Store

        with Store(tmp_path / "s") as store:
            devices = [json.loads(text) for text in store.trials_frame()["device"]]
        assert len(devices) == 10 and {device["threads"] for device in devices} == {"3"}


class TestBadInput:
    def test_bad_suite_exits_2_without_traceback_and_writes_nothing(self, tmp_path):
        suite = tmp_path / "bad.yaml"
        suite.write_text(TINY.replace("{name: adam, lr: 0.01}", "{name: adam, lr: -1}"))
        store = tmp_path / "store"
        result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store)])
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert f"{suite}:14: grid.optimizer.adam.lr: expected a number > 0, got -1" in result.output
        assert not store.exists()  # nothing half-written

    def test_unwritable_store_exits_2_naming_the_path(self, tiny_suite, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        result = CliRunner().invoke(cli, ["run", str(tiny_suite), "--store", str(blocker / "store"), "--quiet"])
        assert result.exit_code == 2, result.output
        assert str(blocker / "store") in result.output and "Traceback" not in result.output

    def test_bad_report_block_is_caught_before_training(self, tmp_path):
        suite = tmp_path / "bad_report.yaml"
        suite.write_text(TINY + "report: {reference: sgdd}\n")
        result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store")])
        assert result.exit_code == 2
        assert "sgdd" in result.output and "Did you mean 'sgd'?" in result.output
        assert not (tmp_path / "store").exists()

    def test_validate_reports_each_bad_suite_and_exits_2(self, tiny_suite, tmp_path):
        broken = tmp_path / "broken.yaml"
        broken.write_text("name: x\n  bad: [indent\n")
        result = CliRunner().invoke(cli, ["validate", str(tiny_suite), str(broken)])
        assert result.exit_code == 2
        assert "ok  " in result.output and "tiny" in result.output
        assert f"{broken}:2" in result.output

    def test_report_of_a_suite_never_run_exits_2(self, tiny_suite, tmp_path):
        result = CliRunner().invoke(cli, ["report", str(tiny_suite), "--store", str(tmp_path / "empty")])
        assert result.exit_code == 2 and "harness run" in result.output

    def test_bad_seeds_flag_is_a_usage_error(self, tiny_suite):
        result = CliRunner().invoke(cli, ["run", str(tiny_suite), "--seeds", "many"])
        assert result.exit_code == 2 and "expected a count" in result.output


class TestListAndValidate:
    def test_validate_the_shipped_suites(self):
        suites = sorted(str(p) for p in (REPO / "suites").glob("*.yaml"))
        result = invoke("validate", *suites)
        assert result.exit_code == 0, result.output
        assert (
            "'optimizers', 5 arms x 1 backends (torch) x 6 seeds = 30 trials (seeds 0-2 explore, 3-5 confirm)"
            in result.output
        )

    @pytest.mark.parametrize(
        "what, expected",
        [
            ("components", "adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)"),
            # required parameters bare, derived ones =auto
            (
                "components",
                "gru(units, return_sequences=False, bidirectional=False, recurrent_initializer=orthogonal, kernel_initializer=auto)",
            ),
            ("datasets", "mnist1d"),
            ("datasets", "symbol_sequences sequence       input (32, 8)    8+blank, <=5"),
            ("backends", "torch"),
            ("suites", "optimizers.yaml"),
        ],
        ids=["components", "layer-parameters", "datasets", "sequence-dataset", "backends", "suites"],
    )
    def test_list_sections(self, what, expected):
        result = invoke("list", what, "--suites-dir", str(REPO / "suites"))
        assert result.exit_code == 0 and expected in result.output


def test_help_and_validate_import_no_framework():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from harness.cli import cli\n"
        "r1 = CliRunner().invoke(cli, ['--help'])\n"
        f"r2 = CliRunner().invoke(cli, ['validate', {str(REPO / 'suites' / 'optimizers.yaml')!r}])\n"
        "assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules)))\n"
    )
    output = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    assert json.loads(output.stdout.strip().splitlines()[-1]) == []


def test_python_dash_m_harness_runs_the_cli():
    output = subprocess.run([sys.executable, "-m", "harness", "--version"], capture_output=True, text=True, check=True)
    assert "harness, version" in output.stdout


def test_the_console_entry_ends_fast_with_every_exit_code_and_all_its_output(tmp_path):
    # main() ends the process with os._exit once the command is done: the exit code and every line of
    # output must still arrive, as click gives them in-process.
    def console(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)

    listed, expected = (
        console("list", "suites", "--suites-dir", str(REPO / "suites")),
        invoke("list", "suites", "--suites-dir", str(REPO / "suites")),
    )
    assert listed.returncode == 0 and listed.stdout == expected.output and len(listed.stdout.splitlines()) > 10
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodel: {mlp: {hidden: [4]}}\n")
    refused = console("validate", str(bad))
    assert refused.returncode == 2 and "error" in refused.stderr and "Traceback" not in refused.stderr
    usage = console("run")  # a usage error: click's exit code 2 and its message
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    assert console("--version").returncode == 0
