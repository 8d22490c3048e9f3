"""PyTorch and Keras agree under every learning-rate schedule and under early stopping.

Step schedules: harness.parity from the same weights on the same batches, each step at its scheduled
rate: the loss of every step and every parameter after it agree (the whole schedule fits in the
steps checked: T = 12). reduce_on_plateau and early stopping act between epochs, so they are
checked on whole trials (harness.adapters.loop.train_trial) in both backends: the same rate per
epoch, the same stop and best epoch, and restored weights whose metrics are the best epoch's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from harness.adapters.loop import train_trial
from harness.data import dataset_info, load_dataset, resolve_dataset
from harness.measures import BEST_EPOCH, LEARNING_RATE, RESTORED_EPOCH, STOPPED_EPOCH
from harness.parity import parity_check
from harness.spec import RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model
from harness.spec.schedules import resolve_early_stopping, resolve_schedule

pytestmark = pytest.mark.keras

BACKENDS = ("torch", "keras")
# 96 training rows (120 - 20% validation), batch 32: 3 steps per epoch, 4 epochs: T = 12
DATASET = {"name": "iris", "validation": 0.2}
STEPS = 12
SCHEDULES = {
    "constant": "constant",
    "step": {"name": "step", "step_size": 4, "gamma": 0.5},
    "exponential": {"name": "exponential", "gamma": 0.8},
    "cosine": {"name": "cosine", "warmup_steps": 3, "min_lr": 0.01},
    "linear_warmup_cosine": {"name": "linear_warmup_cosine", "warmup_steps": 4, "start_factor": 0.1, "T_max": 6},
    "one_cycle": {"name": "one_cycle", "pct_start": 0.4},
}


def make_spec(schedule=None, early_stopping=None, optimizer="adamw", epochs=4, lr=0.05) -> tuple[TrialSpec, object]:
    dataset = resolve_dataset(DATASET)
    info = dataset_info(dataset)
    spec = TrialSpec(
        dataset=dataset,
        model=resolve_model(
            {"mlp": {"hidden": [8], "activation": "tanh"}}, info.num_outputs, input_shape=info.input_shape
        ),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", {"name": optimizer, "lr": lr}, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(
            epochs=epochs,
            batch_size=32,
            lr_schedule=resolve_schedule(schedule) if schedule is not None else None,
            early_stopping=resolve_early_stopping(early_stopping) if early_stopping is not None else None,
        ),
        seed=1,
        backend="torch",
    )
    return spec, load_dataset(dataset)


@pytest.mark.parametrize("name", sorted(SCHEDULES), ids=sorted(SCHEDULES))
def test_every_step_schedule_agrees_step_by_step(name) -> None:
    # adamw: the scheduled rate drives both the rule and the decoupled decay (kernel -= lr_t*wd*kernel)
    spec, data = make_spec(SCHEDULES[name])
    result = parity_check(spec, BACKENDS, data, steps=STEPS)
    assert result.passed, result.message()
    assert np.all(np.isfinite(result.losses["torch"]))


@pytest.fixture(scope="module")
def adapters(torch_adapter, keras_adapter) -> dict:
    return {"torch": torch_adapter, "keras": keras_adapter}


def test_each_step_rate_reaches_the_optimizer_so_parity_is_not_vacuous(adapters) -> None:
    spec, data = make_spec(SCHEDULES["exponential"])
    rates = np.array([0.05, 0.02, 0.01])
    for backend, adapter in adapters.items():
        model = adapter.build(dataclasses.replace(spec, backend=backend), data.info)
        model.set_training_data(data.x_train, data.y_train)
        model.train_epoch([np.arange(8), np.arange(8, 16), np.arange(16, 24)], rates)
        if backend == "torch":
            used = model.optimizer.optimizer.param_groups[0]["lr"]
            assert model.optimizer.decay_factor == pytest.approx(1 - 0.01 * spec.optimizer["weight_decay"])
        else:
            used = float(np.asarray(model.optimizer.learning_rate))
        assert used == pytest.approx(0.01), backend  # the last step's rate, not the optimizer's lr (0.05)


def run(spec: TrialSpec, data, backend: str, adapters: dict) -> tuple[dict[tuple[int, str], float], object]:
    result = train_trial(dataclasses.replace(spec, backend=backend), adapters[backend], data)
    return {(epoch, name): value for epoch, name, value in result.metrics}, result


def test_reduce_on_plateau_and_early_stopping_agree_on_whole_trials(adapters) -> None:
    # min_delta 10 on validation_loss: only epoch 1 counts as better, so the rate is cut after every later
    # epoch (patience 0) and training stops when patience 2 runs out (after epoch 3), restoring epoch 1
    plateau = {"name": "reduce_on_plateau", "patience": 0, "factor": 0.5, "min_delta": 10.0}
    spec, data = make_spec(plateau, {"patience": 2, "min_delta": 10.0}, optimizer="sgd", epochs=6, lr=0.1)
    runs = {backend: run(spec, data, backend, adapters) for backend in BACKENDS}
    for metrics, result in runs.values():
        assert [metrics[(epoch, LEARNING_RATE)] for epoch in (1, 2, 3)] == pytest.approx([0.1, 0.1, 0.05])
        assert (metrics[(1, STOPPED_EPOCH)], metrics[(1, BEST_EPOCH)], metrics[(1, RESTORED_EPOCH)]) == (3, 1, 1)
        assert result.epochs_completed == 3 and result.final()["test_loss"] == metrics[(1, "test_loss")]
    torch_metrics, keras_metrics = runs["torch"][0], runs["keras"][0]
    assert torch_metrics.keys() == keras_metrics.keys()
    for key, value in torch_metrics.items():
        assert keras_metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key

    # the restored weights are epoch 1's: a one-epoch trial on the same seed and batches scores the same
    one_epoch, _ = make_spec(None, None, optimizer="sgd", epochs=1, lr=0.1)
    for backend in BACKENDS:
        _, short = run(one_epoch, data, backend, adapters)
        assert runs[backend][1].final()["test_accuracy"] == short.final()["test_accuracy"]
        assert runs[backend][1].final()["test_loss"] == pytest.approx(short.final()["test_loss"], rel=1e-6)


def test_without_restore_the_trial_ends_at_the_stopped_epoch(torch_adapter) -> None:
    spec, data = make_spec(None, {"patience": 1, "min_delta": 10.0, "restore_best": False}, optimizer="sgd", epochs=5)
    result = train_trial(spec, torch_adapter, data)
    metrics = {(epoch, name): value for epoch, name, value in result.metrics}
    assert result.epochs_completed == 2 and max(epoch for epoch, _, _ in result.metrics) == 2
    assert (metrics[(2, STOPPED_EPOCH)], metrics[(2, BEST_EPOCH)]) == (2, 1) and (2, RESTORED_EPOCH) not in metrics
