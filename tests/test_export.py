"""`harness export`: MLflow runs and TensorBoard event files, read back through each tool's own reader."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from helpers.synthetic import synthetic_frames

from harness.analysis import Results
from harness.cli import cli


@pytest.fixture(scope="module")
def results() -> Results:
    """Two optimizers x two backends x two seeds, made-up curves over three epochs (one trial diverged)."""
    frames = synthetic_frames(optimizers=("sgd", "adam"), widths=(32,), seeds=2, epochs=3, failed=0)
    provenance = json.dumps({"git": {"commit": "ab" * 20, "dirty": True}, "packages": "p1"})
    trials = frames.trials.assign(provenance=provenance)
    return Results(trials, frames.metrics, arms=frames.arms, axes=frames.axes, name="tiny")


def test_mlflow_runs_nested_per_arm_and_idempotent(results, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from harness.export.mlflow import export_mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    first = export_mlflow(results, uri)
    assert (first.created, first.unchanged, first.arms) == (8, 0, 2)
    again = export_mlflow(results, uri)
    assert (again.created, again.replaced, again.unchanged) == (0, 0, 8)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tiny"])
    assert len(runs) == 10  # 2 arms + 8 trials, nothing duplicated
    trials = runs[runs["tags.harness.kind"] == "trial"]
    arms = runs[runs["tags.harness.kind"] == "arm"].set_index("tags.harness.arm")
    # each trial hangs under its arm's run, and carries its labels and its spec
    assert (trials["tags.mlflow.parentRunId"] == trials["tags.harness.arm"].map(arms["run_id"])).all()
    assert set(trials["tags.harness.hash"]) == set(results.trials["hash"])
    assert set(trials["params.optimizer.lr"]) == {"0.1", "0.005"}
    assert set(trials["tags.harness.parity"]) <= {"reference", "agree", "differ", "undecided"}
    assert "diverged" in set(trials["tags.harness.status"])
    assert set(trials["tags.harness.git_commit"]) == {"ab" * 6 + "+dirty"}  # provenance travels along
    # the arm's summary is Results.summary's
    summary = results.summary().set_index(["arm", "backend", "metric"])
    expected = summary.loc[("adam-h32", "keras", "test_accuracy")]
    assert arms.loc["adam-h32", "metrics.keras.test_accuracy.mean"] == pytest.approx(expected["mean"])
    assert arms.loc["adam-h32", "metrics.keras.test_accuracy.n"] == expected["n"]
    # every epoch by step
    one = trials.iloc[0]
    history = mlflow.MlflowClient(uri).get_metric_history(one["run_id"], "test_accuracy")
    stored = results.metrics[
        (results.metrics["hash"] == one["tags.harness.hash"]) & (results.metrics["metric"] == "test_accuracy")
    ]
    assert sorted((m.step, pytest.approx(m.value)) for m in history) == sorted(zip(stored["epoch"], stored["value"]))


def test_mlflow_replaces_a_trial_stored_again(results, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from harness.export.mlflow import export_mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    export_mlflow(results, uri)
    rerun = results.trials.copy()
    rerun.loc[0, "finished_at"] = "2030-01-01T00:00:00+00:00"  # `harness run --rerun`: same hash, stored again
    changed = Results(rerun, results.metrics, arms=results.arms, axes=results.axes, name="tiny")
    outcome = export_mlflow(changed, uri)
    assert (outcome.created, outcome.replaced, outcome.unchanged) == (0, 1, 7)


def test_tensorboard_scalars_and_hparams_without_tensorflow(results, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from harness.export.tensorboard import export_tensorboard, read_scalars

    loaded = "tensorflow" in sys.modules
    first = export_tensorboard(results, tmp_path)
    assert (first.written, first.unchanged) == (8, 0)
    assert loaded or "tensorflow" not in sys.modules  # the writer needs no TensorFlow
    assert export_tensorboard(results, tmp_path).unchanged == 8

    row = results.trials[results.trials["status"] == "ok"].iloc[0]
    folder = next((tmp_path / "tiny").glob(f"*/*-{row['hash'][:8]}"))
    scalars = read_scalars(folder)
    stored = results.metrics[(results.metrics["hash"] == row["hash"]) & (results.metrics["metric"] == "test_accuracy")]
    assert [step for step, _ in scalars["test_accuracy"]] == stored["epoch"].tolist()
    assert [value for _, value in scalars["test_accuracy"]] == pytest.approx(stored["value"].tolist(), rel=1e-6)

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert session.hparams["arm"].string_value == row["arm"]
    assert session.hparams["optimizer.lr"].number_value in (0.1, 0.005)  # varies between trials: a column
    experiment = EventAccumulator(str(tmp_path / "tiny"))
    experiment.Reload()
    config = plugin_data_pb2.HParamsPluginData.FromString(
        experiment.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    assert "test_accuracy" in {metric.name.tag for metric in config.metric_infos}


def test_export_options_of_the_other_target_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--to", "mlflow", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--output" in result.output and "Traceback" not in result.output
