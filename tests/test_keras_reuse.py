"""A finished Keras trial's model - and its traced functions - reused by the next trial of the same form in a
worker (harness.adapters.keras.reuse), and tracing timed apart as compile_seconds. Keras on TensorFlow, in-process;
keras-jax and keras-torch reuse is checked in tests/test_keras_adapter.py (their own processes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers.specs import arrays_info, trial_spec

from harness.adapters.loop import train_trial
from harness.data.types import Dataset, DatasetInfo
from harness.spec import RegularizerSpec
from harness.spec.schedules import resolve_schedule

pytestmark = pytest.mark.keras

# The stateful parts a restart must put back: batch_norm statistics, dropout seed states (plain layers,
# LSTM cells, the transformer's), optimizer slots that do not start at zero (adagrad), the iteration count.
RESTART_CASES = {
    "mlp-batch-norm-dropout": (
        (5,),
        [{"dense": {"units": 8}}, {"batch_norm": {}}, {"activation": "relu"}, {"dropout": 0.3}, {"dense": {}}],
        "adagrad",
    ),
    "cnn-batch-norm": (
        (12, 12, 1),
        {"cnn": {"filters": [4], "padding": "same", "batch_norm": True, "pool": "avg", "dense": [8]}},
        "adam",
    ),
    "lstm-bidirectional": ((10, 2), {"rnn": {"cell": "lstm", "units": 4, "depth": 2, "bidirectional": True}}, "adam"),
    "transformer-dropout": ((10, 2), {"transformer": {"depth": 1, "heads": 2, "width": 8}}, "momentum"),
}


def _state(model) -> list[tuple[str, str, np.ndarray]]:
    """(name, dtype, value) of every variable the model's functions read: the network's and the optimizer's
    (names, not paths: a path holds Keras' per-process counter of seed generators)."""
    variables = [*model.network.model.variables, *model.optimizer.variables]
    return [(variable.name, str(variable.dtype), np.array(variable.numpy())) for variable in variables]


@pytest.mark.parametrize("name", sorted(RESTART_CASES))
def test_a_restarted_model_holds_exactly_what_a_new_build_holds(keras_adapter, name):
    input_shape, raw, optimizer = RESTART_CASES[name]
    worker = type(keras_adapter)("keras")  # an empty cache, like a new worker's
    first = trial_spec(
        raw, 3, input_shape=input_shape, optimizer={"name": optimizer, "lr": 0.01}, dropout=0.3, backend="keras"
    )
    # another seed, learning rate, initializer and init mode: none of them is part of the reuse key
    second = dataclasses.replace(
        first,
        seed=7,
        optimizer=dataclasses.replace(first.optimizer, params=(*dict(first.optimizer.params, lr=0.3).items(),)),
        initializer=trial_spec(initializer="xavier_uniform").initializer,
        init_mode="native",
    )
    info = arrays_info(input_shape, 3, "cross_entropy")
    model = worker.build(first, info)
    rng = np.random.default_rng(0)
    for variable in [*model.network.model.variables, *model.optimizer.variables]:  # as if trained: nothing at its start
        variable.assign(rng.integers(1, 1000, size=tuple(variable.shape)).astype(str(variable.dtype)))
    worker.release(model)
    reused = worker.build(second, info)
    assert reused is model and reused.reused
    fresh = type(keras_adapter)("keras").build(second, info)
    restarted, built = _state(reused), _state(fresh)
    assert [(name, dtype) for name, dtype, _ in restarted] == [(name, dtype) for name, dtype, _ in built]
    for index, ((name, _, value), (_, _, expected)) in enumerate(zip(restarted, built)):
        assert np.array_equal(value, expected), f"variable {index} ({name})"
    assert any(name == "seed_generator_state" for name, _, _ in built)  # dropout seed states were covered


def classification_data(samples: int = 48, features: int = 5, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(samples, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1)).astype(np.int64)
    third = samples // 3
    return Dataset(
        DatasetInfo("arrays", "classification", (features,), classes, classes),
        x[: 2 * third],
        y[: 2 * third],
        x[2 * third :],
        y[2 * third :],
        x[2 * third :],
        y[2 * third :],
    )


def test_a_trial_on_a_reused_model_equals_it_on_a_new_worker(keras_adapter):
    data = classification_data()
    a = trial_spec(
        {"mlp": {"hidden": [8]}}, 3, optimizer={"name": "adam", "lr": 0.05}, dropout=0.3, epochs=2, backend="keras"
    )
    # B differs in everything the key leaves out: seed, lr, batch size (steps per epoch), a schedule, init mode.
    # Shared init resets the optimizer on set_weights: to B's learning rate, not A's.
    b = dataclasses.replace(
        a,
        seed=1,
        optimizer=dataclasses.replace(a.optimizer, params=(*dict(a.optimizer.params, lr=0.2).items(),)),
        training=dataclasses.replace(a.training, batch_size=6, lr_schedule=resolve_schedule("cosine")),
        init_mode="native",
    )
    worker = type(keras_adapter)("keras")
    first_a, b_after_a, a_again = (train_trial(spec, worker, data) for spec in (a, b, a))
    b_alone = train_trial(b, type(keras_adapter)("keras"), data)
    assert first_a.status == b_alone.status == "ok" and first_a.metrics != b_alone.metrics
    assert a_again.metrics == first_a.metrics  # bit for bit, dropout masks included
    assert b_after_a.metrics == b_alone.metrics
    # traced once: A's epoch function and forward; B's schedule needs the epoch function with rates
    assert first_a.compile_seconds > 0 and a_again.compile_seconds == 0.0
    assert b_after_a.compile_seconds > 0 and b_alone.compile_seconds > 0
    # (B's compile time is not compared with a fresh build's: the difference, one traced forward, is within a
    # loaded machine's noise; A again, at 0, shows the reuse.) One model is kept per key:
    assert len(worker.reusable) == 1


def test_the_reuse_key_is_what_a_trace_depends_on(keras_adapter):
    from harness.adapters.keras.reuse import reuse_key

    base = trial_spec(
        {"mlp": {"hidden": [8]}},
        3,
        optimizer={"name": "adam", "lr": 0.05},
        regularizer=RegularizerSpec(l2=1e-4),
        backend="keras",
    )
    info = arrays_info((5,), 3, "cross_entropy")
    key = reuse_key(base, info, "cpu:0")

    def with_optimizer(**params: float):
        return dataclasses.replace(
            base,
            optimizer=dataclasses.replace(base.optimizer, params=(*dict(base.optimizer.params, **params).items(),)),
        )

    same = [
        dataclasses.replace(base, seed=5),
        with_optimizer(lr=0.5),  # a variable the trace reads
        dataclasses.replace(base, training=dataclasses.replace(base.training, batch_size=3, epochs=9)),
        dataclasses.replace(base, init_mode="native", initializer=trial_spec(initializer="orthogonal").initializer),
    ]
    assert {reuse_key(spec, info, "cpu:0") for spec in same} == {key}
    other = [
        with_optimizer(beta1=0.8),  # a Python constant of the trace
        dataclasses.replace(base, regularizer=RegularizerSpec(l2=1e-3)),
        trial_spec({"mlp": {"hidden": [9]}}, 3, optimizer={"name": "adam", "lr": 0.05}, backend="keras"),
        trial_spec({"mlp": {"hidden": [8]}}, 3, optimizer={"name": "adam", "lr": 0.05}, dropout=0.1, backend="keras"),
    ]
    keys = [reuse_key(spec, info, "cpu:0") for spec in other]
    keys += [reuse_key(base, arrays_info((6,), 3, "cross_entropy"), "cpu:0"), reuse_key(base, info, "gpu:0")]
    assert key not in keys and len(set(keys)) == len(keys)


def test_graphs_dropped_by_seeding_tensorflow_are_instantiated_again_as_compile_time(keras_adapter):
    data = classification_data()
    spec = trial_spec({"mlp": {"hidden": [8]}}, 3, optimizer={"name": "adam", "lr": 0.05}, backend="keras")
    worker = type(keras_adapter)("keras")
    first = train_trial(spec, worker, data)
    worker.seed_globals(0, everything=True)  # as a Python model's build does: tf.random.set_seed clears the caches
    again = train_trial(spec, worker, data)
    assert again.metrics == first.metrics and first.compile_seconds > 0
    assert again.compile_seconds > 0  # the kept model's functions were instantiated again (not traced: reused)
    assert len(worker.reusable) == 1
