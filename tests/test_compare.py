"""harness.report.compare: B - A per arm and backend (paired by seed, or Welch), and `harness compare`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from harness.adapters.loop import train_trial
from harness.analysis import Results
from harness.analysis.synthetic import synthetic_frames
from harness.data import load_dataset
from harness.errors import SpecError
from harness.report.compare import COLUMNS, compare, compare_results
from harness.store import Store
from harness.suite import load_suite


def synthetic_results(seeds: int, shift: float = 0.0, random_seed: int = 0) -> Results:
    frames = synthetic_frames(optimizers=("sgd", "adam"), widths=(32,), backends=("torch",), seeds=seeds,
                              epochs=3, diverged=0, failed=0, random_seed=random_seed)
    metrics = frames.metrics.copy()
    metrics.loc[metrics["metric"] == "test_accuracy", "value"] += shift
    return Results(frames.trials, metrics, frames.arms, frames.axes, name="synthetic")


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
    first, second = synthetic_results(3), synthetic_results(5, random_seed=2)
    table = compare_results(first, second, "test_accuracy")
    assert set(table["test"]) == {"welch"} and set(table["n_a"]) == {3} and set(table["n_b"]) == {5}
    row = table.iloc[0]
    final_a, final_b = first.final(), second.final()
    a = final_a[final_a["arm"] == row["arm"]]["test_accuracy"].to_numpy()
    b = final_b[final_b["arm"] == row["arm"]]["test_accuracy"].to_numpy()
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert row["p_value"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-12)


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
    group = click.Group("harness", commands={"compare": compare})  # the lead registers it in cli.py
    output = tmp_path / "out"
    result = CliRunner().invoke(group, ["compare", str(suite_a), str(suite_b), "--store-a", str(store_a),
                                        "--store-b", str(store_b), "--metric", "train_loss", "-o", str(output)],
                                catch_exceptions=False)
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
