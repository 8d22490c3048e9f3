"""Per-arm hyperparameter search (harness.suite.search, harness.search): bad input, narrowing, and the
planner's determinism with real training: --jobs 1 and --jobs 2 choose the same configurations, and a
`harness run` SIGKILLed mid-round, run again, ends with the same chosen configurations and tables."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.suites import write_suite
from test_faults import WAIT_SECONDS, harness_run, stored_count, wait_for

from harness.cli import cli
from harness.errors import SpecError
from harness.runner import TrialRunner
from harness.search import plan_search, stored_tables
from harness.search.sampling import keep_count, narrow
from harness.store import Store
from harness.suite import load_suite
from harness.suite.search import Dimension

# Two arms, a shared and a per-arm dimension, TPE (the sampler most able to depend on order), 2 rounds.
# Lines 1-23 are fixed: the bad-input cases below replace text in them.
SEARCH_SUITE = """\
name: searched
dataset: {name: iris, validation: 0.2}
model: {mlp: {hidden: [8]}}
loss: cross_entropy
optimizer: {name: sgd, lr: 0.1}
initializer: he_normal
training: {epochs: 2, batch_size: 16}
seeds: [0]
grid:
  optimizer:
    sgd: {name: sgd, lr: 0.1}
    momentum: {name: momentum, lr: 0.1, momentum: 0.9}
search:
  space:
    optimizer.lr: {log_uniform: [1.0e-3, 1.0]}
  per_arm:
    momentum: {optimizer.momentum: {uniform: [0.5, 0.99]}}
  objective: validation_accuracy
  trials: 3
  rounds: 2
  keep: 0.5
  sampler: tpe
  seeds: [100]
"""
ROUND_TRIALS = 6  # 2 arms x 3 configurations x 1 search seed
TIMING = ["train_seconds"]

# (what to replace, with what, a fragment the error must contain, its line)
BAD = {
    "unknown distribution": ("{log_uniform: [1.0e-3", "{loguniform: [1.0e-3", "unknown distribution 'loguniform'", 15),
    "low >= high": ("[1.0e-3, 1.0]", "[1.0, 1.0e-3]", "low (1.0) must be below high (0.001)", 15),
    "log bound <= 0": ("[1.0e-3, 1.0]", "[0, 1.0]", "a log-scale range needs bounds > 0", 15),
    "empty choice": ("{log_uniform: [1.0e-3, 1.0]}", "{choice: []}", "expected a non-empty list of values", 15),
    "path missing": ("optimizer.lr: {log", "optimizer.lrr: {log", "has no parameter 'lrr'. Did you mean 'lr'?", 15),
    "path set by the grid": (
        "optimizer.lr: {log_uniform: [1.0e-3, 1.0]}",
        "optimizer: {choice: [sgd]}",
        "grid axis 'optimizer' also sets",
        15,
    ),
    "unknown objective": ("validation_accuracy", "validation_acuracy", "Did you mean 'validation_accuracy'?", 18),
    "objective on test": (
        "validation_accuracy",
        "test_accuracy",
        "is a test metric. A search selects on VALIDATION only",
        18,
    ),
    "objective on best test": ("validation_accuracy", "best_test_accuracy", "is a test metric", 18),
    "no validation split": ("validation: 0.2", "validation: 0", "this dataset has none (validation: 0)", 2),
    "trials < 1": ("trials: 3", "trials: 0", "expected an integer >= 1 (configurations per arm and round)", 19),
    "rounds < 1": ("rounds: 2", "rounds: 0", "expected an integer >= 1 (range-narrowing rounds", 20),
    "keep 0": ("keep: 0.5", "keep: 0", "expected a fraction strictly between 0 and 1", 21),
    "keep 1": ("keep: 0.5", "keep: 1", "expected a fraction strictly between 0 and 1", 21),
    "seeds overlap": ("seeds: [100]", "seeds: [100, 0]", "search seeds [0] are also final seeds", 23),
    "unknown sampler": ("sampler: tpe", "sampler: sobel", "unknown sampler 'sobel'. Did you mean 'sobol'?", 22),
    "unknown pruner": ("sampler: tpe", "pruner: hyperband", "unknown pruner 'hyperband'", 22),
    "unknown arm": ("    momentum: {optimizer.momentum", "    momentun: {optimizer.momentum", "no arm 'momentun'", 17),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_search_block_is_a_located_error(case: str, tmp_path: Path) -> None:
    old, new, fragment, line = BAD[case]
    assert old in SEARCH_SUITE
    path = write_suite(tmp_path, SEARCH_SUITE.replace(old, new, 1))
    with pytest.raises(SpecError) as raised:
        load_suite(path)
    assert fragment in str(raised.value)
    assert f"{path}:{line}:" in str(raised.value)


def test_optuna_missing_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # what find_spec reports for a package not installed
    with pytest.raises(
        SpecError, match=r'Optuna, which is not installed. Install it with: pip install "harness\[search\]"'
    ):
        load_suite(write_suite(tmp_path, SEARCH_SUITE))


def test_bad_search_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SEARCH_SUITE.replace("validation_accuracy", "test_accuracy"))
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "is a test metric" in result.output
    assert not store.exists()


def test_narrowing_spans_the_best_and_keeps_the_choices_seen() -> None:
    lr = Dimension("optimizer.lr", ("optimizer", "lr"), "log_uniform", 1e-6, 1e-2)
    width = Dimension("model.mlp.width", ("model", "mlp", "width"), "choice", choices=(32, 64, 128))
    best = [{"optimizer.lr": 3e-4, "model.mlp.width": 128}, {"optimizer.lr": 2e-3, "model.mlp.width": 32}]
    narrowed_lr, narrowed_width = narrow((lr, width), best)
    assert (narrowed_lr.low, narrowed_lr.high, narrowed_lr.kind) == (3e-4, 2e-3, "log_uniform")
    assert narrowed_width.choices == (32, 128)  # the original order, 64 dropped
    assert narrow((lr,), []) == (lr,)  # nothing finite: unchanged


def test_keep_count_needs_two_ends_and_finite_objectives(tmp_path: Path) -> None:
    search = load_suite(write_suite(tmp_path, SEARCH_SUITE.replace("trials: 3", "trials: 20"))).search
    assert search is not None
    assert keep_count(search, 20) == 10  # ceil(0.5 x 20)
    assert keep_count(search, 1) == 1  # only one configuration has an objective
    tiny = load_suite(write_suite(tmp_path, SEARCH_SUITE.replace("keep: 0.5", "keep: 0.01"), "t.yaml")).search
    assert tiny is not None and keep_count(tiny, 3) == 2  # a range needs two ends


def _search(suite_path: Path, store_dir: Path, jobs: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The search and its final trials run in this process on one warm set of workers, as `harness run` runs
    them: (search table without timings, chosen, final hashes)."""
    suite = load_suite(suite_path)
    with Store(store_dir) as store, TrialRunner(jobs=jobs, quiet=True) as runner:
        outcome = plan_search(suite, store, run=lambda trials: runner.run(trials, store))
        assert outcome.complete, outcome.stopped
        runner.run(outcome.final_trials, store)
        tables = stored_tables(store, suite.name, "validation_accuracy", suite.arms)
    assert tables is not None
    return tables.configurations.drop(columns=TIMING), tables.chosen, sorted(t.hash for t in outcome.final_trials)


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("suite"), SEARCH_SUITE)


