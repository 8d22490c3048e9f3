"""The Keras network of a spec: layers, canonical activations, weight keys, native initializers.

Canonical layout is Keras' own for dense layers: `Dense.kernel` is (in, units) and
`y = x @ kernel + bias`, so weights load without a transpose. Activations are built
from `keras.ops` with the CANONICAL parameters (harness.spec.components.ACTIVATIONS),
never Keras' defaults where they differ: leaky_relu's slope is `negative_slope`
(Keras' `layers.LeakyReLU` defaults to 0.3), gelu is the exact erf form
(`keras.ops.gelu` defaults to the tanh approximation), elu takes its `alpha`.

Native init mode configures Keras initializers to the canonical distributions. Keras'
GlorotNormal / HeNormal / LecunNormal draw a TRUNCATED normal (SEMANTICS.md,
"Initializers"); the canonical ones are plain normals, so they become `RandomNormal`
with the canonical standard deviation computed by `harness.spec.layers.fans`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from harness.errors import BackendError
from harness.spec.components import Component
from harness.spec.init import FRAMEWORK_STREAM, weight_key
from harness.spec.layers import LayerPlan, Shape, fans

SEED_LIMIT = 2**31 - 1  # Keras seeds are Python ints; stay inside int32 for every backend
LAYER_KINDS = ("dense", "dropout", "activation")  # the layers this adapter realizes


def activation_function(activation: Component) -> Callable | None:
    """The canonical activation as a function of a tensor (None for 'linear': Dense adds nothing).

    Raises:
        BackendError: an activation this adapter does not realize.
    """
    name = activation.name
    if name == "linear":
        return None
    if name == "relu":
        return ops.relu
    if name == "sigmoid":
        return ops.sigmoid
    if name == "tanh":
        return ops.tanh
    if name == "leaky_relu":
        slope = float(activation["negative_slope"])
        return lambda x: ops.leaky_relu(x, negative_slope=slope)
    if name == "elu":
        alpha = float(activation["alpha"])
        return lambda x: ops.elu(x, alpha=alpha)
    if name == "gelu":
        return lambda x: ops.gelu(x, approximate=False)  # exact x*Phi(x); Keras defaults to the tanh form
    if name == "softmax":
        return lambda x: ops.softmax(x, axis=-1)
    raise BackendError(f"activation: the Keras backend has no realization of {name!r}.")


def kernel_initializer(initializer: Component, shape: Shape, seed: int) -> keras.initializers.Initializer:
    """A Keras initializer drawing a kernel of canonical `shape` from the canonical distribution."""
    name = initializer.name
    fan_in, fan_out = fans(shape)
    if name == "zeros":
        return keras.initializers.Zeros()
    if name == "normal":
        return keras.initializers.RandomNormal(0.0, initializer["std"], seed=seed)
    if name == "uniform":
        limit = initializer["limit"]
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    if name == "xavier_uniform":
        limit = initializer["gain"] * math.sqrt(6.0 / (fan_in + fan_out))
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    if name == "xavier_normal":  # plain normal: keras.initializers.GlorotNormal is truncated
        return keras.initializers.RandomNormal(0.0, initializer["gain"] * math.sqrt(2.0 / (fan_in + fan_out)), seed=seed)
    if name == "he_normal":  # plain normal: keras.initializers.HeNormal is truncated
        return keras.initializers.RandomNormal(0.0, math.sqrt(2.0 / fan_in), seed=seed)
    if name == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    if name == "lecun_normal":  # plain normal: keras.initializers.LecunNormal is truncated
        return keras.initializers.RandomNormal(0.0, math.sqrt(1.0 / fan_in), seed=seed)
    if name == "orthogonal":  # Keras' Orthogonal: QR of a normal matrix, sign-corrected by diag(R), times gain
        return keras.initializers.Orthogonal(gain=initializer["gain"], seed=seed)
    if name == "fan_in_uniform":
        limit = 1.0 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    raise BackendError(f"initializer: the Keras backend has no realization of {name!r}.")


def bias_initializer(initializer: Component, fan_in: int, seed: int) -> keras.initializers.Initializer:
    """Zeros, except fan_in_uniform, the one canonical initializer that draws biases U(±1/sqrt(fan_in))."""
    if initializer.name == "fan_in_uniform":
        limit = 1.0 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    return keras.initializers.Zeros()


@dataclass
class Network:
    """A built Keras model plus the map from canonical weight keys to its variables.

    `variables` is ordered like `harness.spec.init.initial_weights` (layer by layer,
    kernel before bias). `kernels` and `biases` split them by role: penalties and weight
    decay touch kernels only.
    """

    model: keras.Model
    variables: dict[str, keras.Variable]
    kernels: list[keras.Variable]
    biases: list[keras.Variable]


def layer_seeds(seed: int, num_layers: int) -> np.ndarray:
    """Per-layer integer seeds for native initializers and dropout masks, from the trial seed.

    Drawn from the framework stream `default_rng([seed, FRAMEWORK_STREAM])`, so they never
    collide with the shared-init or batch-order streams. Shape (num_layers, 3): kernel
    seed, bias seed, dropout seed.
    """
    rng = np.random.default_rng([seed, FRAMEWORK_STREAM])
    return rng.integers(0, SEED_LIMIT, size=(num_layers, 3))


def build_network(plans: tuple[LayerPlan, ...], input_shape: Shape, initializer: Component, seed: int) -> Network:
    """Build the Keras model of a planned layer stack.

    Args:
        plans: `spec.model.plan(input_shape)`: layer kinds, shapes and canonical tensors.
        input_shape: one sample's shape, no batch axis.
        initializer: the canonical initializer realized natively (shared mode overwrites it).
        seed: the trial seed; native draws and dropout masks derive from it.

    Raises:
        BackendError: a layer kind this adapter does not realize (it names the layer).
    """
    for plan in plans:
        if plan.layer.kind not in LAYER_KINDS:
            raise BackendError(
                f"model.layers[{plan.index}]: the Keras backend realizes the layers {', '.join(LAYER_KINDS)}, "
                f"not {plan.layer.kind!r} yet. Run this suite on backend 'torch', or use those layers."
            )
    seeds = layer_seeds(seed, len(plans))
    layers: list[keras.layers.Layer] = []
    for plan in plans:
        kernel_seed, bias_seed, dropout_seed = (int(s) for s in seeds[plan.index])
        params = dict(plan.layer.params)
        name = plan.name.replace(".", "_")  # '0.dense' -> '0_dense' (Keras names may not hold dots)
        if plan.layer.kind == "dense":
            kernel_shape = plan.tensors[0].shape
            layers.append(
                keras.layers.Dense(
                    params["units"],
                    activation=activation_function(params["activation"]),
                    use_bias=params["use_bias"],
                    kernel_initializer=kernel_initializer(initializer, kernel_shape, kernel_seed),
                    bias_initializer=bias_initializer(initializer, fans(kernel_shape)[0], bias_seed),
                    name=name,
                )
            )
        elif plan.layer.kind == "dropout":
            # Inverted dropout like the canonical layer; masks come from Keras' SeedGenerator.
            layers.append(keras.layers.Dropout(params["rate"], seed=dropout_seed, name=name))
        elif plan.layer.kind == "activation":
            function = activation_function(params["activation"])
            layers.append(keras.layers.Activation(function or "linear", name=name))
    model = keras.Sequential([keras.Input(shape=tuple(input_shape)), *layers])
    variables: dict[str, keras.Variable] = {}
    kernels: list[keras.Variable] = []
    biases: list[keras.Variable] = []
    for plan, layer in zip(plans, layers):
        for tensor in plan.tensors:
            variable = layer.kernel if tensor.name == "kernel" else layer.bias
            if tuple(variable.shape) != tuple(tensor.shape):
                raise ValueError(f"{weight_key(plan, tensor)}: Keras made shape {variable.shape}, spec says {tensor.shape}")
            variables[weight_key(plan, tensor)] = variable
            (kernels if tensor.role == "kernel" else biases).append(variable)
    return Network(model=model, variables=variables, kernels=kernels, biases=biases)
