"""Float64 numpy implementation of every canonical layer (docs/semantics.md; harness.spec.layers), the
reference the adapters' forward passes, training steps and gradients are checked against.

Layout as the spec fixes it: channels-last, batch axis first; weights by their canonical names
(harness.spec.init.weight_key), e.g. a conv kernel (*kernel_size, in, out), a GRU bias (2, 3*units)
with gate order z, r, n and the reset gate applied after the recurrent matmul.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from harness.spec.init import weight_key


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


# --- the canonical formulas ------------------------------------------------------------------


def activate(component, z):
    """A canonical activation (harness.spec.components.ACTIVATIONS) of z; gelu is the exact erf form."""
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
    """'same' padding of one axis as (before, after): output length ceil(length/stride), the odd cell after."""
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
    out = [
        (padded.shape[1 + a] - ((k - 1) * d + 1)) // s + 1 for a, (k, s, d) in enumerate(zip(kernel, strides, dilation))
    ]
    for offset in np.ndindex(*kernel):
        index = tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, s, o in zip(offset, dilation, strides, out))
        yield offset, padded[(slice(None), *index)]


def conv(x, p, w):
    """conv1d/conv2d: x (N, *spatial, C_in), kernel (*kernel_size, C_in, C_out) -> (N, *out, C_out)."""
    kernel, strides, dilation = p["kernel_size"], p["strides"], p["dilation"]
    pads = paddings_of(x, kernel, strides, dilation, p["padding"])
    padded = np.pad(x, [(0, 0), *pads, (0, 0)])
    total = sum(view @ w["kernel"][offset] for offset, view in windows(padded, kernel, strides, dilation))
    return activate(p["activation"], total + w.get("bias", 0.0))


def pool(x, p, mode):
    """max/avg pooling; padded cells are ignored (an average over the real cells of each window)."""
    size = p["pool_size"]
    strides = p["strides"] or size
    pads = paddings_of(x, size, strides, (1,) * len(size), p["padding"])
    padded = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=np.nan)  # NaN = not a real cell
    stack = np.stack([view for _, view in windows(padded, size, strides, (1,) * len(size))])
    return np.nanmax(stack, axis=0) if mode == "max" else np.nanmean(stack, axis=0)


def normalize(x, axes, mean, variance, gamma, beta, eps):
    return gamma * (x - mean) / np.sqrt(variance + eps) + beta


def batch_norm(x, p, w, training, state):
    """Training: batch statistics (biased variance) normalize, and `state` receives the updated moving
    statistics (unbiased variance; the biased alternative too, to show the two differ). Else: moving ones."""
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
    return normalize(
        x, -1, x.mean(-1, keepdims=True), x.var(-1, keepdims=True), w[f"{prefix}gamma"], w[f"{prefix}beta"], eps
    )


def run_direction(kind, x, kernel, recurrent, bias, reverse):
    """One direction of simple_rnn/lstm/gru from zero state over x (N, T, F): (outputs (N, T, units), last state)."""
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    h, c = np.zeros((batch, units)), np.zeros((batch, units))
    outputs = np.zeros((batch, steps, units))
    for t in reversed(range(steps)) if reverse else range(steps):
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
    results = [
        run_direction(kind, x, w[f"{d}kernel"], w[f"{d}recurrent_kernel"], w[f"{d}bias"], reverse)
        for d, reverse in directions
    ]
    return np.concatenate([r[0] if p["return_sequences"] else r[1] for r in results], axis=-1)


def attention(query, context, w, heads, key_dim, value_dim, causal, prefix=""):
    """Multi-head scaled dot-product attention of query (N, Tq, F) over context (N, Tk, F)."""

    def project(x, name):
        return x @ w[f"{prefix}{name}_kernel"] + w.get(f"{prefix}{name}_bias", 0.0)

    def split(x, dim):
        return x.reshape(x.shape[0], x.shape[1], heads, dim).transpose(0, 2, 1, 3)  # (N, H, T, dim)

    q, k, v = (
        split(project(query, "query"), key_dim),
        split(project(context, "key"), key_dim),
        split(project(context, "value"), value_dim),
    )
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(key_dim)  # (N, H, Tq, Tk)
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    heads_out = special.softmax(scores, axis=-1) @ v
    merged = heads_out.transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], heads * value_dim)
    return project(merged, "output")


def transformer(x, p, w):
    """transformer_encoder: self-attention and a 2-layer FFN, residual, post- or pre-norm (p["norm"])."""
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
    """One layer of `plan` on its input arrays, with its weights `w` by canonical tensor name."""
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


def feeds_batch_norm(plans, index) -> bool:
    """Whether layer `index`'s output reaches a batch_norm (through concatenations): its bias then has a
    zero gradient by construction, since the normalization removes any constant shift."""
    consumers = [plan for plan in plans if index in plan.inputs]
    return any(
        c.layer.kind == "batch_norm" or (c.layer.kind == "concatenate" and feeds_batch_norm(plans, c.index))
        for c in consumers
    )


def numeric_gradient(function, array: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function of `array` (float64: exact to ~1e-9 at this epsilon)."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(*array.shape):
        plus, minus = array.copy(), array.copy()
        plus[index] += epsilon
        minus[index] -= epsilon
        gradient[index] = (function(plus) - function(minus)) / (2 * epsilon)
    return gradient
