"""The PyTorch adapter realizes every canonical layer exactly: each forward pass is checked against a
numpy (float64) implementation of the canonical formula, from the same canonical weights; plus
batch_norm's training step, recurrent bias gradients, graph outputs, native init and determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

torch = pytest.importorskip("torch")

from harness.adapters import get_adapter  # noqa: E402
from harness.adapters.torch.realize import REALIZERS  # noqa: E402
from harness.data.types import DatasetInfo  # noqa: E402
from harness.spec import DatasetSpec, RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model  # noqa: E402
from harness.spec.init import initial_weights, weight_key  # noqa: E402
from harness.spec.layers import LAYERS  # noqa: E402

# float32 torch vs float64 numpy through a few layers of O(1) values: each op rounds at ~6e-8
# relative, sums of up to ~500 terms and recurrences over 12 steps accumulate to a measured worst
# ~3e-6; 1e-4 relative / 1e-5 absolute leaves a wide margin and still fails any wrong formula
# (a wrong gate order, padding side or variance changes outputs at the 1e-2 level).
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def adapter():
    adapter = get_adapter("torch")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    adapter.configure(1)  # deterministic algorithms on: every op here must support them (forward and backward)
    yield adapter
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def make_spec(
    model_raw, num_outputs=3, loss="mse", optimizer="sgd", initializer="he_normal", init_mode="shared", seed=0,
    input_shape=None, dropout=0.0,
) -> TrialSpec:
    return TrialSpec(
        dataset=DatasetSpec("arrays"),
        model=resolve_model(model_raw, num_outputs, dropout=dropout, input_shape=input_shape),
        loss=resolve_component("loss", loss, "loss"),
        optimizer=resolve_component("optimizer", optimizer, "optimizer"),
        initializer=resolve_component("initializer", initializer, "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=1, batch_size=8),
        seed=seed,
        backend="torch",
        init_mode=init_mode,
    )


def info_for(input_shape, num_outputs=3, loss="mse") -> DatasetInfo:
    if loss == "cross_entropy":
        return DatasetInfo("arrays", "classification", tuple(input_shape), num_outputs, num_outputs)
    return DatasetInfo("arrays", "regression", tuple(input_shape), num_outputs, None)


def random_weights(plans, rng) -> dict[str, np.ndarray]:
    """Canonical weights with every tensor non-trivial (biases, gamma, beta and BN state too), so a
    misplaced bias, gate block or statistic cannot hide behind a zero or a one."""
    weights = {}
    for plan in plans:
        for tensor in plan.tensors:
            shape = tensor.shape
            if tensor.role in ("kernel", "recurrent_kernel"):
                fan_in = math.prod(shape[:-1])
                array = rng.normal(0, 1.2 / np.sqrt(fan_in), shape)
            elif tensor.role == "moving_variance":
                array = rng.uniform(0.5, 2.0, shape)
            elif tensor.role == "gamma":
                array = 1 + 0.3 * rng.normal(size=shape)
            else:  # bias, beta, moving_mean, embedding
                array = 0.3 * rng.normal(size=shape)
            weights[weight_key(plan, tensor)] = array.astype(np.float32)
    return weights


# --- numpy reference of the canonical formulas (float64, channels-last, batch axis first) -------

def activate(component, z):
    name = component.name
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return special.expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "leaky_relu":
        return np.where(z > 0, z, component["negative_slope"] * z)
    if name == "elu":
        return np.where(z > 0, z, component["alpha"] * np.expm1(z))
    if name == "gelu":
        return 0.5 * z * (1 + special.erf(z / np.sqrt(2)))
    if name == "softmax":
        return special.softmax(z, axis=-1)
    raise AssertionError(name)


def tf_same(length, kernel, stride, dilation):
    span = (kernel - 1) * dilation + 1
    total = max((math.ceil(length / stride) - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def paddings_of(x, kernel, strides, dilation, padding):
    spatial = x.shape[1:-1]
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "same":
        return [tf_same(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    return [(p, p) for p in padding]


def windows(padded, kernel, strides, dilation):
    """Yield (kernel offset, view of every window's cell at that offset), views (N, *out, C)."""
    out = [(padded.shape[1 + a] - ((k - 1) * d + 1)) // s + 1 for a, (k, s, d) in enumerate(zip(kernel, strides, dilation))]
    for offset in np.ndindex(*kernel):
        index = tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, s, o in zip(offset, dilation, strides, out))
        yield offset, padded[(slice(None), *index)]


def conv(x, p, w):
    kernel, strides, dilation = p["kernel_size"], p["strides"], p["dilation"]
    pads = paddings_of(x, kernel, strides, dilation, p["padding"])
    padded = np.pad(x, [(0, 0), *pads, (0, 0)])
    total = sum(view @ w["kernel"][offset] for offset, view in windows(padded, kernel, strides, dilation))
    return activate(p["activation"], total + w.get("bias", 0.0))


def pool(x, p, mode):
    size = p["pool_size"]
    strides = p["strides"] or size
    pads = paddings_of(x, size, strides, (1,) * len(size), p["padding"])
    padded = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=np.nan)  # NaN = not a real cell
    stack = np.stack([view for _, view in windows(padded, size, strides, (1,) * len(size))])
    return np.nanmax(stack, axis=0) if mode == "max" else np.nanmean(stack, axis=0)


