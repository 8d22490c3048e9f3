"""harness.report.compare: B - A per arm and backend (paired by seed, or Welch); the `harness compare` command."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.synthetic import synthetic_frames
from scipy import stats

from harness.adapters.loop import train_trial
from harness.analysis import Results
from harness.cli.compare import compare
from harness.data import load_dataset
from harness.errors import SpecError
from harness.report.compare import COLUMNS, compare_results
from harness.store import Store
from harness.suite import load_suite


def synthetic_results(seeds: int, shift: float = 0.0, random_seed: int = 0) -> Results:
    frames = synthetic_frames(
        optimizers=("sgd", "adam"),
        widths=(32,),
        backends=("torch",),
        seeds=seeds,
        epochs=3,
        diverged=0,
        failed=0,
        random_seed=random_seed,
    )
    metrics = frames.metrics.copy()
    metrics.loc[metrics["metric"] == "test_accuracy", "value"] += shift
    return Results(frames.trials, metrics, frames.arms, frames.axes, name="synthetic")


def seed_subset(results: Results, seeds: range) -> Results:
    """The same results, keeping only these seeds' trials."""
    trials = results.trials[results.trials["seed"].isin(list(seeds))]
    metrics = results.metrics[results.metrics["hash"].isin(trials["hash"])]
    return Results(trials, metrics, results.arms, results.axes, name=results.name)


