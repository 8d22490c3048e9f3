"""Each canonical layer as a Keras layer, and where each canonical tensor lives in it.

Keras' layout is the canonical one (channels-last tensors; kernels (k..., in, out); LSTM gates
i, f, c, o with one bias; GRU reset_after with gates z, r, n and bias (2, 3h)), so every
canonical tensor is one Keras variable of the same shape, loaded without conversion. A
`Realization` holds the layer and a function naming its variables once the layer is built
(Keras creates variables when a layer first sees its input shape).

Built-ins used where they match the canonical meaning exactly: Dense, Dropout, Flatten, Add,
Concatenate, SimpleRNN, LSTM (unit_forget_bias=False), GRU (reset_after=True) and Bidirectional
(merge 'concat'; its backward outputs are re-reversed, so position t holds backward h_t, and the
last output is backward h_1). Everything else is in harness.adapters.keras.layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from harness.adapters.common import look_up, realizer_table
from harness.adapters.keras import layers as canonical
from harness.spec.layer_types import LayerPlan
from harness.spec.layers_sequence import attention_widths, transformer_key_dim
from harness.spec.layers_spatial import axis_paddings

Variables = Callable[[], dict[str, keras.Variable]]  # canonical tensor name -> variable, after build


@dataclass
class Realization:
    """One placed layer in Keras: the layer object and its canonical tensors (read after it is built)."""

    layer: keras.layers.Layer
    variables: Variables


def _attributes(layer: keras.layers.Layer, plan: LayerPlan, names: dict[str, str] | None = None) -> Variables:
    """Canonical tensors stored as attributes of `layer` (attribute = tensor name unless renamed)."""
    names = names or {}
    return lambda: {t.name: getattr(layer, names.get(t.name, t.name)) for t in plan.tensors}


def _name(plan: LayerPlan) -> str:
    return plan.name.replace(".", "_")  # '0.dense' -> '0_dense' (Keras names may not hold dots)


def dense(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p = plan.layer
    layer = keras.layers.Dense(
        p["units"],
        activation=activation(p["activation"]),
        use_bias=p["use_bias"],
        kernel_initializer="zeros",
        bias_initializer="zeros",
        name=_name(plan),
    )
    return Realization(layer, _attributes(layer, plan))


def activation(plan: LayerPlan, activation_of: Callable, seed: int) -> Realization:
    function = activation_of(plan.layer["activation"])
    return Realization(keras.layers.Activation(function or "linear", name=_name(plan)), dict)


def dropout(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    # Inverted dropout like the canonical layer; masks come from Keras' SeedGenerator.
    return Realization(keras.layers.Dropout(plan.layer["rate"], seed=seed, name=_name(plan)), dict)


def convolution(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p = plan.layer
    paddings = axis_paddings(plan.input_shape, p["kernel_size"], p["strides"], p["dilation"], p["padding"])
    layer = canonical.Convolution(
        p["filters"],
        p["kernel_size"],
        p["strides"],
        p["dilation"],
        paddings,
        p["use_bias"],
        activation(p["activation"]),
        name=_name(plan),
    )
    return Realization(layer, _attributes(layer, plan))


def pool(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p = plan.layer
    strides = p["strides"] if p["strides"] is not None else p["pool_size"]
    return Realization(
        canonical.Pool(plan.layer.kind[:3], p["pool_size"], strides, p["padding"], name=_name(plan)), dict
    )


def global_pool(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    mode = "avg" if plan.layer.kind == "global_avg_pool" else "max"
    return Realization(canonical.GlobalPool(mode, name=_name(plan)), dict)


def flatten(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    return Realization(keras.layers.Flatten(name=_name(plan)), dict)  # row-major over channels-last: canonical


def reshape(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    return Realization(canonical.Reshape(plan.output_shape, name=_name(plan)), dict)


def batch_norm(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    layer = canonical.BatchNorm(plan.layer["momentum"], plan.layer["eps"], name=_name(plan))
    return Realization(layer, _attributes(layer, plan))


def layer_norm(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    layer = canonical.LayerNorm(plan.layer["eps"], name=_name(plan))
    return Realization(layer, _attributes(layer, plan))


RECURRENT_LAYERS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def recurrent(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p, kind = plan.layer, plan.layer.kind
    options: dict[str, Any] = {
        "activation": "tanh",
        "use_bias": True,
        "return_sequences": p["return_sequences"],
        "kernel_initializer": "zeros",
        "recurrent_initializer": "zeros",
        "bias_initializer": "zeros",
        # the cell's SeedGenerator (Keras' recurrent dropout, which the harness leaves at 0, so never drawn
        # from) starts at [layer seed, 0], not at a draw from Python's global RNG: harness.adapters.keras.reuse
        "seed": seed,
    }
    if kind == "lstm":
        options.update(recurrent_activation="sigmoid", unit_forget_bias=False)
    elif kind == "gru":
        options.update(recurrent_activation="sigmoid", reset_after=True)
    build = RECURRENT_LAYERS[kind]
    if not p["bidirectional"]:
        layer = build(p["units"], name=_name(plan), **options)
        return Realization(
            layer, lambda: {name: getattr(layer.cell, name) for name in ("kernel", "recurrent_kernel", "bias")}
        )
    forward = build(p["units"], name=f"{_name(plan)}_forward", **options)
    backward = build(p["units"], name=f"{_name(plan)}_backward", go_backwards=True, **options)
    layer = keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode="concat", name=_name(plan))

    def variables() -> dict[str, keras.Variable]:
        result = {}
        for prefix, direction in (("forward_", layer.forward_layer), ("backward_", layer.backward_layer)):
            result.update(
                {f"{prefix}{name}": getattr(direction.cell, name) for name in ("kernel", "recurrent_kernel", "bias")}
            )
        return result

    return Realization(layer, variables)


def embedding(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    layer = canonical.Embedding(plan.layer["vocabulary"], plan.layer["dim"], name=_name(plan))
    return Realization(layer, _attributes(layer, plan))


def position_embedding(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    layer = canonical.PositionEmbedding(name=_name(plan))
    return Realization(layer, _attributes(layer, plan))


def attention(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p = plan.layer
    value_dim, output_dim = attention_widths(plan.input_shapes[0][1], p)
    layer = canonical.MultiHeadAttention(
        p["heads"], p["key_dim"], value_dim, output_dim, p["use_bias"], p["causal"], name=_name(plan)
    )
    return Realization(layer, _attributes(layer, plan))


def transformer(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    p = plan.layer
    width = plan.input_shape[1]
    layer = canonical.TransformerEncoder(
        p["heads"],
        transformer_key_dim(width, p, plan.name),
        p["ffn_units"],
        activation(p["activation"]),
        p["dropout"],
        p["norm"],
        p["eps"],
        seed,
        name=_name(plan),
    )
    return Realization(layer, _attributes(layer, plan))


def add(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    return Realization(keras.layers.Add(name=_name(plan)), dict)


def concatenate(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    return Realization(keras.layers.Concatenate(axis=-1, name=_name(plan)), dict)


Realizer = Callable[[LayerPlan, Callable, int], Realization]
# layer kind -> realizer: the function above named after the kind's family (harness.adapters.common.REALIZER_FAMILIES)
REALIZERS: dict[str, Realizer] = realizer_table(globals(), "Keras")


def realize(plan: LayerPlan, activation: Callable, seed: int) -> Realization:
    """The Keras realization of one placed layer.

    Args:
        plan: the placed layer (kind, parameters, shapes, tensors).
        activation: maps a canonical activation Component to a keras.ops function (None for linear).
        seed: this layer's dropout seed (dropout and transformer_encoder).

    Raises:
        BackendError: a layer kind this adapter does not realize.
    """
    return look_up(REALIZERS, plan.layer.kind, "Keras", "layer", f"model layer {plan.name}")(plan, activation, seed)