def normalize(x, axes, mean, variance, gamma, beta, eps):
    return gamma * (x - mean) / np.sqrt(variance + eps) + beta


def batch_norm(x, p, w, training, state):
    axes = tuple(range(x.ndim - 1))
    if not training:
        return normalize(x, axes, w["moving_mean"], w["moving_variance"], w["gamma"], w["beta"], p["eps"])
    mean, variance = x.mean(axis=axes), x.var(axis=axes)  # biased, for normalizing
    n = x.size // x.shape[-1]
    m = p["momentum"]
    state["moving_mean"] = m * w["moving_mean"] + (1 - m) * mean
    state["moving_variance"] = m * w["moving_variance"] + (1 - m) * variance * n / (n - 1)  # unbiased
    state["biased_moving_variance"] = m * w["moving_variance"] + (1 - m) * variance  # what the other convention gives
    return normalize(x, axes, mean, variance, w["gamma"], w["beta"], p["eps"])


def layer_norm(x, w, eps, prefix=""):
    return normalize(x, -1, x.mean(-1, keepdims=True), x.var(-1, keepdims=True), w[f"{prefix}gamma"], w[f"{prefix}beta"], eps)


def run_direction(kind, x, kernel, recurrent, bias, reverse):
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    h, c = np.zeros((batch, units)), np.zeros((batch, units))
    outputs = np.zeros((batch, steps, units))
    for t in (reversed(range(steps)) if reverse else range(steps)):
        if kind == "simple_rnn":
            h = np.tanh(x[:, t] @ kernel + h @ recurrent + bias)
        elif kind == "lstm":
            i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=-1)  # gate order i, f, c, o
            c = special.expit(f) * c + special.expit(i) * np.tanh(g)
            h = special.expit(o) * np.tanh(c)
        else:  # gru, reset-after, gate order z, r, n
            xz, xr, xn = np.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
            hz, hr, hn = np.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = special.expit(xz + hz), special.expit(xr + hr)
            h = z * h + (1 - z) * np.tanh(xn + r * hn)
        outputs[:, t] = h
    return outputs, h


def recurrent(kind, x, p, w):
    directions = [("forward_", False), ("backward_", True)] if p["bidirectional"] else [("", False)]
    results = [run_direction(kind, x, w[f"{d}kernel"], w[f"{d}recurrent_kernel"], w[f"{d}bias"], reverse) for d, reverse in directions]
    return np.concatenate([r[0] if p["return_sequences"] else r[1] for r in results], axis=-1)


