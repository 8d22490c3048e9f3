"""Every adapter realizes every canonical layer exactly: each forward pass is checked against the float64
numpy implementation of the canonical formula (tests/helpers/layer_reference.py) from the same canonical
weights; plus batch_norm's training step, graph outputs, transformer dropout, determinism, parameter
counts, native initialization, and the diagnostics methods layer_outputs and gradients. Each test runs
once per framework (the `adapter` fixture of tests/conftest.py: ids 'torch' and 'keras').

Framework-specific checks (torch's second recurrent bias) live in tests/test_torch_layers.py.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from helpers.layer_reference import (
    feeds_batch_norm,
    random_weights,
    reference,
    reference_layer,
)
from helpers.params import cases_per_adapter
from helpers.specs import arrays_info, trial_spec
from scipy import special, stats

from harness.spec import initial_weights, resolve_model, weight_key
from harness.spec.layers import LAYERS

# float32 adapters vs float64 numpy through a few layers of O(1) values: each op rounds at ~6e-8
# relative, sums of up to ~500 terms and recurrences over 12 steps accumulate to a measured worst
# ~3e-6; 1e-4 relative / 1e-5 absolute leaves a wide margin and still fails any wrong formula
# (a wrong gate order, padding side or variance changes outputs at the 1e-2 level).
RTOL, ATOL = 1e-4, 1e-5


def layer_spec(adapter, raw, input_shape=None, num_outputs=3, loss="mse", **options):
    """The TrialSpec of model `raw` for `adapter` (mse on 3 regression targets unless told)."""
    return trial_spec(raw, num_outputs, loss=loss, input_shape=input_shape, backend=adapter.name, **options)


def build_with_random_weights(adapter, spec, input_shape, seed):
    """(model, plans, weights, rng): `spec` built for `input_shape`, loaded with random canonical weights."""
    plans = spec.model.plan(input_shape)
    model = adapter.build(spec, arrays_info(input_shape, plans[-1].output_shape[-1], spec.loss.name))
    rng = np.random.default_rng(seed)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    return model, plans, weights, rng


# --- forward cases: (input shape, model) ------------------------------------------------------------

HEAD = [{"flatten": {}}, {"dense": {}}]
CASES = {
    "conv1d-int-pad-stride": (
        (11, 2),
        [{"conv1d": {"filters": 4, "kernel_size": 5, "strides": 2, "padding": 1, "activation": "relu"}}],
    ),
    "conv1d-same-even-kernel-stride": (
        (9, 3),
        [{"conv1d": {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"}}],
    ),
    "conv1d-same-dilation": (
        (10, 2),
        [{"conv1d": {"filters": 3, "kernel_size": 3, "dilation": 2, "padding": "same", "use_bias": False}}],
    ),
    "conv2d-same-stride": (
        (7, 6, 2),
        [{"conv2d": {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"}}],
    ),
    "conv2d-valid-dilation-rect": ((8, 7, 2), [{"conv2d": {"filters": 3, "kernel_size": [2, 3], "dilation": [2, 1]}}]),
    "conv2d-int-pad-per-axis": (
        (5, 6, 1),
        [{"conv2d": {"filters": 3, "kernel_size": 3, "padding": [2, 0], "strides": [1, 2]}}],
    ),
    "pools-1d-same": (
        (8, 3),
        [
            {"max_pool1d": {"pool_size": 3, "strides": 2, "padding": "same"}},
            {"avg_pool1d": {"pool_size": 3, "strides": 1, "padding": "same"}},
        ],
    ),
    "pools-2d": (
        (7, 6, 2),
        [{"avg_pool2d": {"pool_size": 2, "padding": "same"}}, {"max_pool2d": {"pool_size": [2, 1]}}],
    ),
    "avg-pool2d-valid-stride": ((7, 7, 2), [{"avg_pool2d": {"pool_size": 3, "strides": 2}}]),
    "conv-global-avg": ((9, 2), [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"global_avg_pool": {}}, {"dense": {}}]),
    "conv2d-global-max": (
        (6, 6, 2),
        [{"conv2d": {"filters": 4, "kernel_size": 3}}, {"global_max_pool": {}}, {"dense": {}}],
    ),
    "conv-softmax-channels": ((9, 2), [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"activation": "softmax"}]),
    "reshape-to-conv": ((12,), [{"reshape": {"target_shape": [6, 2]}}, {"conv1d": {"filters": 3, "kernel_size": 2}}]),
    "conv-reshape": (
        (8, 2),
        [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"reshape": {"target_shape": [4, -1]}}, {"lstm": {"units": 2}}],
    ),
    "batch-norm-dense": (
        (5,),
        [{"dense": {"units": 6}}, {"batch_norm": {"eps": 1e-3}}, {"activation": "relu"}, {"dense": {}}],
    ),
    "batch-norm-conv2d": ((6, 5, 2), [{"conv2d": {"filters": 3, "kernel_size": 3}}, {"batch_norm": {}}]),
    "batch-norm-sequence": ((7, 3), [{"gru": {"units": 4, "return_sequences": True}}, {"batch_norm": {}}]),
    "layer-norm": ((6, 4), [{"layer_norm": {"eps": 1e-3}}]),
    "simple-rnn-last": ((12, 3), [{"simple_rnn": {"units": 5}}, {"dense": {}}]),
    "simple-rnn-bi-sequences": (
        (6, 2),
        [{"simple_rnn": {"units": 3, "bidirectional": True, "return_sequences": True}}],
    ),
    "lstm-last": ((12, 3), [{"lstm": {"units": 5}}, {"dense": {}}]),
    "lstm-bi-sequences": ((7, 2), [{"lstm": {"units": 3, "bidirectional": True, "return_sequences": True}}]),
    "gru-last": ((12, 3), [{"gru": {"units": 5}}, {"dense": {}}]),
    "gru-bi-last": ((7, 2), [{"gru": {"units": 3, "bidirectional": True}}, {"dense": {}}]),
    "stacked-lstm-gru": (
        (6, 2),
        [{"lstm": {"units": 4, "return_sequences": True}}, {"gru": {"units": 3, "bidirectional": True}}, {"dense": {}}],
    ),
    "embedding-gru": ((9,), [{"embedding": {"vocabulary": 11, "dim": 4}}, {"gru": {"units": 3}}, {"dense": {}}]),
    "position-self-attention": (
        (6, 4),
        [{"position_embedding": {}}, {"multi_head_attention": {"heads": 2, "key_dim": 3}}],
    ),
    "attention-causal-dims": (
        (5, 4),
        [{"multi_head_attention": {"heads": 3, "key_dim": 2, "value_dim": 5, "output_dim": 6, "causal": True}}],
    ),
    "attention-no-bias": ((5, 4), [{"multi_head_attention": {"heads": 1, "key_dim": 4, "use_bias": False}}]),
    "transformer-post": ((6, 8), [{"transformer_encoder": {"heads": 2, "ffn_units": 16}}]),
    "transformer-pre-gelu": (
        (6, 8),
        [{"transformer_encoder": {"heads": 4, "ffn_units": 12, "norm": "pre", "activation": "gelu", "key_dim": 3}}],
    ),
    "mnist1d-cnn": ((40, 1), {"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}}),
    "mnist1d-gru": ((40, 1), {"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}),
    "mnist1d-residual-mlp": ((40,), {"mlp": {"hidden": [20, 20], "residual": True}}),
    "lenet5-digits": ((8, 8, 1), {"lenet5": {}}),
    "transformer-family": ((10, 1), {"transformer": {"depth": 2, "heads": 2, "width": 8}}),
    "graph-merge-layouts": (
        (12, 3),
        {
            "graph": {
                "inputs": "x",
                "nodes": [
                    {
                        "name": "conv",
                        "layer": {"conv1d": {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}},
                        "from": "x",
                    },
                    {"name": "rnn", "layer": {"lstm": {"units": 2, "return_sequences": True}}, "from": "x"},
                    {"name": "joined", "layer": {"concatenate": {}}, "from": ["conv", "rnn"]},
                    {"name": "conv2", "layer": {"conv1d": {"filters": 6, "kernel_size": 1}}, "from": "x"},
                    {"name": "summed", "layer": {"add": {}}, "from": ["conv2", "joined"]},
                    {"name": "pooled", "layer": {"max_pool1d": {}}},
                    {"name": "flat", "layer": {"flatten": {}}},
                    {"name": "out", "layer": {"dense": {}}},
                ],
            }
        },
    ),
    "graph-conv-merge-first-layout": (
        (8, 2),
        {
            "graph": {
                "nodes": [
                    {
                        "name": "a",
                        "layer": {"conv1d": {"filters": 3, "kernel_size": 3, "padding": "same"}},
                        "from": "input",
                    },
                    {"name": "b", "layer": {"conv1d": {"filters": 2, "kernel_size": 1}}, "from": "input"},
                    {"name": "joined", "layer": {"concatenate": {}}, "from": ["a", "b"]},
                    {"name": "normed", "layer": {"batch_norm": {}}},
                    {"name": "pooled", "layer": {"global_avg_pool": {}}},
                    {"name": "out", "layer": {"dense": {}}},
                ]
            }
        },
    ),
    "graph-cross-attention": (
        (6, 4),
        {
            "graph": {
                "nodes": [
                    {"name": "context", "layer": {"conv1d": {"filters": 5, "kernel_size": 2}}, "from": "input"},
                    {
                        "name": "attended",
                        "layer": {"multi_head_attention": {"heads": 2, "key_dim": 3}},
                        "from": ["input", "context"],
                    },
                    {"name": "flat", "layer": {"flatten": {}}},
                    {"name": "out", "layer": {"dense": {}}},
                ]
            }
        },
    ),
}


def case_model(name):
    """(input shape, raw model) of a case; a layer list gets a head down to the 3 outputs if it needs one."""
    input_shape, raw = CASES[name]
    if isinstance(raw, list):
        plans = resolve_model({"layers": raw}, 3).plan(input_shape)
        final = plans[-1].output_shape
        raw = {"layers": raw + (HEAD if len(final) > 1 else [{"dense": {}}] if final != (3,) else [])}
    return input_shape, raw


def case_inputs(raw, input_shape, rng, batch=5):
    """A batch for the case: token ids below the vocabulary for an embedding first, else standard normal."""
    first = next(iter(raw.values()))
    if isinstance(first, list) and "embedding" in first[0]:
        return rng.integers(0, first[0]["embedding"]["vocabulary"], (batch, *input_shape)).astype(np.float32)
    return rng.normal(size=(batch, *input_shape)).astype(np.float32)


def layer_kinds(name):
    input_shape, raw = case_model(name)
    return {layer.kind for layer in resolve_model(raw, 3, input_shape=input_shape).layers}


def test_every_layer_kind_has_a_realization(adapter):
    realizers = importlib.import_module(f"harness.adapters.{adapter.name}.realize").REALIZERS
    assert set(realizers) == set(LAYERS)


def test_every_layer_kind_has_a_forward_case():
    used = {kind for name in CASES for kind in layer_kinds(name)}
    assert used | {"dropout"} == set(
        LAYERS
    )  # dropout: see test_transformer_dropout_is_active_in_training_only_and_seeded


@pytest.mark.parametrize("name", CASES, ids=str)
def test_forward_matches_the_canonical_formula(adapter, name):
    input_shape, raw = case_model(name)
    spec = layer_spec(adapter, raw, input_shape)
    model, plans, weights, rng = build_with_random_weights(adapter, spec, input_shape, seed=sum(map(ord, name)))
    loaded = model.get_weights()
    assert loaded.keys() == weights.keys() and all(
        np.array_equal(loaded[k], weights[k]) for k in weights
    )  # exact round trip
    x = case_inputs(raw, input_shape, rng)
    expected, _ = reference(spec.model, plans, weights, x)
    outputs = model.predict_outputs(x)
    for output_name, value in expected.items():
        assert outputs[output_name].shape == value.shape
        np.testing.assert_allclose(outputs[output_name], value, rtol=RTOL, atol=ATOL)
    # one optimizer step runs (backward under deterministic kernels) and moves every trainable tensor
    y = rng.normal(size=(len(x), 3)).astype(np.float32)
    model.set_training_data(x, y)
    loss = model.train_epoch([np.arange(len(x))])
    assert np.isfinite(loss).all()
    after = model.get_weights()
    for plan in plans:
        for tensor in plan.tensors:
            key = weight_key(plan, tensor)
            # zero gradients by construction: a bias right before batch_norm (the normalization removes
            # any shift) and attention's key bias (q.b_k is the same for every key: softmax ignores it)
            exempt = tensor.role == "bias" and (feeds_batch_norm(plans, plan.index) or tensor.name == "key_bias")
            if tensor.trainable and not exempt:
                assert not np.array_equal(after[key], weights[key]), f"{key} did not train"


# --- training steps ------------------------------------------------------------------------------------

BATCH_NORM_INPUTS = {  # name: (input shape, layers before batch_norm)
    "after-conv1d": ((9, 2), [{"conv1d": {"filters": 3, "kernel_size": 3}}]),
    "vector": ((5,), []),
    "image": ((6, 5, 2), []),
}


@pytest.mark.parametrize("name", BATCH_NORM_INPUTS, ids=str)
def test_batch_norm_training_step_and_moving_statistics(adapter, name):
    """Training normalizes with the biased batch variance; moving_variance takes the UNBIASED one."""
    input_shape, before = BATCH_NORM_INPUTS[name]
    layers = [
        *before,
        {"batch_norm": {"momentum": 0.8, "eps": 1e-3}},
        *([{"flatten": {}}] if len(input_shape) > 1 else []),
        {"dense": {}},
    ]
    spec = layer_spec(adapter, layers, optimizer={"name": "sgd", "lr": 1e-3})
    model, plans, weights, rng = build_with_random_weights(adapter, spec, input_shape, seed=4)
    key = next(plan.name for plan in plans if plan.layer.kind == "batch_norm")
    x = rng.normal(1.0, 2.0, size=(6, *input_shape)).astype(np.float32)  # off-centre: a wrong mean shows
    y = rng.normal(size=(6, 3)).astype(np.float32)
    expected, state = reference(spec.model, plans, weights, x, training=True)
    model.set_training_data(x, y)
    (loss,) = model.train_epoch([np.arange(6)])  # the loss is of the forward pass, before the update
    assert loss == pytest.approx(float(np.mean((expected["output"] - y) ** 2)), rel=1e-5)
    after = model.get_weights()
    # moving statistics: momentum*old + (1-momentum)*batch, the variance unbiased (n = 6 * positions values per channel)
    np.testing.assert_allclose(after[f"{key}.moving_mean"], state[f"{key}.moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[f"{key}.moving_variance"], state[f"{key}.moving_variance"], rtol=1e-5, atol=1e-6)
    # the biased convention would differ by (1-m)*var/(n-1): far outside the tolerance
    biased = state[f"{key}.biased_moving_variance"]
    assert np.abs(after[f"{key}.moving_variance"] - biased).max() > 1e-3
    assert not np.allclose(after[f"{key}.moving_variance"], biased, rtol=1e-3)
    # evaluation mode normalizes with the moving statistics loaded, and predict updates nothing
    eval_expected, _ = reference(spec.model, plans, after, x)
    np.testing.assert_allclose(model.predict(x), eval_expected["output"], rtol=RTOL, atol=ATOL)
    assert np.array_equal(model.get_weights()[f"{key}.moving_mean"], after[f"{key}.moving_mean"])


def test_several_outputs_minimize_the_weighted_mean_and_record_each_loss(adapter):
    raw = {
        "graph": {
            "inputs": "x",
            "nodes": [
                {"name": "hidden", "layer": {"dense": {"units": 6, "activation": "tanh"}}, "from": "x"},
                {"name": "main", "layer": {"dense": {}}},
                {"name": "aux", "layer": {"dense": {}}, "from": "x"},
            ],
            "outputs": [{"from": "main", "weight": 1.0}, {"from": "aux", "weight": 3.0}],
        }
    }
    spec = layer_spec(adapter, raw, num_outputs=4, loss="cross_entropy", optimizer={"name": "sgd", "lr": 0.1})
    model, plans, weights, rng = build_with_random_weights(adapter, spec, (5,), seed=11)
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
    """(losses, final weights, model): `steps` steps of 8 from the shared initial weights on fixed random data."""
    model = adapter.build(spec, arrays_info(input_shape, num_outputs, spec.loss.name))
    model.set_weights(initial_weights(spec.model.plan(input_shape), spec.initializer, spec.seed))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(24, *input_shape)).astype(np.float32)
    y = (
        rng.integers(0, num_outputs, 24)
        if spec.loss.name == "cross_entropy"
        else rng.normal(size=(24, num_outputs)).astype(np.float32)
    )
    model.set_training_data(x, y)
    losses = model.train_epoch([np.arange(i * 8, (i + 1) * 8) for i in range(steps)])
    return losses, model.get_weights(), model


DETERMINISM_MODELS = {
    "cnn-bn-pool": (
        (12, 12, 1),
        {"cnn": {"filters": [4, 4], "padding": "same", "batch_norm": True, "pool": "avg", "dense": [8]}},
    ),
    "gru-lstm": ((10, 2), {"rnn": {"cell": "lstm", "units": 4, "depth": 2, "bidirectional": True}}),
    "transformer-dropout": ((10, 2), {"transformer": {"depth": 1, "heads": 2, "width": 8}}),
}


# torch only: for Keras, bit-identical repeats are checked by the transformer dropout test below and
# tests/test_adapters.py (the loop end to end); these three models would add ~13 s of Keras tracing.
@cases_per_adapter("name", {"torch": list(DETERMINISM_MODELS)})
def test_training_steps_are_deterministic(adapter, name):
    input_shape, raw = DETERMINISM_MODELS[name]
    spec = layer_spec(adapter, raw, input_shape, optimizer={"name": "adam", "lr": 0.01}, dropout=0.3)
    first_losses, first, _ = train_steps(adapter, spec, input_shape)
    again_losses, again, _ = train_steps(adapter, spec, input_shape)
    assert np.array_equal(first_losses, again_losses) and np.isfinite(first_losses).all()
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_transformer_dropout_is_active_in_training_only_and_seeded(adapter):
    raw = {
        "layers": [
            {"transformer_encoder": {"heads": 2, "ffn_units": 8, "dropout": 0.5}},
            {"flatten": {}},
            {"dense": {}},
        ]
    }
    no_dropout = {"layers": [{"transformer_encoder": {"heads": 2, "ffn_units": 8}}, {"flatten": {}}, {"dense": {}}]}
    spec, plain = layer_spec(adapter, raw, (6, 4)), layer_spec(adapter, no_dropout, (6, 4))
    with_losses, with_weights, model = train_steps(adapter, spec, (6, 4), steps=1)
    again_losses, again_weights, _ = train_steps(adapter, spec, (6, 4), steps=1)
    plain_losses, _, _ = train_steps(adapter, plain, (6, 4), steps=1)
    assert with_losses[0] != plain_losses[0]  # the masks act in training
    assert np.array_equal(with_losses, again_losses) and all(
        np.array_equal(with_weights[k], again_weights[k]) for k in with_weights
    )
    weights = initial_weights(spec.model.plan((6, 4)), spec.initializer, 0)
    model.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    expected, _ = reference(spec.model, spec.model.plan((6, 4)), weights, x)
    np.testing.assert_allclose(model.predict(x), expected["output"], rtol=RTOL, atol=ATOL)  # and off in evaluation


# (every parameter the framework holds, the ones its optimizer updates): how each framework lists them
TRAINED_PARAMETER_COUNTS = {
    "torch": lambda model: (
        sum(p.numel() for p in model.network.parameters),
        sum(p.numel() for p in model.network.module.parameters() if p.requires_grad),
    ),
    "keras": lambda model: (
        sum(math.prod(v.shape) for v in model.network.model.trainable_variables),
        sum(math.prod(v.shape) for v in model.network.kernels + model.network.biases),
    ),
}


@pytest.mark.parametrize("name", ["cnn", "gru", "mlp", "logistic"], ids=str)
def test_trains_exactly_the_canonical_parameters_of_the_mnist1d_models(adapter, name):
    raw, input_shape, expected = {
        "logistic": ({"layers": [{"dense": {}}]}, (40,), 410),
        "mlp": ({"mlp": {"hidden": [100, 100], "residual": True}}, (40,), 15_210),
        "cnn": (
            {"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}},
            (40, 1),
            5_210,
        ),
        "gru": ({"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}, (40, 1), 5_134),
    }[name]
    spec = layer_spec(adapter, raw, input_shape, num_outputs=10, loss="cross_entropy")
    model = adapter.build(spec, arrays_info(input_shape, 10, "cross_entropy"))
    assert TRAINED_PARAMETER_COUNTS[adapter.name](model) == (expected, expected)


# --- native initialization: each framework's own initializers, configured to the canonical meaning ---------


def test_native_init_of_every_role(adapter):
    raw = {
        "layers": [
            {"conv1d": {"filters": 200, "kernel_size": 3}},
            {"batch_norm": {}},
            {"lstm": {"units": 50, "return_sequences": True}},
            {"gru": {"units": 50, "recurrent_initializer": {"name": "normal", "std": 0.2}}},
            {"dense": {}},
        ]
    }
    spec = layer_spec(adapter, raw, init_mode="native", initializer="he_normal", seed=4)
    weights = adapter.build(spec, arrays_info((12, 100))).get_weights()
    conv_kernel = weights["0.conv1d.kernel"].ravel()  # fan_in 3*100
    assert stats.kstest(conv_kernel, stats.norm(0, np.sqrt(2 / 300)).cdf).pvalue > 1e-3
    assert weights["1.batch_norm.gamma"].tolist() == [1.0] * 200 and not weights["1.batch_norm.moving_mean"].any()
    assert weights["1.batch_norm.moving_variance"].tolist() == [1.0] * 200
    recurrent = weights["2.lstm.recurrent_kernel"].astype(np.float64)  # (50, 200): orthonormal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(50), atol=1e-5)  # float32 sums of 200 terms
    assert not weights["2.lstm.bias"].any() and not weights["3.gru.bias"].any()
    assert abs(weights["3.gru.recurrent_kernel"].std() / 0.2 - 1) < 0.05  # 7,500 draws: std within ~1%
    again = adapter.build(spec, arrays_info((12, 100))).get_weights()
    assert all(np.array_equal(weights[k], again[k]) for k in weights)  # seeded


def test_native_fan_in_uniform_biases_and_embeddings(adapter):
    raw = {"layers": [{"embedding": {"vocabulary": 300, "dim": 40}}, {"simple_rnn": {"units": 100}}, {"dense": {}}]}
    weights = adapter.build(
        layer_spec(adapter, raw, init_mode="native", initializer="fan_in_uniform"), arrays_info((7,))
    ).get_weights()
    table = weights["0.embedding.embeddings"]
    assert np.abs(table).max() <= 0.05 and stats.kstest(table.ravel(), stats.uniform(-0.05, 0.1).cdf).pvalue > 1e-3
    bias = weights["1.simple_rnn.bias"]  # the canonical recurrent bias rule (PyTorch's): U(+-1/sqrt(units))
    assert np.abs(bias).max() <= 0.1 and np.abs(bias).max() > 0.09
    kernel = weights["1.simple_rnn.kernel"]  # fan_in 40
    assert np.abs(kernel).max() <= 1 / np.sqrt(40) and np.abs(kernel).max() > 0.99 / np.sqrt(40)


# --- diagnostics: layer_outputs and gradients ----------------------------------------------------------

DIAGNOSTIC_MODELS = {
    "cnn-bn": (
        (10, 2),
        [
            {"conv1d": {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}},
            {"batch_norm": {}},
            {"max_pool1d": {}},
            {"flatten": {}},
            {"dense": {"units": 4, "activation": "tanh"}},
            {"dense": {}},
        ],
    ),
    "gru-attention": (
        (6, 3),
        [
            {"gru": {"units": 4, "return_sequences": True}},
            {"multi_head_attention": {"heads": 2, "key_dim": 2}},
            {"layer_norm": {}},
            {"global_avg_pool": {}},
            {"dense": {}},
        ],
    ),
}


@pytest.mark.parametrize("name", DIAGNOSTIC_MODELS, ids=str)
def test_layer_outputs_are_every_layer_in_evaluation_mode(adapter, name):
    input_shape, layers = DIAGNOSTIC_MODELS[name]
    spec = layer_spec(adapter, layers, input_shape)
    model, plans, weights, rng = build_with_random_weights(adapter, spec, input_shape, seed=2)
    x = rng.normal(size=(5, *input_shape)).astype(np.float32)
    outputs = model.layer_outputs(x)
    assert len(outputs) == len(plans)
    value = x.astype(np.float64)
    for plan, output in zip(plans, outputs):
        w = {t.name: weights[weight_key(plan, t)].astype(np.float64) for t in plan.tensors}
        value = reference_layer(plan, [value], w, False, {})
        assert output.dtype == np.float32 and output.shape == (5, *plan.output_shape)  # canonical channels-last layout
        np.testing.assert_allclose(output, value, rtol=RTOL, atol=ATOL, err_msg=plan.name)


@pytest.mark.parametrize("name", DIAGNOSTIC_MODELS, ids=str)
def test_gradients_equal_the_first_sgd_step_and_change_nothing(adapter, name):
    """With plain SGD at lr 1 and no clipping, one step moves each tensor by exactly -gradient."""
    input_shape, layers = DIAGNOSTIC_MODELS[name]
    spec = layer_spec(adapter, layers, input_shape, optimizer={"name": "sgd", "lr": 1.0})
    model, plans, weights, rng = build_with_random_weights(adapter, spec, input_shape, seed=3)
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
