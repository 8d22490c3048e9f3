"""The Keras adapter realizes every canonical layer exactly: each forward pass is checked against the
numpy (float64) implementation of the canonical formula in tests/test_torch_layers.py, from the same
canonical weights; plus batch_norm's training step, graph outputs, transformer dropout, and the
diagnostics methods layer_outputs and gradients."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

pytest.importorskip("keras")
pytest.importorskip("tensorflow")
pytest.importorskip("torch")  # the shared numpy references live in the torch layer tests' module

from harness.adapters import get_adapter  # noqa: E402
from harness.adapters.keras.realize import REALIZERS  # noqa: E402
from harness.spec.init import initial_weights, weight_key  # noqa: E402
from harness.spec.layers import LAYERS  # noqa: E402
from tests.test_torch_layers import (  # noqa: E402
    ATOL,
    CASES,
    RTOL,
    case_inputs,
    case_model,
    feeds_batch_norm,
    info_for,
    make_spec,
    random_weights,
    reference,
    reference_layer,
)

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def adapter():
    adapter = get_adapter("keras")
    adapter.configure(None)  # deterministic kernels
    return adapter


def build(adapter, raw, input_shape, num_outputs=3, loss="mse", **options):
    spec = make_spec(raw, num_outputs, loss, input_shape=input_shape, **options)
    return spec, adapter.build(spec, info_for(input_shape, num_outputs, loss))


def test_every_layer_kind_has_a_keras_realization():
    assert set(REALIZERS) == set(LAYERS)


@pytest.mark.parametrize("name", CASES, ids=str)
def test_forward_matches_the_canonical_formula(adapter, name):
    input_shape, raw = case_model(name)
    spec, model = build(adapter, raw, input_shape)
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(sum(map(ord, name)))
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    loaded = model.get_weights()
    assert loaded.keys() == weights.keys() and all(np.array_equal(loaded[k], weights[k]) for k in weights)  # exact round trip
    x = case_inputs(raw, input_shape, rng)
    expected, _ = reference(spec.model, plans, weights, x)
    outputs = model.predict_outputs(x)
    for output_name, value in expected.items():
        assert outputs[output_name].shape == value.shape
        np.testing.assert_allclose(outputs[output_name], value, rtol=RTOL, atol=ATOL)
    # one optimizer step runs and moves every trainable tensor (and only those)
    y = rng.normal(size=(len(x), 3)).astype(np.float32)
    model.set_training_data(x, y)
    loss = model.train_epoch([np.arange(len(x))])
    assert np.isfinite(loss).all()
    after = model.get_weights()
    for plan in plans:
        for tensor in plan.tensors:
            key = weight_key(plan, tensor)
            # zero gradients by construction: see the torch test (bias before batch_norm, attention's key bias)
            exempt = tensor.role == "bias" and (feeds_batch_norm(plans, plan.index) or tensor.name == "key_bias")
            if tensor.trainable and not exempt:
                assert not np.array_equal(after[key], weights[key]), f"{key} did not train"


@pytest.mark.parametrize("shape", [(5,), (6, 5, 2)], ids=["dense", "conv2d"])
def test_batch_norm_training_step_and_moving_statistics(adapter, shape):
    """Training normalizes with the biased batch variance; moving_variance takes the UNBIASED one."""
    layers = [{"batch_norm": {"momentum": 0.8}}, {"flatten": {}}, {"dense": {}}] if len(shape) > 1 else [
        {"batch_norm": {"momentum": 0.8}}, {"dense": {}}]
    spec, model = build(adapter, {"layers": layers}, shape, optimizer={"name": "sgd", "lr": 1e-3})
    plans = spec.model.plan(shape)
    rng = np.random.default_rng(4)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(1.0, 2.0, size=(6, *shape)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    expected, state = reference(spec.model, plans, weights, x, training=True)
    model.set_training_data(x, y)
    (loss,) = model.train_epoch([np.arange(6)])  # the loss is of the forward pass, before the update
    assert loss == pytest.approx(float(np.mean((expected["output"] - y) ** 2)), rel=1e-5)
    after = model.get_weights()
    np.testing.assert_allclose(after["0.batch_norm.moving_mean"], state["0.batch_norm.moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after["0.batch_norm.moving_variance"], state["0.batch_norm.moving_variance"], rtol=1e-5, atol=1e-6)
    # the biased convention would differ by (1-m)*var/(n-1): far outside the tolerance
    assert not np.allclose(after["0.batch_norm.moving_variance"], state["0.batch_norm.biased_moving_variance"], rtol=1e-3)


def test_several_outputs_minimize_the_weighted_mean_and_record_each_loss(adapter):
    raw = {"graph": {"inputs": "x", "nodes": [
        {"name": "hidden", "layer": {"dense": {"units": 6, "activation": "tanh"}}, "from": "x"},
        {"name": "main", "layer": {"dense": {}}},
        {"name": "aux", "layer": {"dense": {}}, "from": "x"},
    ], "outputs": [{"from": "main", "weight": 1.0}, {"from": "aux", "weight": 3.0}]}}
    spec, model = build(adapter, raw, (5,), 4, "cross_entropy", optimizer={"name": "sgd", "lr": 0.1})
    plans = spec.model.plan((5,))
    rng = np.random.default_rng(11)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    expected, _ = reference(spec.model, plans, weights, x)
    per_output = {name: float(-special.log_softmax(z, axis=1)[np.arange(16), y].mean()) for name, z in expected.items()}
    model.set_training_data(x, y)
    (total,) = model.train_epoch([np.arange(16)])
    assert total == pytest.approx((1.0 * per_output["main"] + 3.0 * per_output["aux"]) / 4.0, rel=1e-5)
    assert model.output_losses["main"][0] == pytest.approx(per_output["main"], rel=1e-5)
    assert model.output_losses["aux"][0] == pytest.approx(per_output["aux"], rel=1e-5)
    np.testing.assert_array_equal(model.predict(x), model.predict_outputs(x)["main"])  # predict = the FIRST output


def train_steps(adapter, spec, input_shape, steps=3, num_outputs=3):
    model = adapter.build(spec, info_for(input_shape, num_outputs, spec.loss.name))
    model.set_weights(initial_weights(spec.model.plan(input_shape), spec.initializer, spec.seed))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(24, *input_shape)).astype(np.float32)
    y = rng.normal(size=(24, num_outputs)).astype(np.float32)
    model.set_training_data(x, y)
    losses = model.train_epoch([np.arange(i * 8, (i + 1) * 8) for i in range(steps)])
    return losses, model.get_weights(), model


def test_transformer_dropout_is_active_in_training_only_and_seeded(adapter):
    raw = {"layers": [{"transformer_encoder": {"heads": 2, "ffn_units": 8, "dropout": 0.5}}, {"flatten": {}}, {"dense": {}}]}
    no_dropout = {"layers": [{"transformer_encoder": {"heads": 2, "ffn_units": 8}}, {"flatten": {}}, {"dense": {}}]}
    spec, plain = make_spec(raw, input_shape=(6, 4)), make_spec(no_dropout, input_shape=(6, 4))
    with_losses, with_weights, model = train_steps(adapter, spec, (6, 4), steps=1)
    again_losses, again_weights, _ = train_steps(adapter, spec, (6, 4), steps=1)
    plain_losses, _, _ = train_steps(adapter, plain, (6, 4), steps=1)
    assert with_losses[0] != plain_losses[0]  # the masks act in training
    assert np.array_equal(with_losses, again_losses) and all(np.array_equal(with_weights[k], again_weights[k]) for k in with_weights)
    weights = initial_weights(spec.model.plan((6, 4)), spec.initializer, 0)
    model.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    expected, _ = reference(spec.model, spec.model.plan((6, 4)), weights, x)
    np.testing.assert_allclose(model.predict(x), expected["output"], rtol=RTOL, atol=ATOL)  # and off in evaluation


@pytest.mark.parametrize("name", ["cnn", "gru", "mlp", "logistic"], ids=str)
def test_keras_trains_exactly_the_canonical_parameters_of_the_mnist1d_models(adapter, name):
    raw, input_shape, expected = {
        "logistic": ({"layers": [{"dense": {}}]}, (40,), 410),
        "mlp": ({"mlp": {"hidden": [100, 100], "residual": True}}, (40,), 15_210),
        "cnn": ({"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}}, (40, 1), 5_210),
        "gru": ({"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}, (40, 1), 5_134),
    }[name]
    _, model = build(adapter, raw, input_shape, 10, "cross_entropy")
    assert sum(int(np.prod(v.shape)) for v in model.network.model.trainable_variables) == expected
    assert sum(int(np.prod(v.shape)) for v in model.network.kernels + model.network.biases) == expected


# --- diagnostics: layer_outputs and gradients ----------------------------------------------------

DIAGNOSTIC_MODELS = {
    "cnn-bn": ((10, 2), [{"conv1d": {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}},
                         {"batch_norm": {}}, {"max_pool1d": {}}, {"flatten": {}}, {"dense": {"units": 4, "activation": "tanh"}}, {"dense": {}}]),
    "gru-attention": ((6, 3), [{"gru": {"units": 4, "return_sequences": True}}, {"multi_head_attention": {"heads": 2, "key_dim": 2}},
                               {"layer_norm": {}}, {"global_avg_pool": {}}, {"dense": {}}]),
}


@pytest.mark.parametrize("name", DIAGNOSTIC_MODELS, ids=str)
def test_layer_outputs_are_every_layer_in_evaluation_mode(adapter, name):
    input_shape, layers = DIAGNOSTIC_MODELS[name]
    spec, model = build(adapter, {"layers": layers}, input_shape)
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(2)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(5, *input_shape)).astype(np.float32)
    outputs = model.layer_outputs(x)
    assert len(outputs) == len(plans)
    value = x.astype(np.float64)
    for plan, output in zip(plans, outputs):
        w = {t.name: weights[weight_key(plan, t)].astype(np.float64) for t in plan.tensors}
        value = reference_layer(plan, [value], w, False, {})
        assert output.dtype == np.float32 and output.shape == (5, *plan.output_shape)
        np.testing.assert_allclose(output, value, rtol=RTOL, atol=ATOL, err_msg=plan.name)


@pytest.mark.parametrize("name", DIAGNOSTIC_MODELS, ids=str)
def test_gradients_equal_the_first_sgd_step_and_change_nothing(adapter, name):
    """With plain SGD at lr 1 and no clipping, one step moves each tensor by exactly -gradient."""
    input_shape, layers = DIAGNOSTIC_MODELS[name]
    spec, model = build(adapter, {"layers": layers}, input_shape, optimizer={"name": "sgd", "lr": 1.0})
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(3)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(8, *input_shape)).astype(np.float32)
    y = rng.normal(size=(8, 3)).astype(np.float32)
    gradients = model.gradients(x, y)
    again = model.gradients(x, y)
    assert model.get_weights().keys() == weights.keys()
    assert all(np.array_equal(model.get_weights()[k], weights[k]) for k in weights)  # moving statistics untouched
    trainable = {weight_key(p, t) for p in plans for t in p.tensors if t.trainable}
    assert set(gradients) == trainable
    assert all(np.array_equal(gradients[k], again[k]) for k in gradients)
    model.set_training_data(x, y)
    model.train_epoch([np.arange(8)])
    after = model.get_weights()
    for key, gradient in gradients.items():
        # the step computes w - 1.0*g in float32: the difference carries the rounding of |w| (~6e-8 * |w|)
        np.testing.assert_allclose(weights[key] - after[key], gradient, rtol=1e-5, atol=1e-6, err_msg=key)
    assert any(np.abs(g).max() > 1e-3 for g in gradients.values())