def attention(query, context, w, heads, key_dim, value_dim, causal, prefix=""):
    def project(x, name):
        return x @ w[f"{prefix}{name}_kernel"] + w.get(f"{prefix}{name}_bias", 0.0)

    def split(x, dim):
        return x.reshape(x.shape[0], x.shape[1], heads, dim).transpose(0, 2, 1, 3)  # (N, H, T, dim)

    q, k, v = split(project(query, "query"), key_dim), split(project(context, "key"), key_dim), split(project(context, "value"), value_dim)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(key_dim)  # (N, H, Tq, Tk)
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    heads_out = special.softmax(scores, axis=-1) @ v
    merged = heads_out.transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], heads * value_dim)
    return project(merged, "output")


def transformer(x, p, w):
    width = x.shape[-1]
    key_dim = p["key_dim"] or width // p["heads"]

    def mha(z):
        return attention(z, z, w, p["heads"], key_dim, key_dim, False)

    def ffn(z):
        return activate(p["activation"], z @ w["ffn1_kernel"] + w["ffn1_bias"]) @ w["ffn2_kernel"] + w["ffn2_bias"]

    eps = p["eps"]
    if p["norm"] == "pre":
        h = x + mha(layer_norm(x, w, eps, "norm1_"))
        return h + ffn(layer_norm(h, w, eps, "norm2_"))
    h = layer_norm(x + mha(x), w, eps, "norm1_")
    return layer_norm(h + ffn(h), w, eps, "norm2_")


def reference_layer(plan, inputs, w, training, state):
    p = dict(plan.layer.params)
    x, kind = inputs[0], plan.layer.kind
    if kind == "dense":
        return activate(p["activation"], x @ w["kernel"] + w.get("bias", 0.0))
    if kind == "activation":
        return activate(p["activation"], x)
    if kind == "dropout":
        return x
    if kind in ("conv1d", "conv2d"):
        return conv(x, p, w)
    if kind.startswith(("max_pool", "avg_pool")):
        return pool(x, p, kind[:3])
    if kind in ("global_avg_pool", "global_max_pool"):
        axes = tuple(range(1, x.ndim - 1))
        return x.mean(axis=axes) if kind == "global_avg_pool" else x.max(axis=axes)
    if kind == "flatten":
        return x.reshape(len(x), -1)  # row-major, channels-last
    if kind == "reshape":
        return x.reshape(len(x), *plan.output_shape)
    if kind == "batch_norm":
        return batch_norm(x, p, w, training, state)
    if kind == "layer_norm":
        return layer_norm(x, w, p["eps"])
    if kind in ("simple_rnn", "lstm", "gru"):
        return recurrent(kind, x, p, w)
    if kind == "embedding":
        return w["embeddings"][x.astype(np.int64)]
    if kind == "position_embedding":
        return x + w["embeddings"]
    if kind == "multi_head_attention":
        context = inputs[1] if len(inputs) > 1 else x
        return attention(x, context, w, p["heads"], p["key_dim"], p["value_dim"] or p["key_dim"], p["causal"])
    if kind == "transformer_encoder":
        return transformer(x, p, w)
    if kind == "add":
        return sum(inputs)
    if kind == "concatenate":
        return np.concatenate(inputs, axis=-1)
    raise AssertionError(kind)


def reference(model, plans, weights, x, training=False):
    """Every output of the model (by name) computed with the canonical formulas; BN state updates in `state`."""
    values = {-1: x.astype(np.float64)}
    state: dict[str, np.ndarray] = {}
    for plan in plans:
        w = {t.name: weights[weight_key(plan, t)].astype(np.float64) for t in plan.tensors}
        layer_state: dict[str, np.ndarray] = {}
        values[plan.index] = reference_layer(plan, [values[s] for s in plan.inputs], w, training, layer_state)
        state.update({f"{plan.name}.{name}": value for name, value in layer_state.items()})
    return {o.name: values[o.index] for o in model.outputs()}, state