def test_same_seeds_are_paired_and_match_scipy():
    first, second = synthetic_results(4), synthetic_results(4, shift=0.02, random_seed=1)
    table = compare_results(first, second, "test_accuracy")
    assert list(table.columns) == COLUMNS and len(table) == len(first.arms)
    assert set(table["test"]) == {"paired"}
    row = table.iloc[0]
    final_a, final_b = first.final(), second.final()
    a = final_a[final_a["arm"] == row["arm"]].sort_values("seed")["test_accuracy"].to_numpy()
    b = final_b[final_b["arm"] == row["arm"]].sort_values("seed")["test_accuracy"].to_numpy()
    reference = stats.ttest_rel(b, a)
    interval = reference.confidence_interval(0.95)
    assert row["mean_difference"] == pytest.approx(np.mean(b - a), rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert row["p_value"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert row["n_a"] == row["n_b"] == 4


def test_different_seeds_use_welch():
    # seeds 0-2 vs 10-14: none in common (overlapping seed sets pair on the common seeds, see below)
    first, second = synthetic_results(3), seed_subset(synthetic_results(15, random_seed=2), range(10, 15))
    table = compare_results(first, second, "test_accuracy")
    assert set(table["test"]) == {"welch"} and set(table["n_a"]) == {3} and set(table["n_b"]) == {5}
    row = table.iloc[0]
    final_a, final_b = first.final(), second.final()
    a = final_a[final_a["arm"] == row["arm"]]["test_accuracy"].to_numpy()
    b = final_b[final_b["arm"] == row["arm"]]["test_accuracy"].to_numpy()
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert row["p_value"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-12)


AGREEMENT_CASES = {
    # id: (A's seeds, B's seeds, the test both must choose)
    "same-seeds": (range(5), range(5), "paired"),
    "overlapping": (range(5), range(2, 8), "paired"),  # 3 common seeds: paired on those
    "overlapping-too-few-common": (range(4), range(2, 6), "welch"),  # 2 common < the check's minimum of 3
    "disjoint": (range(4), range(10, 14), "welch"),
}


@pytest.mark.parametrize("case", list(AGREEMENT_CASES), ids=list(AGREEMENT_CASES))
def test_compare_and_check_agree_on_the_same_data(case: str, tmp_path: Path) -> None:
    """`harness compare A B` and `harness check B --baseline A` measure one change the same way."""
    from harness.check.baseline import build_baseline, read_baseline, write_baseline
    from harness.check.gate import compare as gate
    from harness.check.options import CheckOptions, Tolerance

    seeds_a, seeds_b, test = AGREEMENT_CASES[case]
    first = seed_subset(synthetic_results(14), seeds_a)
    second = seed_subset(synthetic_results(14, shift=0.02, random_seed=1), seeds_b)
    table = compare_results(first, second, "test_accuracy").set_index("arm")
    path = write_baseline(build_baseline(first, source="A"), tmp_path / "a.json")
    options = CheckOptions({"test_accuracy": Tolerance(0.01, relative=False)})  # the default min_seeds
    verdicts = gate(second, read_baseline(path, suite=first.name), options)
    assert len(verdicts) == len(table) == len(first.arms)
    for verdict in verdicts:
        row = table.loc[verdict.arm]
        assert verdict.test == row["test"] == test
        assert verdict.change == pytest.approx(row["mean_difference"], rel=1e-12)
        assert (verdict.ci_low, verdict.ci_high) == pytest.approx((row["ci_low"], row["ci_high"]), rel=1e-12)
        assert verdict.p_value == pytest.approx(row["p_value"], rel=1e-12)
        assert (verdict.baseline_mean, verdict.current_mean) == pytest.approx((row["mean_a"], row["mean_b"]), rel=1e-12)
    if case == "overlapping":  # the change and its interval are those of the common seeds
        final_a, final_b = first.final(), second.final()
        arm = verdicts[0].arm
        a = final_a[(final_a["arm"] == arm) & final_a["seed"].isin([2, 3, 4])].sort_values("seed")["test_accuracy"]
        b = final_b[(final_b["arm"] == arm) & final_b["seed"].isin([2, 3, 4])].sort_values("seed")["test_accuracy"]
        reference = stats.ttest_rel(b.to_numpy(), a.to_numpy())
        assert table.loc[arm, "p_value"] == pytest.approx(reference.pvalue, rel=1e-12)
        assert table.loc[arm, "mean_difference"] == pytest.approx(np.mean(b.to_numpy() - a.to_numpy()), rel=1e-12)
        assert table.loc[arm, "n_a"] == table.loc[arm, "n_b"] == 3


def test_unknown_metric_is_a_spec_error():
    with pytest.raises(SpecError, match="compare --metric"):
        compare_results(synthetic_results(2), synthetic_results(2), "test_f1")


TINY = """\
name: {name}
dataset: digits
model: {{mlp: {{hidden: [16], activation: relu}}}}
loss: cross_entropy
optimizer: {{name: sgd, lr: 0.1}}
initializer: he_normal
training: {{epochs: {epochs}, batch_size: 64}}
seeds: 2
grid: {{optimizer: {{sgd: {{name: sgd, lr: 0.1}}, adam: {{name: adam, lr: 0.005}}}}}}
"""


def run_tiny(tmp_path: Path, name: str, epochs: int) -> tuple[Path, Path]:
    """Train the tiny suite in this process (real torch training) into its own store."""
    from harness.adapters.torch import TorchAdapter

    suite_path = tmp_path / f"{name}.yaml"
    suite_path.write_text(TINY.format(name=name, epochs=epochs))
    suite = load_suite(suite_path)
    adapter = TorchAdapter()
    adapter.configure(1)
    data = load_dataset(suite.trials[0].spec.dataset)
    store_path = tmp_path / f"store_{name}"
    with Store(store_path) as store:
        for trial in suite.trials:
            store.record(trial, train_trial(trial.spec, adapter, data))
    return suite_path, store_path


def test_compare_command_writes_table_and_figure(tmp_path):
    pytest.importorskip("torch")
    suite_a, store_a = run_tiny(tmp_path, "short", epochs=1)
    suite_b, store_b = run_tiny(tmp_path, "long", epochs=6)
    group = click.Group("harness", commands={"compare": compare})  # the command alone, as harness.cli registers it
    output = tmp_path / "out"
    result = CliRunner().invoke(
        group,
        [
            "compare",
            str(suite_a),
            str(suite_b),
            "--store-a",
            str(store_a),
            "--store-b",
            str(store_b),
            "--metric",
            "train_loss",
            "-o",
            str(output),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "paired" in result.output and "sgd" in result.output and "adam" in result.output
    import pandas as pd

    table = pd.read_csv(output / "compare.csv")
    assert list(table["arm"]) == ["sgd", "adam"] and set(table["test"]) == {"paired"}
    assert (table["mean_difference"] < 0).all()  # 6 epochs reach a lower training loss than 1
    assert (output / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_bad_target_exits_2(tmp_path):
    from harness.cli import HarnessGroup

    group = HarnessGroup("harness", commands={"compare": compare})
    result = CliRunner().invoke(group, ["compare", str(tmp_path / "missing.yaml"), str(tmp_path / "other.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml" in result.output and "Traceback" not in result.output
