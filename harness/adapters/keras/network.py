"""The Keras network of a spec: layers wired into a functional model, canonical activations, weight
keys, native initializers.

The layer plans (harness.spec.layers) become a functional `keras.Model`: a plain stack (one
output) or the graph form (nodes reading the input or earlier nodes, one or more outputs, in
ModelSpec.outputs() order). Every canonical tensor - trainable weights and batch_norm state -
is one Keras variable, reachable by its canonical key (harness.spec.init.weight_key).

Canonical layout is Keras' own for dense layers: `Dense.kernel` is (in, units) and
`y = x @ kernel + bias`, so weights load without a transpose. Activations are built
from `keras.ops` with the CANONICAL parameters (harness.spec.components.ACTIVATIONS),
never Keras' defaults where they differ: leaky_relu's slope is `negative_slope`
(Keras' `layers.LeakyReLU` defaults to 0.3), gelu is the exact erf form
(`keras.ops.gelu` defaults to the tanh approximation), elu takes its `alpha`.

Native init mode configures Keras initializers to the canonical distributions. Keras'
GlorotNormal / HeNormal / LecunNormal draw a TRUNCATED normal (docs/semantics.md,
"Initializers"); the canonical ones are plain normals, so they become `RandomNormal`
with the canonical standard deviation computed by `harness.spec.layers.fans`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from harness.adapters.common import complete_table, look_up
from harness.adapters.keras.realize import realize
from harness.spec.components import ACTIVATIONS, INITIALIZERS, Component
from harness.spec.init import CONSTANTS, FRAMEWORK_STREAM, weight_key
from harness.spec.layers import LayerPlan, Shape, fans
from harness.spec.types import ModelOutput

SEED_LIMIT = 2**31 - 1  # Keras seeds are Python ints; stay inside int32 for every backend
SEED_STATE_NAME = "seed_generator_state"  # the variable of a keras.random.SeedGenerator: [seed, draws so far]


# Each canonical activation as a keras.ops function with its canonical parameters (None: 'linear', Dense adds nothing).
ACTIVATION_FUNCTIONS: dict[str, Callable[[Component], Callable | None]] = complete_table(
    {
        "linear": lambda component: None,
        "relu": lambda component: ops.relu,
        "sigmoid": lambda component: ops.sigmoid,
        "tanh": lambda component: ops.tanh,
        "leaky_relu": lambda component: _leaky_relu(float(component["negative_slope"])),
        "elu": lambda component: _elu(float(component["alpha"])),
        "gelu": lambda component: (
            lambda x: ops.gelu(x, approximate=False)
        ),  # exact x*Phi(x); Keras defaults to the tanh form
        "softmax": lambda component: lambda x: ops.softmax(x, axis=-1),
    },
    ACTIVATIONS,
    "Keras",
    "activation",
)


def _leaky_relu(slope: float) -> Callable:
    return lambda x: ops.leaky_relu(x, negative_slope=slope)


def _elu(alpha: float) -> Callable:
    return lambda x: ops.elu(x, alpha=alpha)


def activation_function(activation: Component) -> Callable | None:
    """The canonical activation as a function of a tensor (None for 'linear': Dense adds nothing).

    Raises:
        BackendError: an activation this adapter does not realize.
    """
    return look_up(ACTIVATION_FUNCTIONS, activation.name, "Keras", "activation")(activation)


# Native mode: Keras initializers configured to each canonical formula, from (component, fan_in,
# fan_out, seed). Keras' GlorotNormal / HeNormal / LecunNormal are TRUNCATED normals; the canonical
# ones are plain, so they become RandomNormal with the canonical standard deviation.
KernelInit = Callable[[Component, int, int, int], keras.initializers.Initializer]
KERNEL_INITIALIZERS: dict[str, KernelInit] = complete_table(
    {
        "zeros": lambda c, fan_in, fan_out, seed: keras.initializers.Zeros(),
        "normal": lambda c, fan_in, fan_out, seed: keras.initializers.RandomNormal(0.0, c["std"], seed=seed),
        "uniform": lambda c, fan_in, fan_out, seed: keras.initializers.RandomUniform(
            -c["limit"], c["limit"], seed=seed
        ),
        "xavier_uniform": lambda c, fan_in, fan_out, seed: _symmetric_uniform(
            c["gain"] * math.sqrt(6.0 / (fan_in + fan_out)), seed
        ),
        "xavier_normal": lambda c, fan_in, fan_out, seed: keras.initializers.RandomNormal(
            0.0, c["gain"] * math.sqrt(2.0 / (fan_in + fan_out)), seed=seed
        ),
        "he_normal": lambda c, fan_in, fan_out, seed: keras.initializers.RandomNormal(
            0.0, math.sqrt(2.0 / fan_in), seed=seed
        ),
        "he_uniform": lambda c, fan_in, fan_out, seed: _symmetric_uniform(math.sqrt(6.0 / fan_in), seed),
        "lecun_normal": lambda c, fan_in, fan_out, seed: keras.initializers.RandomNormal(
            0.0, math.sqrt(1.0 / fan_in), seed=seed
        ),
        # Keras' Orthogonal: QR of a normal matrix, sign-corrected by diag(R), times gain
        "orthogonal": lambda c, fan_in, fan_out, seed: keras.initializers.Orthogonal(gain=c["gain"], seed=seed),
        "fan_in_uniform": lambda c, fan_in, fan_out, seed: _symmetric_uniform(1.0 / math.sqrt(fan_in), seed),
    },
    INITIALIZERS,
    "Keras",
    "initializer",
)


def _symmetric_uniform(limit: float, seed: int) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(-limit, limit, seed=seed)


def kernel_initializer(initializer: Component, shape: Shape, seed: int) -> keras.initializers.Initializer:
    """A Keras initializer drawing a kernel of canonical `shape` from the canonical distribution.

    Raises:
        BackendError: an initializer this adapter does not realize.
    """
    draw = look_up(KERNEL_INITIALIZERS, initializer.name, "Keras", "initializer")
    return draw(initializer, *fans(shape), seed)


def bias_initializer(initializer: Component, fan_in: int, seed: int) -> keras.initializers.Initializer:
    """Zeros, except fan_in_uniform, the one canonical initializer that draws biases U(±1/sqrt(fan_in))."""
    if initializer.name == "fan_in_uniform":
        return _symmetric_uniform(1.0 / math.sqrt(fan_in), seed)
    return keras.initializers.Zeros()


@dataclass
class Network:
    """A built Keras model plus the map from canonical weight keys to its variables.

    `variables` holds every canonical tensor (batch_norm's moving statistics too), ordered like
    `harness.spec.init.initial_weights` (plan order, then LayerPlan.tensors order). `kernels`
    holds the regularized tensors (kernel, recurrent_kernel, embedding: l1/l2 penalties and weight
    decay touch only these), `biases` the other trainable ones (bias, gamma, beta), `state` the
    non-trainable moving statistics. `model` returns the outputs in `outputs` order (a list when
    there are several); `layer_model` returns every layer's output in plan order (diagnostics).
    """

    model: keras.Model
    variables: dict[str, keras.Variable]
    kernels: list[keras.Variable]
    biases: list[keras.Variable]
    layer_model: keras.Model  # build_network always makes it
    outputs: tuple[ModelOutput, ...] = ()
    state: list[keras.Variable] = field(default_factory=list)
    # (plan index, variable) of every keras.random.SeedGenerator in the layers (dropout masks): each starts
    # at [that layer's dropout seed, 0] (layer_seeds). With `variables`, every variable of `model`.
    seed_states: list[tuple[int, keras.Variable]] = field(default_factory=list)
    # why restart_network cannot put this network where a new build starts (None: it can)
    restart_problem: str | None = "not built by build_network"


def layer_seeds(seed: int, num_layers: int) -> np.ndarray:
    """Per-layer integer seeds for native initializers and dropout masks, from the trial seed.

    Drawn from the framework stream `default_rng([seed, FRAMEWORK_STREAM])`, so they never
    collide with the shared-init or batch-order streams. Shape (num_layers, 3): kernel
    seed, bias seed, dropout seed.
    """
    rng = np.random.default_rng([seed, FRAMEWORK_STREAM])
    return rng.integers(0, SEED_LIMIT, size=(num_layers, 3))


def build_network(
    plans: tuple[LayerPlan, ...],
    input_shape: Shape,
    initializer: Component,
    seed: int,
    outputs: tuple[ModelOutput, ...] | None = None,
) -> Network:
    """Build the functional Keras model of planned layers (a stack, or a graph's nodes).

    Args:
        plans: `spec.model.plan(input_shape)`: layer kinds, shapes, tensors and wiring (LayerPlan.inputs).
        input_shape: one sample's shape, no batch axis.
        initializer: the canonical initializer realized natively (shared mode overwrites it).
        seed: the trial seed; native draws and dropout masks derive from it.
        outputs: `spec.model.outputs()`; default: the last layer, named 'output'.

    Raises:
        BackendError: a layer kind this adapter does not realize (it names the layer).
    """
    outputs = outputs or (ModelOutput("output", len(plans) - 1),)
    seeds = layer_seeds(seed, len(plans))
    model_input = keras.Input(shape=tuple(input_shape))
    values: dict[int, object] = {-1: model_input}
    realizations = []
    for plan in plans:
        realization = realize(plan, activation_function, int(seeds[plan.index][2]))
        sources = [values[index] for index in plan.inputs]
        values[plan.index] = realization.layer(sources if len(sources) > 1 else sources[0])
        realizations.append(realization)
    final = [values[output.index] for output in outputs]
    model = keras.Model(model_input, final if len(final) > 1 else final[0])
    layer_model = keras.Model(model_input, [values[plan.index] for plan in plans])
    variables: dict[str, keras.Variable] = {}
    kernels: list[keras.Variable] = []
    biases: list[keras.Variable] = []
    state: list[keras.Variable] = []
    for plan, realization in zip(plans, realizations):
        named = realization.variables()
        for tensor in plan.tensors:
            variable = named[tensor.name]
            if tuple(variable.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"{weight_key(plan, tensor)}: Keras made shape {variable.shape}, spec says {tensor.shape}"
                )
            variables[weight_key(plan, tensor)] = variable
            (kernels if tensor.regularized else biases if tensor.trainable else state).append(variable)
    network = Network(model, variables, kernels, biases, layer_model, outputs=tuple(outputs), state=state)
    network.seed_states, network.restart_problem = _seed_states(model, plans, realizations, variables, seeds)
    initialize_native(network, plans, initializer, seed)
    return network


def _seed_states(
    model: keras.Model,
    plans: tuple[LayerPlan, ...],
    realizations: list,
    canonical: dict[str, keras.Variable],
    seeds: np.ndarray,
) -> tuple[list[tuple[int, keras.Variable]], str | None]:
    """The seed-generator states of a just-built network, each with its plan index, and None; or ([], why
    not) when some variable is neither a canonical tensor nor a seed state at [its layer's dropout seed, 0],
    so restart_network could not know where it starts."""
    canonical_ids = {id(variable) for variable in canonical.values()}
    states: dict[int, tuple[int, keras.Variable]] = {}
    for plan, realization in zip(plans, realizations):
        for variable in realization.layer.variables:
            if id(variable) in canonical_ids or id(variable) in states:
                continue
            start = np.array([int(seeds[plan.index][2]), 0])
            if (
                variable.name != SEED_STATE_NAME
                or tuple(variable.shape) != (2,)
                or not np.array_equal(np.asarray(variable.numpy()), start)
            ):
                return [], f"layer {plan.name}: {variable.path} is neither a canonical tensor nor a seed state"
            states[id(variable)] = (plan.index, variable)
    covered = canonical_ids | set(states)
    stray = [variable.path for variable in model.variables if id(variable) not in covered]
    if stray:
        return [], f"variables of no planned layer: {', '.join(stray)}"
    return list(states.values()), None


def restart_network(network: Network, plans: tuple[LayerPlan, ...], initializer: Component, seed: int) -> None:
    """Give every variable of a built network the value `build_network(plans, ..., initializer, seed)` starts it
    at: canonical tensors drawn by initialize_native, seed states at [layer seed, 0]. The plans must be the
    ones it was built from (harness.adapters.keras.reuse keys on them).

    Raises:
        ValueError: the network has variables it cannot restart (`restart_problem`).
    """
    if network.restart_problem is not None:
        raise ValueError(f"this network cannot be restarted: {network.restart_problem}")
    initialize_native(network, plans, initializer, seed)
    seeds = layer_seeds(seed, len(plans))
    for index, state in network.seed_states:
        state.assign(np.array([int(seeds[index][2]), 0], dtype=state.dtype))


def initialize_native(network: Network, plans: tuple[LayerPlan, ...], initializer: Component, seed: int) -> None:
    """Draw every tensor with Keras' initializers configured to the canonical meaning.

    Kernels follow the suite's initializer, recurrent kernels and embeddings their layer's
    (TensorSpec.initializer); biases are zero, except under fan_in_uniform, which draws them
    U(+-1/sqrt(TensorSpec.fan_in)); gamma and moving_variance start at 1, beta and moving_mean at 0.
    Each layer's draws are seeded from layer_seeds (kernel seed, bias seed), one offset per tensor.

    Raises:
        BackendError: an initializer this adapter does not realize.
    """
    seeds = layer_seeds(seed, len(plans))
    for plan in plans:
        kernel_seed, bias_seed, _ = (int(s) for s in seeds[plan.index])
        for offset, tensor in enumerate(plan.tensors):
            variable = network.variables[weight_key(plan, tensor)]
            if tensor.role in CONSTANTS:
                variable.assign(np.full(tensor.shape, CONSTANTS[tensor.role], dtype=np.float32))
                continue
            if tensor.role == "bias":
                draw = bias_initializer(initializer, tensor.fan_in or 1, (bias_seed + offset) % SEED_LIMIT)
            else:
                component = (
                    tensor.initializer or initializer
                )  # a tensor's own (recurrent layers, embeddings), else the suite's
                draw = kernel_initializer(component, tensor.shape, (kernel_seed + offset) % SEED_LIMIT)
            variable.assign(draw(tensor.shape, dtype="float32"))