# --- forward cases: (input shape, model, input kind) ---------------------------------------------

HEAD = [{"flatten": {}}, {"dense": {}}]
CASES = {
    "conv1d-int-pad-stride": ((11, 2), [{"conv1d": {"filters": 4, "kernel_size": 5, "strides": 2, "padding": 1, "activation": "relu"}}]),
    "conv1d-same-even-kernel-stride": ((9, 3), [{"conv1d": {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"}}]),
    "conv1d-same-dilation": ((10, 2), [{"conv1d": {"filters": 3, "kernel_size": 3, "dilation": 2, "padding": "same", "use_bias": False}}]),
    "conv2d-same-stride": ((7, 6, 2), [{"conv2d": {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"}}]),
    "conv2d-valid-dilation-rect": ((8, 7, 2), [{"conv2d": {"filters": 3, "kernel_size": [2, 3], "dilation": [2, 1]}}]),
    "conv2d-int-pad-per-axis": ((5, 6, 1), [{"conv2d": {"filters": 3, "kernel_size": 3, "padding": [2, 0], "strides": [1, 2]}}]),
    "pools-1d-same": ((8, 3), [{"max_pool1d": {"pool_size": 3, "strides": 2, "padding": "same"}},
                               {"avg_pool1d": {"pool_size": 3, "strides": 1, "padding": "same"}}]),
    "pools-2d": ((7, 6, 2), [{"avg_pool2d": {"pool_size": 2, "padding": "same"}}, {"max_pool2d": {"pool_size": [2, 1]}}]),
    "avg-pool2d-valid-stride": ((7, 7, 2), [{"avg_pool2d": {"pool_size": 3, "strides": 2}}]),
    "conv-global-avg": ((9, 2), [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"global_avg_pool": {}}, {"dense": {}}]),
    "conv2d-global-max": ((6, 6, 2), [{"conv2d": {"filters": 4, "kernel_size": 3}}, {"global_max_pool": {}}, {"dense": {}}]),
    "conv-softmax-channels": ((9, 2), [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"activation": "softmax"}]),
    "reshape-to-conv": ((12,), [{"reshape": {"target_shape": [6, 2]}}, {"conv1d": {"filters": 3, "kernel_size": 2}}]),
    "conv-reshape": ((8, 2), [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"reshape": {"target_shape": [4, -1]}}, {"lstm": {"units": 2}}]),
    "batch-norm-dense": ((5,), [{"dense": {"units": 6}}, {"batch_norm": {"eps": 1e-3}}, {"activation": "relu"}, {"dense": {}}]),
    "batch-norm-conv2d": ((6, 5, 2), [{"conv2d": {"filters": 3, "kernel_size": 3}}, {"batch_norm": {}}]),
    "batch-norm-sequence": ((7, 3), [{"gru": {"units": 4, "return_sequences": True}}, {"batch_norm": {}}]),
    "layer-norm": ((6, 4), [{"layer_norm": {"eps": 1e-3}}]),
    "simple-rnn-last": ((12, 3), [{"simple_rnn": {"units": 5}}, {"dense": {}}]),
    "simple-rnn-bi-sequences": ((6, 2), [{"simple_rnn": {"units": 3, "bidirectional": True, "return_sequences": True}}]),
    "lstm-last": ((12, 3), [{"lstm": {"units": 5}}, {"dense": {}}]),
    "lstm-bi-sequences": ((7, 2), [{"lstm": {"units": 3, "bidirectional": True, "return_sequences": True}}]),
    "gru-last": ((12, 3), [{"gru": {"units": 5}}, {"dense": {}}]),
    "gru-bi-last": ((7, 2), [{"gru": {"units": 3, "bidirectional": True}}, {"dense": {}}]),
    "stacked-lstm-gru": ((6, 2), [{"lstm": {"units": 4, "return_sequences": True}}, {"gru": {"units": 3, "bidirectional": True}}, {"dense": {}}]),
    "embedding-gru": ((9,), [{"embedding": {"vocabulary": 11, "dim": 4}}, {"gru": {"units": 3}}, {"dense": {}}]),
    "position-self-attention": ((6, 4), [{"position_embedding": {}}, {"multi_head_attention": {"heads": 2, "key_dim": 3}}]),
    "attention-causal-dims": ((5, 4), [{"multi_head_attention": {"heads": 3, "key_dim": 2, "value_dim": 5, "output_dim": 6, "causal": True}}]),
    "attention-no-bias": ((5, 4), [{"multi_head_attention": {"heads": 1, "key_dim": 4, "use_bias": False}}]),
    "transformer-post": ((6, 8), [{"transformer_encoder": {"heads": 2, "ffn_units": 16}}]),
    "transformer-pre-gelu": ((6, 8), [{"transformer_encoder": {"heads": 4, "ffn_units": 12, "norm": "pre", "activation": "gelu", "key_dim": 3}}]),
    "mnist1d-cnn": ((40, 1), {"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}}),
    "mnist1d-gru": ((40, 1), {"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}),
    "mnist1d-residual-mlp": ((40,), {"mlp": {"hidden": [20, 20], "residual": True}}),
    "lenet5-digits": ((8, 8, 1), {"lenet5": {}}),
    "transformer-family": ((10, 1), {"transformer": {"depth": 2, "heads": 2, "width": 8}}),
    "graph-merge-layouts": ((12, 3), {"graph": {"inputs": "x", "nodes": [
        {"name": "conv", "layer": {"conv1d": {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}}, "from": "x"},
        {"name": "rnn", "layer": {"lstm": {"units": 2, "return_sequences": True}}, "from": "x"},
        {"name": "joined", "layer": {"concatenate": {}}, "from": ["conv", "rnn"]},
        {"name": "conv2", "layer": {"conv1d": {"filters": 6, "kernel_size": 1}}, "from": "x"},
        {"name": "summed", "layer": {"add": {}}, "from": ["conv2", "joined"]},
        {"name": "pooled", "layer": {"max_pool1d": {}}},
        {"name": "flat", "layer": {"flatten": {}}},
        {"name": "out", "layer": {"dense": {}}},
    ]}}),
    "graph-conv-merge-first-layout": ((8, 2), {"graph": {"nodes": [
        {"name": "a", "layer": {"conv1d": {"filters": 3, "kernel_size": 3, "padding": "same"}}, "from": "input"},
        {"name": "b", "layer": {"conv1d": {"filters": 2, "kernel_size": 1}}, "from": "input"},
        {"name": "joined", "layer": {"concatenate": {}}, "from": ["a", "b"]},
        {"name": "normed", "layer": {"batch_norm": {}}},
        {"name": "pooled", "layer": {"global_avg_pool": {}}},
        {"name": "out", "layer": {"dense": {}}},
    ]}}),
    "graph-cross-attention": ((6, 4), {"graph": {"nodes": [
        {"name": "context", "layer": {"conv1d": {"filters": 5, "kernel_size": 2}}, "from": "input"},
        {"name": "attended", "layer": {"multi_head_attention": {"heads": 2, "key_dim": 3}}, "from": ["input", "context"]},
        {"name": "flat", "layer": {"flatten": {}}},
        {"name": "out", "layer": {"dense": {}}},
    ]}}),
}


def case_model(name):
    input_shape, raw = CASES[name]
    if isinstance(raw, list):
        plans = resolve_model({"layers": raw}, 3).plan(input_shape)
        final = plans[-1].output_shape
        raw = {"layers": raw + (HEAD if len(final) > 1 else [{"dense": {}}] if final != (3,) else [])}
    return input_shape, raw


def case_inputs(raw, input_shape, rng, batch=5):
    first = next(iter(raw.values()))
    if isinstance(first, list) and "embedding" in first[0]:
        return rng.integers(0, first[0]["embedding"]["vocabulary"], (batch, *input_shape)).astype(np.float32)
    return rng.normal(size=(batch, *input_shape)).astype(np.float32)


def test_every_layer_kind_has_a_realization_and_a_case():
    assert set(REALIZERS) == set(LAYERS)
    used = {kind for name in CASES for kind in layer_kinds(name)}
    assert used | {"dropout"} == set(LAYERS)  # dropout: see test_transformer_dropout_and_determinism


def layer_kinds(name):
    input_shape, raw = case_model(name)
    return {layer.kind for layer in resolve_model(raw, 3, input_shape=input_shape).layers}


@pytest.mark.parametrize("name", CASES, ids=str)
def test_forward_matches_the_canonical_formula(adapter, name):
    input_shape, raw = case_model(name)
    spec = make_spec(raw, input_shape=input_shape)
    model = adapter.build(spec, info_for(input_shape))
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
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
    # one optimizer step runs (backward under deterministic algorithms) and moves every trainable tensor
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


def feeds_batch_norm(plans, index):
    consumers = [plan for plan in plans if index in plan.inputs]
    return any(c.layer.kind == "batch_norm" or (c.layer.kind == "concatenate" and feeds_batch_norm(plans, c.index)) for c in consumers)


def test_batch_norm_training_step_and_running_statistics(adapter):
    raw = {"layers": [{"conv1d": {"filters": 3, "kernel_size": 3}}, {"batch_norm": {"momentum": 0.8, "eps": 1e-3}}, {"flatten": {}}, {"dense": {}}]}
    spec = make_spec(raw)
    input_shape = (9, 2)
    model = adapter.build(spec, info_for(input_shape))
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(7)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(6, *input_shape)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    expected, state = reference(spec.model, plans, weights, x, training=True)
    model.set_training_data(x, y)
    (loss,) = model.train_epoch([np.arange(6)])
    # the step's loss comes from the training-mode forward: batch statistics, biased variance
    assert loss == pytest.approx(np.mean((expected["output"] - y) ** 2), rel=1e-5)
    after = model.get_weights()
    # running statistics: momentum*old + (1-momentum)*batch, the variance unbiased (n = 6*7 values per channel)
    np.testing.assert_allclose(after["1.batch_norm.moving_mean"], state["1.batch_norm.moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after["1.batch_norm.moving_variance"], state["1.batch_norm.moving_variance"], rtol=1e-5, atol=1e-6)
    biased = state["1.batch_norm.biased_moving_variance"]
    assert np.abs(after["1.batch_norm.moving_variance"] - biased).max() > 1e-3  # the biased form is distinguishable
    # evaluation mode uses the running statistics loaded (no update in predict)
    new_weights = model.get_weights()
    eval_expected, _ = reference(spec.model, plans, new_weights, x)
    np.testing.assert_allclose(model.predict(x), eval_expected["output"], rtol=RTOL, atol=ATOL)
    assert np.array_equal(model.get_weights()["1.batch_norm.moving_mean"], new_weights["1.batch_norm.moving_mean"])


def numeric_gradient(function, array, epsilon=1e-6):
    gradient = np.zeros_like(array)
    for index in np.ndindex(*array.shape):
        plus, minus = array.copy(), array.copy()
        plus[index] += epsilon
        minus[index] -= epsilon
        gradient[index] = (function(plus) - function(minus)) / (2 * epsilon)
    return gradient


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"], ids=str)
def test_recurrent_biases_move_by_one_gradient(adapter, kind):
    """One SGD step moves each canonical bias by exactly lr * dL/dbias (finite differences in float64):
    torch's second bias (bias_hh) must not add a second gradient for simple_rnn/lstm."""
    lr = 0.5
    raw = {"layers": [{kind: {"units": 3, "bidirectional": True}}, {"dense": {}}]}
    spec = make_spec(raw, optimizer={"name": "sgd", "lr": lr})
    input_shape = (5, 2)
    model = adapter.build(spec, info_for(input_shape))
    plans = spec.model.plan(input_shape)
    rng = np.random.default_rng(3)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(4, *input_shape)).astype(np.float32)
    y = rng.normal(size=(4, 3)).astype(np.float32)
    model.set_training_data(x, y)
    model.train_epoch([np.arange(4)])
    after = model.get_weights()
    for key in (f"0.{kind}.forward_bias", f"0.{kind}.backward_bias"):
        def loss_of(bias, key=key):
            changed = {k: v.astype(np.float64) for k, v in weights.items()}
            changed[key] = bias
            outputs, _ = reference(spec.model, plans, changed, x)
            return np.mean((outputs["output"] - y) ** 2)

        gradient = numeric_gradient(loss_of, weights[key].astype(np.float64))
        step = (weights[key].astype(np.float64) - after[key]) / lr
        # central differences at eps 1e-6 in float64 are exact to ~1e-9; the torch gradient is float32
        np.testing.assert_allclose(step, gradient, rtol=1e-3, atol=1e-5)
        assert np.abs(gradient).max() > 1e-3  # the check is not vacuous
    if kind != "gru":
        rnn = model.network.module[0].rnn
        assert not rnn.bias_hh_l0.requires_grad and not rnn.bias_hh_l0.any() and not rnn.bias_hh_l0_reverse.any()


def test_several_outputs_minimize_the_weighted_mean_and_record_each_loss(adapter):
    raw = {"graph": {"inputs": "x", "nodes": [
        {"name": "hidden", "layer": {"dense": {"units": 6, "activation": "tanh"}}, "from": "x"},
        {"name": "main", "layer": {"dense": {}}},
        {"name": "aux", "layer": {"dense": {}}, "from": "x"},
    ], "outputs": [{"from": "main", "weight": 1.0}, {"from": "aux", "weight": 3.0}]}}
    spec = make_spec(raw, num_outputs=4, loss="cross_entropy", optimizer={"name": "sgd", "lr": 0.1})
    model = adapter.build(spec, info_for((5,), 4, "cross_entropy"))
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
    y = rng.integers(0, num_outputs, 24) if spec.loss.name == "cross_entropy" else rng.normal(size=(24, num_outputs)).astype(np.float32)
    model.set_training_data(x, y)
    losses = model.train_epoch([np.arange(i * 8, (i + 1) * 8) for i in range(steps)])
    return losses, model.get_weights()


DETERMINISM_MODELS = {
    "cnn-bn-pool": ((12, 12, 1), {"cnn": {"filters": [4, 4], "padding": "same", "batch_norm": True, "pool": "avg", "dense": [8]}}),
    "gru-lstm": ((10, 2), {"rnn": {"cell": "lstm", "units": 4, "depth": 2, "bidirectional": True}}),
    "transformer-dropout": ((10, 2), {"transformer": {"depth": 1, "heads": 2, "width": 8}}),
}


@pytest.mark.parametrize("name", DETERMINISM_MODELS, ids=str)
def test_training_steps_are_deterministic(adapter, name):
    input_shape, raw = DETERMINISM_MODELS[name]
    spec = make_spec(raw, optimizer={"name": "adam", "lr": 0.01}, input_shape=input_shape, dropout=0.3)
    first_losses, first = train_steps(adapter, spec, input_shape)
    again_losses, again = train_steps(adapter, spec, input_shape)
    assert np.array_equal(first_losses, again_losses) and np.isfinite(first_losses).all()
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_transformer_dropout_and_determinism(adapter):
    """Block dropout is active in training (losses differ from the dropout-free block) and off in predict."""
    raw = {"layers": [{"transformer_encoder": {"heads": 2, "ffn_units": 8, "dropout": 0.5}}, {"flatten": {}}, {"dense": {}}]}
    no_dropout = {"layers": [{"transformer_encoder": {"heads": 2, "ffn_units": 8}}, {"flatten": {}}, {"dense": {}}]}
    spec, plain = make_spec(raw), make_spec(no_dropout)
    with_losses, _ = train_steps(adapter, spec, (6, 4), steps=1)
    plain_losses, _ = train_steps(adapter, plain, (6, 4), steps=1)
    assert with_losses[0] != plain_losses[0]
    model = adapter.build(spec, info_for((6, 4)))
    weights = initial_weights(spec.model.plan((6, 4)), spec.initializer, 0)
    model.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    expected, _ = reference(spec.model, spec.model.plan((6, 4)), weights, x)
    np.testing.assert_allclose(model.predict(x), expected["output"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["cnn", "gru", "mlp", "logistic"], ids=str)
def test_torch_trains_exactly_the_canonical_parameters_of_the_mnist1d_models(adapter, name):
    raw, input_shape, expected = {
        "logistic": ({"layers": [{"dense": {}}]}, (40,), 410),
        "mlp": ({"mlp": {"hidden": [100, 100], "residual": True}}, (40,), 15_210),
        "cnn": ({"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}}, (40, 1), 5_210),
        "gru": ({"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}, (40, 1), 5_134),
    }[name]
    model = adapter.build(make_spec(raw, 10, "cross_entropy"), info_for(input_shape, 10, "cross_entropy"))
    assert sum(p.numel() for p in model.network.parameters) == expected
    assert sum(p.numel() for p in model.network.module.parameters() if p.requires_grad) == expected


def test_native_init_of_every_role(adapter):
    raw = {"layers": [
        {"conv1d": {"filters": 200, "kernel_size": 3}}, {"batch_norm": {}},
        {"lstm": {"units": 50, "return_sequences": True}},
        {"gru": {"units": 50, "recurrent_initializer": {"name": "normal", "std": 0.2}}},
        {"dense": {}},
    ]}
    spec = make_spec(raw, init_mode="native", initializer="he_normal", seed=4)
    weights = adapter.build(spec, info_for((12, 100))).get_weights()
    conv_kernel = weights["0.conv1d.kernel"].ravel()  # fan_in 3*100
    assert stats.kstest(conv_kernel, stats.norm(0, np.sqrt(2 / 300)).cdf).pvalue > 1e-3
    assert weights["1.batch_norm.gamma"].tolist() == [1.0] * 200 and not weights["1.batch_norm.moving_mean"].any()
    assert weights["1.batch_norm.moving_variance"].tolist() == [1.0] * 200
    recurrent = weights["2.lstm.recurrent_kernel"].astype(np.float64)  # (50, 200): orthonormal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(50), atol=1e-5)  # float32 sums of 200 terms
    assert not weights["2.lstm.bias"].any() and not weights["3.gru.bias"].any()
    assert abs(weights["3.gru.recurrent_kernel"].std() / 0.2 - 1) < 0.05  # 7,500 draws: std within ~1%
    again = adapter.build(spec, info_for((12, 100))).get_weights()
    assert all(np.array_equal(weights[k], again[k]) for k in weights)  # seeded


def test_native_fan_in_uniform_biases_and_embeddings(adapter):
    raw = {"layers": [{"embedding": {"vocabulary": 300, "dim": 40}}, {"simple_rnn": {"units": 100}}, {"dense": {}}]}
    weights = adapter.build(make_spec(raw, init_mode="native", initializer="fan_in_uniform"), info_for((7,))).get_weights()
    table = weights["0.embedding.embeddings"]
    assert np.abs(table).max() <= 0.05 and stats.kstest(table.ravel(), stats.uniform(-0.05, 0.1).cdf).pvalue > 1e-3
    bias = weights["1.simple_rnn.bias"]  # PyTorch's RNN rule U(+-1/sqrt(units))
    assert np.abs(bias).max() <= 0.1 and np.abs(bias).max() > 0.09
    kernel = weights["1.simple_rnn.kernel"]  # fan_in 40
    assert np.abs(kernel).max() <= 1 / np.sqrt(40) and np.abs(kernel).max() > 0.99 / np.sqrt(40)
