"""Shared-mode initial weights: drawn once with numpy from the canonical initializer and seed.

Every backend loads exactly these arrays, so the same seed means the same starting point
in PyTorch and Keras, and arms that share a model share their initial weights (paired
comparisons). Each layer draws from its own stream `default_rng([seed, INIT_STREAM,
layer_index])`, so appending a layer never changes the weights of the layers before it.
Within a layer, tensors are drawn in the order of LayerPlan.tensors (part of the contract);
constant tensors (zeros, ones) consume no random numbers.

What each tensor role starts at (harness.spec.layer_types):
    kernel            TensorSpec.initializer (a recurrent layer's kernel_initializer) if set, else the
                      suite's initializer, with the kernel's fans
    recurrent_kernel  TensorSpec.initializer (the layer's recurrent_initializer, default orthogonal)
    embedding         TensorSpec.initializer (the layer's initializer, default uniform +-0.05)
    bias              0; under the suite initializer fan_in_uniform, U(+-1/sqrt(TensorSpec.fan_in))
    gamma, moving_variance   1
    beta, moving_mean        0
"""

from __future__ import annotations

import math

import numpy as np

from harness.spec.components import Component
from harness.spec.layers import LayerPlan, TensorSpec, fans

INIT_STREAM = 0  # stream ids under the trial seed: 0 initial weights, 1 batch order, 2 framework RNG (dropout)
BATCH_STREAM = 1
FRAMEWORK_STREAM = 2


def weight_key(plan: LayerPlan, tensor: TensorSpec) -> str:
    """Canonical name of a tensor: '<layer index>.<layer kind>.<tensor>', e.g. '0.dense.kernel'."""
    return f"{plan.name}.{tensor.name}"


def draw_kernel(initializer: Component, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draw one kernel of canonical shape (..., fan_in_axis, fan_out_axis) per the initializer's formula."""
    name = initializer.name
    fan_in, fan_out = fans(shape)
    if name == "zeros":
        return np.zeros(shape)
    if name == "normal":
        return rng.normal(0.0, initializer["std"], shape)
    if name == "uniform":
        limit = initializer["limit"]
        return rng.uniform(-limit, limit, shape)
    if name == "xavier_uniform":
        limit = initializer["gain"] * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if name == "xavier_normal":
        return rng.normal(0.0, initializer["gain"] * np.sqrt(2.0 / (fan_in + fan_out)), shape)
    if name == "he_normal":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if name == "he_uniform":
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, shape)
    if name == "lecun_normal":
        return rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
    if name == "fan_in_uniform":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, shape)
    if name == "orthogonal":
        # the kernel as a (prod(shape[:-1]), shape[-1]) matrix, like Keras' Orthogonal: for a dense
        # kernel (in, out) that is the kernel itself; a conv kernel (k..., in, out) is (k*...*in, out)
        rows, cols = math.prod(shape[:-1]), shape[-1]
        flat = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))  # make the decomposition unique (Saxe et al.; both frameworks do this)
        if rows < cols:
            q = q.T
        return initializer["gain"] * q.reshape(shape)
    raise ValueError(f"no numpy rule for initializer {name!r}")  # the registry and this function must agree


def draw_bias(initializer: Component, shape: tuple[int, ...], fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """Biases start at zero, except under fan_in_uniform, which draws them U(±1/sqrt(fan_in))."""
    if initializer.name == "fan_in_uniform":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, shape)
    return np.zeros(shape)


CONSTANTS = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}


def draw_tensor(tensor: TensorSpec, initializer: Component, rng: np.random.Generator) -> np.ndarray:
    """Draw one tensor of a layer per its role (see the module docstring), float64."""
    if tensor.role in CONSTANTS:
        return np.full(tensor.shape, CONSTANTS[tensor.role])
    if tensor.role in ("kernel", "recurrent_kernel", "embedding"):
        return draw_kernel(tensor.initializer or initializer, tensor.shape, rng)
    if tensor.role == "bias":
        return draw_bias(initializer, tensor.shape, tensor.fan_in or 1, rng)
    raise ValueError(f"no initial value for tensor role {tensor.role!r}")  # ROLES and this function must agree


def initial_weights(plans: tuple[LayerPlan, ...], initializer: Component, seed: int) -> dict[str, np.ndarray]:
    """All initial weights (and batch_norm state) of a model as float32 arrays in canonical layout, keyed by `weight_key`."""
    weights: dict[str, np.ndarray] = {}
    for plan in plans:
        rng = np.random.default_rng([seed, INIT_STREAM, plan.index])
        for tensor in plan.tensors:
            weights[weight_key(plan, tensor)] = draw_tensor(tensor, initializer, rng).astype(np.float32)
    return weights