@pytest.fixture(scope="module")
def reference(
    suite_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The search run uninterrupted with 2 workers."""
    return _search(suite_path, tmp_path_factory.mktemp("jobs2"), jobs=2)


@pytest.mark.slow  # the --jobs 2 search in process, a killed `harness run --jobs 1` and its rerun: 1-3 min here
def test_jobs_1_killed_mid_round_then_rerun_chooses_what_jobs_2_chose(
    suite_path: Path, reference, tmp_path: Path
) -> None:
    """Two claims in one run, to pay for the worker start-ups once: the search run with --jobs 1, SIGKILLed
    while round 1 is under way and run again, ends with exactly the configurations, objectives, chosen
    values and final trials of the search run uninterrupted with --jobs 2. Either order dependence (which
    worker finishes first) or a resume that redraws differs from the reference and fails it."""
    store = tmp_path / "store"
    driver = harness_run(suite_path, store, "--jobs", "1")
    # round 1 under way: every round-0 trial and one of round 1 recorded (round 1's draws depend on round 0's)
    wait_for(lambda: stored_count(store) > ROUND_TRIALS or driver.poll() is not None)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=WAIT_SECONDS)
    assert driver.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-round"
    assert ROUND_TRIALS < stored_count(store) < 2 * ROUND_TRIALS
    rerun = harness_run(suite_path, store, "--jobs", "1")
    output, error = rerun.communicate(timeout=WAIT_SECONDS)
    assert rerun.returncode == 0, error
    folder = store / "searched"
    search = pd.read_csv(folder / "search.csv").drop(columns=TIMING)
    assert set(search["round"]) == {0, 1} and (search["status"] == "ok").all()
    expected = reference[0].astype({"rung_epoch": "float64"}).reset_index(drop=True)
    pd.testing.assert_frame_equal(search, expected, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(folder / "chosen.csv"), reference[1], check_dtype=False)
    final = pd.read_csv(folder / "final.csv")
    assert sorted(final["hash"]) == reference[2]
    assert "search: each arm's chosen values" in output


def test_expected_best_is_the_mean_best_of_n_draws_with_replacement() -> None:
    from harness.report.search_section import expected_best

    values = np.array([3.0, 1.0, 2.0])
    # n=2: the best of each of the 9 ordered pairs, averaged: (1+2+3 + 2+2+3 + 3+3+3) / 9
    assert np.allclose(expected_best(values, higher_is_better=True), [2.0, 22 / 9, (1 + 7 * 2 + 19 * 3) / 27])
    assert np.allclose(expected_best(values, higher_is_better=False), [2.0, 14 / 9, (19 * 1 + 7 * 2 + 1 * 3) / 27])


def test_search_section_draws_each_figure_from_the_tables() -> None:
    from types import SimpleNamespace

    from harness.report.search_section import search_figures, search_tables
    from harness.search.tables import SearchTables

    configurations = pd.DataFrame(
        {
            "arm": ["a"] * 4 + ["b"] * 4,
            "round": [0, 0, 1, 1] * 2,
            "trial": [0, 1, 0, 1] * 2,
            "optimizer.lr": [1e-4, 1e-2, 1e-3, 2e-3, 1e-4, 1e-2, 5e-4, 8e-4],
            "validation_accuracy": [0.5, 0.7, 0.8, np.nan, 0.6, 0.4, 0.65, 0.62],
            "status": ["ok", "ok", "ok", "diverged", "ok", "ok", "ok", "ok"],
            "rung_epoch": [None] * 8,
            "trials_run": [1] * 8,
            "optimizer_steps": [10] * 8,
            "train_seconds": [0.1] * 8,
        }
    )
    ranges = pd.DataFrame(
        [
            (arm, r, "optimizer.lr", "log_uniform", low, high, "")
            for arm in "ab"
            for r, low, high in ((0, 1e-4, 1e-2), (1, 1e-3, 1e-2))
        ],
        columns=["arm", "round", "dimension", "kind", "low", "high", "choices"],
    )
    curves = pd.DataFrame(
        {
            "arm": "a",
            "rank": 1,
            "round": 1,
            "trial": 0,
            "seed": 100,
            "epoch": [0, 1],
            "metric": "validation_accuracy",
            "value": [0.3, 0.8],
        }
    )
    chosen = pd.DataFrame({"arm": ["a", "b"], "optimizer.lr": [1e-3, 5e-4], "validation_accuracy": [0.8, 0.65]})
    budget = configurations.groupby("arm")[["trials_run", "optimizer_steps", "train_seconds"]].sum().reset_index()
    budget.insert(1, "configurations", 4)
    tables = SearchTables("validation_accuracy", configurations, chosen, budget, ranges, curves)
    results = SimpleNamespace(search=tables, arms=("a", "b"))
    keys = [figure.key for figure in search_figures(results)]
    assert keys == [
        "search_optimizer_lr",
        "search_expected_best",
        "search_best_curves",
        "search_sensitivity_optimizer_lr",
    ]
    chosen_table, ranges_table = search_tables(results)
    assert chosen_table.rows[0][:3] == ("a", "0.001", "0.8")
    assert ranges_table.rows[1] == ("a", "1", "optimizer.lr", "[0.001, 0.01]")


@pytest.mark.parametrize(
    ("pruner", "kept"),
    [("median", [0.4, 0.5, 0.6]), ("successive_halving", [0.5, 0.6])],
    ids=["median", "successive_halving"],
)
def test_pruner_judges_each_configuration_against_its_whole_round(
    pruner: str, kept: list[float], tmp_path: Path
) -> None:
    from harness.search.planner import Configuration, _prune

    text = SEARCH_SUITE.replace("sampler: tpe", f"pruner: {pruner}")
    search = load_suite(write_suite(tmp_path, text)).search
    assert search is not None and search.pruner == pruner
    rung = [0.4, 0.1, 0.6, 0.2, 0.5, 0.3]  # higher is better (validation accuracy); listed out of order
    configurations = [
        Configuration("sgd", 0, index, {}, (), rung_objective=value, rung_epoch=1) for index, value in enumerate(rung)
    ]
    _prune(search, configurations)
    survivors = sorted(c.rung_objective for c in configurations if c.status != "pruned")
    assert survivors == kept  # median: not below the median of the OTHER five; halving: the best third
    assert all(c.rung_epoch == 1 for c in configurations if c.status == "pruned")


def test_any_declared_parameter_is_searchable_by_its_path(tmp_path: Path) -> None:
    """A learning-rate schedule's parameter: the search resolves it like any suite value, and a bound the
    parameter's declaration refuses (gamma must be in (0, 1]) is an error at the search block's line."""
    text = SEARCH_SUITE.replace(
        "training: {epochs: 2, batch_size: 16}",
        "training: {epochs: 2, batch_size: 16, lr_schedule: {name: step, step_size: 5}}",
    ).replace(
        "    optimizer.lr: {log_uniform",
        "    training.lr_schedule.gamma: {uniform: [0.1, 0.9]}\n    optimizer.lr: {log_uniform",
    )
    search = load_suite(write_suite(tmp_path, text)).search
    assert search is not None and search.space[0].target == ("training", "lr_schedule", "gamma")
    bad = write_suite(tmp_path, text.replace("{uniform: [0.1, 0.9]}", "{uniform: [0.5, 2.0]}"), "bad.yaml")
    with pytest.raises(SpecError, match=rf"{bad}:15: search\.space\.training\.lr_schedule\.gamma"):
        load_suite(bad)
