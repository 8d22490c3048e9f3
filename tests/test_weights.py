"""Saved weights (`training.save_weights`) and checkpoints inside a trial (`training.checkpoint_every`).

- a real `harness run` whose workers are SIGKILLed in the middle of their trials (torch and Keras):
  the retried trials resume at their last checkpoint and end with exactly the metrics, predictions
  and saved weights of an uninterrupted trial; no checkpoint is left; the store says they resumed;
- the weights a torch trial saved load into Keras (and torch) with the same predictions;
- a checkpoint cut short, or from another trial spec, is never loaded: the trial starts from zero;
- bad input exits 2 and writes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.suites import write_suite
from test_runner import REPOSITORY

from harness.adapters.checkpoints import (
    DISCARDED,
    KILL_VARIABLE,
    RESUMED,
    Checkpoint,
    checkpoint_file,
    write_checkpoint,
)
from harness.cli import cli
from harness.data import load_dataset
from harness.exit_codes import EXIT_USAGE
from harness.paths import CHECKPOINTS_FOLDER, WEIGHTS_FOLDER
from harness.store import DATABASE_NAME, Store
from harness.suite import load_suite

# Dropout (framework RNG state), Adam (optimizer state) and save_weights: best (the loop's kept
# weights) all have to come back from a checkpoint for the resumed trial to end identically.
SUITE = """\
name: resume
dataset: {name: digits, validation: 0.2}
model: {mlp: {hidden: [16]}}
loss: cross_entropy
optimizer: {name: adam, lr: 0.01}
initializer: he_normal
regularizer: {dropout: 0.2}
training: {epochs: 3, batch_size: 100, save_weights: best, checkpoint_every: 1}
seeds: [0]
backends: [torch, keras]
"""
KILLED_EPOCH = 2  # the worker dies at the end of epoch 2, before its checkpoint: the one of epoch 1 is resumed


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`harness run` of SUITE with each worker SIGKILLed mid-trial: (suite file, store, the process)."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("resume")
    suite_path = write_suite(folder, SUITE)
    store = folder / "store"
    kills = ",".join(f"{trial.hash}:{KILLED_EPOCH}" for trial in load_suite(suite_path).trials)
    jobs = str(os.cpu_count() or 1)  # one thread per worker, as the in-process reference runs use
    process = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(suite_path), "--store", str(store), "--jobs", jobs, "-q"],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), KILL_VARIABLE: kills},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return suite_path, store, process


@pytest.mark.slow
@pytest.mark.keras
def test_killed_trials_resume_to_exactly_the_uninterrupted_result(
    killed_run: tuple[Path, Path, subprocess.CompletedProcess], torch_adapter: object, keras_adapter: object
) -> None:
    from harness.adapters.loop import train_trial

    suite_path, store, process = killed_run
    assert process.returncode == 0, process.stderr
    adapters = {"torch": torch_adapter, "keras": keras_adapter}
    with Store(store) as opened:
        trials = opened.trials_frame()
        metrics = opened.metrics_frame()
        events = opened.events_frame()
        predictions = opened.predictions_frame()
        rows = {trial.spec.backend: opened.weights_row(trial.hash) for trial in load_suite(suite_path).trials}
    assert sorted(trials["status"]) == ["ok", "ok"] and sorted(trials["attempts"]) == [2, 2]  # each worker died once
    assert not list((store / CHECKPOINTS_FOLDER).iterdir())  # finished trials leave no checkpoint
    for trial in load_suite(suite_path).trials:
        backend = trial.spec.backend
        trial_events = events[events["hash"] == trial.hash]
        assert list(trial_events["event"]) == [RESUMED] and list(trial_events["epoch"]) == [KILLED_EPOCH - 1]
        reference = train_trial(trial.spec, adapters[backend], load_dataset(trial.spec.dataset))  # never stopped
        stored = metrics[metrics["hash"] == trial.hash]
        expected = sorted(reference.metrics)
        got = sorted(zip(stored["epoch"], stored["metric"], stored["value"]))
        assert [row[:2] for row in got] == [row[:2] for row in expected]
        np.testing.assert_array_equal([row[2] for row in got], [row[2] for row in expected])  # bit for bit
        stored_predictions = predictions[predictions["hash"] == trial.hash]
        assert len(stored_predictions) == len(reference.predictions)
        for (_, epoch, _, _, values), (_, row) in zip(reference.predictions, stored_predictions.iterrows()):
            assert row["epoch"] == epoch
            np.testing.assert_array_equal(row["values"], values)
        # save_weights: best = the epoch of least validation loss, its weights exactly
        assert rows[backend] is not None and rows[backend]["epoch"] == reference.weights_epoch
        validation = stored[stored["metric"] == "validation_loss"].set_index("epoch")["value"]
        assert reference.weights_epoch == int(validation.idxmin())
        from harness.weights import decode

        saved, _ = decode((store / rows[backend]["file"]).read_bytes())
        assert saved.keys() == reference.weights.keys()
        for key in saved:
            np.testing.assert_array_equal(saved[key], reference.weights[key])


@pytest.mark.slow
@pytest.mark.keras
def test_torch_weights_load_into_keras_with_the_same_predictions(
    killed_run: tuple[Path, Path, subprocess.CompletedProcess], torch_adapter: object, keras_adapter: object
) -> None:
    import harness

    suite_path, store, process = killed_run
    assert process.returncode == 0, process.stderr
    data = load_dataset(load_suite(suite_path).trials[0].spec.dataset)
    x_test = data.split("test")[0]
    results = store / "resume"
    in_keras = harness.load_weights(results, arm="base", seed=0, backend="keras", trained_in="torch")
    in_torch = harness.load_weights(results, arm="base", seed=0, backend="torch")
    torch_outputs, keras_outputs = in_torch.predict(x_test), in_keras.predict(x_test)
    np.testing.assert_allclose(keras_outputs, torch_outputs, rtol=1e-5, atol=1e-5)  # float32 arithmetic
    np.testing.assert_array_equal(keras_outputs.argmax(axis=1), torch_outputs.argmax(axis=1))
    with pytest.raises(harness.HarnessError, match="Did you mean 'base'"):
        harness.load_weights(results, arm="bsae", seed=0)


def _spec(tmp_path: Path, seed: int = 0):
    """A 2-epoch torch trial on digits that saves its final weights."""
    text = SUITE.replace("backends: [torch, keras]", "backends: [torch]").replace("epochs: 3", "epochs: 2")
    text = text.replace("save_weights: best", "save_weights: final").replace("seeds: [0]", f"seeds: [{seed}]")
    return load_suite(write_suite(tmp_path, text, f"seed{seed}.yaml")).trials[0].spec


def test_a_checkpoint_cut_short_or_of_another_spec_is_never_loaded(tmp_path: Path, torch_adapter: object) -> None:
    from harness.adapters.loop import train_trial

    spec, other = _spec(tmp_path), _spec(tmp_path, seed=1)
    data = load_dataset(spec.dataset)
    reference = train_trial(spec, torch_adapter, data)
    assert reference.weights_epoch == 2 and set(reference.weights) == {
        "0.dense.kernel",
        "0.dense.bias",
        "2.dense.kernel",
        "2.dense.bias",
    }
    versions = torch_adapter.versions()
    for case in ("cut short", "another trial spec"):
        folder = tmp_path / case
        built = torch_adapter.build(other if case == "another trial spec" else spec, data.info)
        arrays, meta = built.training_state()
        written = checkpoint_file(folder, spec.hash)
        if case == "cut short":
            write_checkpoint(written, spec, versions, Checkpoint(1, arrays, meta, {}, {}))
            written.write_bytes(written.read_bytes()[:-100])  # a write the machine died in
        else:  # a valid checkpoint of trial `other`, under this trial's name
            write_checkpoint(checkpoint_file(folder, other.hash), other, versions, Checkpoint(1, arrays, meta, {}, {}))
            checkpoint_file(folder, other.hash).rename(written)
        result = train_trial(spec, torch_adapter, data, folder)
        assert [event[1] for event in result.events] == [DISCARDED]
        assert case in result.events[0][2], result.events[0][2]
        assert result.metrics == reference.metrics  # from zero, to the same end
        assert not written.exists()


def test_hash_is_unchanged_without_the_new_keys_and_ignores_checkpoint_every(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    plain = dataclasses.replace(
        spec, training=dataclasses.replace(spec.training, save_weights="none", checkpoint_every=None)
    )
    assert "save_weights" not in plain.training.to_dict() and "checkpoint_every" not in plain.training.to_dict()
    every = dataclasses.replace(spec, training=dataclasses.replace(spec.training, checkpoint_every=5))
    assert every.hash == spec.hash  # how often it checkpoints changes no result
    assert plain.hash != spec.hash  # whether it keeps weights does


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (
            "{epochs: 2, batch_size: 16, save_weights: fnal}",
            "training.save_weights: expected one of 'none', 'final', 'best'",
        ),
        ("{epochs: 2, batch_size: 16, save_weights: fnal}", "Did you mean 'final'?"),
        (
            "{epochs: 2, batch_size: 16, checkpoint_every: 0}",
            "training.checkpoint_every: expected a number of epochs > 0",
        ),
        ("{epochs: 2, batch_size: 16, save_weights: best}", "the dataset has no validation split"),
    ],
)
def test_bad_training_keys_exit_2_and_write_nothing(tmp_path: Path, training: str, message: str) -> None:
    suite = write_suite(
        tmp_path,
        SUITE.replace("validation: 0.2", "validation: 0.0").replace(
            "{epochs: 3, batch_size: 100, save_weights: best, checkpoint_every: 1}", training
        ),
    )
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store"), "-q"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "store").exists()


def test_save_weights_into_an_unwritable_store_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / WEIGHTS_FOLDER).write_text("not a folder")
    suite = write_suite(tmp_path, SUITE)
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store), "-q"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "exists and is not a folder" in result.output and "Nothing was run or written" in result.output
    assert sorted(path.name for path in store.iterdir()) == [WEIGHTS_FOLDER]  # no harness.sqlite
    assert not (store / DATABASE_NAME).exists()


class _Interrupted(Exception):
    """Stands for the process dying: raised out of the training loop, so the checkpoint stays behind."""


def test_a_trial_with_plateau_schedule_and_early_stopping_resumes_to_the_uninterrupted_result(
    tmp_path: Path, torch_adapter: object
) -> None:
    """reduce_on_plateau's and early stopping's state (best value, patience counts, the kept best weights)
    live in the loop, not in the optimizer: a checkpoint must carry them, or the resumed trial's rates and
    its stopping epoch differ from an uninterrupted trial's."""
    from harness.adapters.loop import train_trial

    text = SUITE.replace("backends: [torch, keras]", "backends: [torch]").replace(
        "training: {epochs: 3, batch_size: 100, save_weights: best, checkpoint_every: 1}",
        "training: {epochs: 8, batch_size: 100, checkpoint_every: 1,\n"
        "  lr_schedule: {name: reduce_on_plateau, metric: validation_accuracy, patience: 0, factor: 0.5, min_delta: 0.5},\n"
        "  early_stopping: {metric: validation_loss, patience: 2, min_delta: 0.05, restore_best: true}}",
    )
    spec = load_suite(write_suite(tmp_path, text)).trials[0].spec
    data = load_dataset(spec.dataset)
    reference = train_trial(spec, torch_adapter, data)
    rates = [value for _, name, value in reference.metrics if name == "lr"]
    assert len(set(rates)) > 1, rates  # the plateau rule did lower the rate: its state matters
    interrupt_at = 4
    assert max(epoch for epoch, _, _ in reference.metrics) > interrupt_at  # the trial runs past the interruption

    class Dying:
        """The torch adapter whose models die in epoch `interrupt_at`, after the checkpoint of the epoch before."""

        def __getattr__(self, name: str) -> object:
            return getattr(torch_adapter, name)

        def build(self, *args: object) -> object:
            model = torch_adapter.build(*args)
            train_epoch, calls = model.train_epoch, [0]

            def dying(*epoch_args: object) -> object:
                calls[0] += 1
                if calls[0] == interrupt_at:
                    raise _Interrupted
                return train_epoch(*epoch_args)

            model.train_epoch = dying
            return model

    folder = tmp_path / "checkpoints"
    with pytest.raises(_Interrupted):
        train_trial(spec, Dying(), data, folder)
    assert checkpoint_file(folder, spec.hash).exists()
    resumed = train_trial(spec, torch_adapter, data, folder)
    assert [event[1] for event in resumed.events] == [RESUMED]
    assert resumed.metrics == reference.metrics
    assert [row[:2] for row in resumed.predictions] == [row[:2] for row in reference.predictions]
