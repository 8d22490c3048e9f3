"""Shared-mode initial weights: drawn once with numpy from the canonical initializer and seed.

Every backend loads exactly these arrays, so the same seed means the same starting point
in PyTorch and Keras, and arms that share a model share their initial weights (paired
comparisons). Only layers that own a random tensor (a role outside CONSTANTS: kernel,
recurrent_kernel, embedding, bias) draw, each from its own stream
`default_rng([seed, INIT_STREAM, init key])`, where the init key is the layer's position among
the layers that draw (`init_keys`). So:
  - inserting or removing a layer that draws nothing (dropout, activation, batch_norm,
    layer_norm, pooling, flatten, reshape, add, concatenate) changes no other layer's weights;
  - appending a layer never changes the weights of the layers before it;
  - inserting a layer that draws shifts the streams of the drawing layers after it.
Within a layer, tensors are drawn in the order of LayerPlan.tensors (part of the contract);
constant tensors (zeros, ones) consume no random numbers. `init_pairing` says whether two
trials start from the same weights (docs/semantics.md, "Initial weights").

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.spec.components import Component
from harness.spec.layers import LayerPlan, Shape, TensorSpec, fans
from harness.spec.types import TrialSpec

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


def draws_random(plan: LayerPlan) -> bool:
    """True when the layer owns a tensor that may be random (a role outside CONSTANTS), whatever the
    suite's initializer: such a layer gets its own init stream. A structural fact, so a dense layer under
    'zeros' still counts, and changing the initializer never re-keys any layer."""
    return any(tensor.role not in CONSTANTS for tensor in plan.tensors)


def init_keys(plans: Sequence[LayerPlan]) -> dict[int, int]:
    """Plan index -> init key of every layer that draws: its position among the layers that draw, in plan
    order (graph nodes in node order). Layers that draw nothing get no key, so they shift no stream."""
    drawing = [plan.index for plan in plans if draws_random(plan)]
    return {index: key for key, index in enumerate(drawing)}


def initial_weights(plans: tuple[LayerPlan, ...], initializer: Component, seed: int) -> dict[str, np.ndarray]:
    """All initial weights (and batch_norm state) of a model as float32 arrays in canonical layout, keyed by `weight_key`.

    A layer that draws uses the stream `default_rng([seed, INIT_STREAM, init key])` (`init_keys`); a layer
    that draws nothing holds only constants and uses none.
    """
    keys = init_keys(plans)
    weights: dict[str, np.ndarray] = {}
    for plan in plans:
        if plan.index not in keys:
            for tensor in plan.tensors:
                weights[weight_key(plan, tensor)] = np.full(tensor.shape, CONSTANTS[tensor.role], dtype=np.float32)
            continue
        rng = np.random.default_rng([seed, INIT_STREAM, keys[plan.index]])
        for tensor in plan.tensors:
            weights[weight_key(plan, tensor)] = draw_tensor(tensor, initializer, rng).astype(np.float32)
    return weights


# --- do two trials start from the same weights? ----------------------------------------------------------

IDENTICAL, PARTLY, NO = "identical", "partly", "no"


@dataclass(frozen=True)
class InitPairing:
    """Whether two trials' layers got identical initial tensors, compared layer by layer on init keys.

    `verdict` is 'identical' (every drawing layer present in both, matched by init key, drew identical
    tensors), 'partly' (some did: `differing` names the others, as the first trial calls them) or 'no'
    (none did, the seeds differ, or a trial uses native init, which each framework draws its own way).
    Layers holding only constants (batch_norm, layer_norm) are identical whenever present in both, and
    are not compared. `str()` is the report's text: 'identical', 'partly (layers 2.dense differ)', 'no'.
    """

    verdict: str
    differing: tuple[str, ...] = ()
    reason: str = ""

    def __str__(self) -> str:
        if self.verdict == PARTLY:
            return f"partly (layers {', '.join(self.differing)} differ)"
        return self.verdict


def _tensor_recipe(tensor: TensorSpec, initializer: Component) -> tuple[Any, ...]:
    """What decides one tensor's draw besides the stream: name, shape, role, and the rule it is drawn by."""
    if tensor.role in CONSTANTS:
        rule: Any = CONSTANTS[tensor.role]
    elif tensor.role == "bias":
        rule = ("fan_in_uniform", tensor.fan_in or 1) if initializer.name == "fan_in_uniform" else "zeros"
    else:
        rule = tensor.initializer or initializer
    return (tensor.name, tensor.shape, tensor.role, rule)


def init_recipes(plans: Sequence[LayerPlan], initializer: Component) -> dict[int, tuple[str, tuple[Any, ...]]]:
    """Init key -> (layer name, the recipe of its tensors in draw order) of every layer that draws.

    Two layers with the same key and recipe draw identical tensors at the same seed.
    """
    keys = init_keys(plans)
    return {
        keys[plan.index]: (plan.name, tuple(_tensor_recipe(tensor, initializer) for tensor in plan.tensors))
        for plan in plans
        if plan.index in keys
    }


def init_pairing(first: TrialSpec, second: TrialSpec, first_input: Shape, second_input: Shape) -> InitPairing:
    """Whether `first` and `second` start from identical initial weights (see InitPairing).

    `first_input` and `second_input` are one sample's shape of each trial's dataset
    (`harness.data.dataset_info(spec.dataset).input_shape`); the spec layer does not load data.
    """
    if "native" in (first.init_mode, second.init_mode):
        return InitPairing(NO, reason="native init: each framework draws its own initial weights")
    if first.seed != second.seed:
        return InitPairing(NO, reason=f"different seeds ({first.seed} and {second.seed})")
    ours = init_recipes(first.model.plan(first_input), first.initializer)
    theirs = init_recipes(second.model.plan(second_input), second.initializer)
    common = [key for key in ours if key in theirs]
    differing = tuple(ours[key][0] for key in common if ours[key][1] != theirs[key][1])
    if not common or len(differing) == len(common):
        return InitPairing(NO, differing, reason="no layer drew the same tensors")
    return InitPairing(PARTLY if differing else IDENTICAL, differing)
