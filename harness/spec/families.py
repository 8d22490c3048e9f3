"""Model families: shorthands that expand to explicit layers (or a graph), so grid axes can vary them.

    mlp          {hidden: [100, 100], activation: relu, residual: false, use_bias: true, output_units}
                 dense layers, then a linear output layer. residual: every hidden layer after the first
                 adds its input back, h_k = h_{k-1} + act(h_{k-1} @ W_k + b_k) (equal widths needed), so
                 {hidden: [100, 100], residual: true} is the MNIST-1D MLP (15,210 parameters).
    cnn          {filters: [25, 25, 25], kernel_size: [5, 3, 3], strides: 2, padding: 1, activation: relu,
                 batch_norm: false, pool: none | max | avg, pool_size: 2, readout: flatten | global_avg_pool
                 | global_max_pool | sequence, dense: [], dimensions: 1 | 2, output_units}
                 one conv layer per `filters` entry (conv -> [batch_norm] -> activation -> [pool]), the
                 readout, hidden dense layers, a linear output. kernel_size/strides/padding: one value for
                 every conv layer, or a list with one value per conv layer. dimensions defaults to the
                 input's (conv1d on (length, channels), conv2d on (height, width, channels)), else 1.
                 The example above is the MNIST-1D CNN (5,210 parameters).
    lenet5       {activation: tanh, pool: avg, padding: same, dimensions, output_units}
                 LeCun et al. 1998: conv 6@5 (padding same, as the paper's 32x32 input for 28x28 digits) ->
                 pool 2 -> conv 16@5 (`padding`; the paper's is valid) -> pool 2 -> flatten -> dense 120 ->
                 dense 84 -> output (C5 as a dense layer). padding same keeps it valid on 8x8 digits.
    rnn          {cell: gru | lstm | simple_rnn, units, depth: 1, bidirectional: false,
                 readout: last | flatten | mean | sequence, dense: [], output_units}
                 depth recurrent layers (all but the top return sequences), the readout (last: the final
                 state; flatten: every step's output; mean: global_avg_pool over steps), hidden dense
                 layers, a linear output. {cell: gru, units: 6, bidirectional: true, readout: flatten}
                 is the MNIST-1D GRU (5,134 parameters).
    transformer  {depth: 2, heads: 4, width: 64, ffn_units: 4*width, key_dim: width/heads, activation: relu,
                 norm: pre | post, readout: mean | flatten | sequence, output_units}
                 conv1d(width, kernel 1) (a per-step linear projection) -> position_embedding ->
                 depth transformer_encoder blocks -> [layer_norm if pre] -> readout -> linear output.
readout `sequence` keeps the time axis: the head's dense layers apply at every step, so the model
emits (steps, classes), what the ctc loss reads (sequence labelling); 1-D inputs only.
Dropout from the suite's regularizer: mlp after each hidden layer; cnn/lenet5/rnn before every dense
layer of the head (after the readout and after each hidden dense layer); transformer inside its blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError, did_you_mean
from harness.spec.components import resolve_component
from harness.spec.graph import GraphSpec, resolve_graph
from harness.spec.layer_types import LayerSpec, Shape
from harness.spec.layers import resolve_layer
from harness.spec.params import Parameter, defaults

FAMILIES = {
    "mlp": "dense layers of the given widths, each followed by the activation (optionally residual), then a linear output layer",
    "cnn": "conv layers (conv -> [batch_norm] -> activation -> [pool]), a readout, dense layers, a linear output",
    "lenet5": "LeCun et al. 1998: conv 6@5, pool, conv 16@5, pool, dense 120, dense 84, output",
    "rnn": "stacked simple_rnn / lstm / gru layers (optionally bidirectional), a readout, dense layers, a linear output",
    "transformer": "per-step projection, learned positions, transformer_encoder blocks, a readout, a linear output",
}

Expansion = tuple[tuple[LayerSpec, ...], GraphSpec | None]

# --- each family's parameters, declared once ------------------------------------------------------
# A family checks its own keys with these declarations (`Parameter.check`). Kind 'any' marks a value
# checked elsewhere: by the layers it becomes (kernel_size, units, heads, ...; their errors name the
# family key) or by a helper below whose message says more than a kind can (widths, dimensions).
# Default None means "derived" (output_units: the task's output count); REQUIRED lists what has none.

_OUTPUT_UNITS = Parameter("integer", None, "> 0", "units of the linear output layer; default: the task's outputs")
_ACTIVATION = Parameter("activation", "relu", description="activation of every hidden layer")
_DENSE = Parameter("any", [], description="widths of the hidden dense layers of the head, e.g. [64]")
_DIMENSIONS = Parameter(
    "integer", None, "[1, 2]", "1: conv1d, 2: conv2d; default: 2 on (height, width, channels) inputs, else 1"
)
_WIDTH = Parameter("integer", None, "> 0", "units (or channels) of one layer")
_POOL = Parameter("choice", "none", choices=("none", "max", "avg"), description="pooling after each conv layer")

MLP_PARAMETERS = {
    "hidden": Parameter("any", None, description="widths of the hidden layers, e.g. [100, 100]"),
    "depth": Parameter("integer", None, "> 0", "number of hidden layers of `width` units (0: none)"),
    "width": Parameter("integer", None, "> 0", "units of each of the `depth` hidden layers"),
    "activation": _ACTIVATION,
    "output_units": _OUTPUT_UNITS,
    "use_bias": Parameter("bool", True, description="every dense layer has a bias"),
    "residual": Parameter("bool", False, description="each hidden layer after the first adds its input back"),
}
CNN_PARAMETERS = {
    "filters": Parameter("any", None, description="channels of each conv layer, e.g. [25, 25, 25]"),
    "kernel_size": Parameter("any", 3, description="one for every conv layer, or a list with one per layer"),
    "strides": Parameter("any", 1, description="one for every conv layer, or a list with one per layer"),
    "padding": Parameter("any", "valid", description="one for every conv layer, or a list with one per layer"),
    "activation": _ACTIVATION,
    "batch_norm": Parameter("bool", False, description="batch_norm between each conv layer and its activation"),
    "pool": _POOL,
    "pool_size": Parameter("any", 2, description="window of each pooling layer"),
    "readout": Parameter(
        "choice",
        "flatten",
        choices=("flatten", "global_avg_pool", "global_max_pool", "sequence"),
        description="how the conv stack's output becomes the head's input",
    ),
    "dense": _DENSE,
    "dimensions": _DIMENSIONS,
    "output_units": _OUTPUT_UNITS,
}
LENET5_PARAMETERS = {
    "activation": dataclasses.replace(_ACTIVATION, default="tanh"),
    "pool": dataclasses.replace(_POOL, default="avg"),
    "padding": Parameter("any", "same", description="padding of the second conv layer (the first is same)"),
    "dimensions": _DIMENSIONS,
    "output_units": _OUTPUT_UNITS,
}
RNN_PARAMETERS = {
    "cell": Parameter("choice", "gru", choices=("simple_rnn", "lstm", "gru"), description="the recurrent layer"),
    "units": Parameter("any", None, description="units of each recurrent layer"),
    "depth": Parameter("integer", 1, "> 0", "number of stacked recurrent layers"),
    "bidirectional": Parameter("any", False, description="each recurrent layer reads both directions"),
    "readout": Parameter(
        "choice",
        "last",
        choices=("last", "flatten", "mean", "sequence"),
        description="last: the final state; flatten: every step's output; mean: their average; sequence: every step",
    ),
    "dense": _DENSE,
    "activation": _ACTIVATION,
    "output_units": _OUTPUT_UNITS,
}
TRANSFORMER_PARAMETERS = {
    "depth": Parameter("integer", 2, "> 0", "number of transformer_encoder blocks"),
    "heads": Parameter("any", 4, description="attention heads of each block"),
    "width": Parameter("integer", 64, "> 0", "the model width (the per-step projection's filters)"),
    "ffn_units": Parameter("any", None, description="units of each block's feed-forward layer; default 4 * width"),
    "key_dim": Parameter("any", None, description="size of each attention head; default width / heads"),
    "activation": _ACTIVATION,
    "norm": Parameter("choice", "pre", choices=("pre", "post"), description="layer_norm before or after each sublayer"),
    "readout": Parameter(
        "choice", "mean", choices=("mean", "flatten", "sequence"), description="how the steps become the head's input"
    ),
    "output_units": _OUTPUT_UNITS,
}
REQUIRED = {"cnn": ("filters",), "rnn": ("units",)}  # family keys without a default


def options(
    value: Any,
    parameters: Mapping[str, Parameter],
    where: str,
    example: str,
    required: tuple[str, ...] = (),
    **derived: Any,
) -> dict[str, Any]:
    """Check a family mapping's keys (did-you-mean) and fill the declared defaults.

    Args:
        value: the family's mapping as the suite gave it (None: every default).
        parameters: the family's declarations.
        where: the key path for messages.
        example: a valid mapping, for messages.
        required: keys that must be given.
        derived: defaults known only at expansion time (mlp's output_units: the task's outputs).
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping such as {example}, got {value!r}.")
    for key in value:
        if key not in parameters:
            raise SpecError(
                f"{where}.{key}: unknown key {key!r}.{did_you_mean(str(key), parameters)} "
                f"Expected keys: {', '.join(sorted(parameters))}."
            )
    missing = [key for key in required if key not in value]
    if missing:
        raise SpecError(f"{where}: {', '.join(missing)} must be given, e.g. {example}.")
    return {**defaults(parameters), **derived, **value}


def _widths(value: Any, where: str) -> list[int]:
    """A list of layer widths (hidden, filters, dense), each an integer > 0."""
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected a list of layer widths such as [100, 100], got {value!r}.")
    return [_WIDTH.check(width, f"{where}[{i}]") for i, width in enumerate(value)]


def _hidden_widths(o: dict[str, Any], where: str) -> list[int]:
    """`hidden: [w1, w2, ...]`, or `depth: D, width: W` for D hidden layers of W units (so a grid can
    vary depth and width as two axes). Exactly one form; the expansion is the same layers either way."""
    if o["hidden"] is not None:
        if o["depth"] is not None or o["width"] is not None:
            raise SpecError(f"{where}: give either hidden: [...] or depth and width, not both.")
        return _widths(o["hidden"], f"{where}.hidden")
    if o["depth"] is None and o["width"] is None:
        return []
    if o["depth"] is None or o["width"] is None:
        given, needed = ("depth", "width") if o["depth"] is not None else ("width", "depth")
        raise SpecError(f"{where}: {given} needs {needed} too, e.g. {{depth: 4, width: 100}}.")
    depth = 0 if o["depth"] == 0 else MLP_PARAMETERS["depth"].check(o["depth"], f"{where}.depth")
    width = MLP_PARAMETERS["width"].check(o["width"], f"{where}.width")
    return [width] * depth


def _activation(value: Any, where: str) -> dict[str, Any]:
    """Resolve an activation once (errors name the family key) and return its mapping form for resolve_layer."""
    return resolve_component("activation", value, where).to_dict()


def _head(
    layers: list[LayerSpec], hidden: list[int], activation: Any, output_units: int, dropout: float, where: str
) -> None:
    """Append the dense head: [dropout] (dense hidden, [dropout])*, linear output."""
    if dropout > 0:
        layers.append(resolve_layer({"dropout": dropout}, where))
    for width in hidden:
        layers.append(resolve_layer({"dense": {"units": width, "activation": activation}}, where))
        if dropout > 0:
            layers.append(resolve_layer({"dropout": dropout}, where))
    layers.append(resolve_layer({"dense": {"units": output_units}}, where))


def expand_mlp(value: Any, num_outputs: int, dropout: float, where: str, input_shape: Shape | None = None) -> Expansion:
    declared = MLP_PARAMETERS
    o = options(value, declared, where, "{hidden: [100, 100], activation: relu}", output_units=num_outputs)
    hidden = _hidden_widths(o, where)
    use_bias = declared["use_bias"].check(o["use_bias"], f"{where}.use_bias")
    output_units = declared["output_units"].check(o["output_units"], f"{where}.output_units")
    dense = {"activation": _activation(o["activation"], f"{where}.activation"), "use_bias": use_bias}
    if not declared["residual"].check(o["residual"], f"{where}.residual"):
        layers: list[LayerSpec] = []
        for width in hidden:
            layers.append(resolve_layer({"dense": {"units": width, **dense}}, f"{where}"))
            if dropout > 0:
                layers.append(resolve_layer({"dropout": dropout}, where))
        layers.append(resolve_layer({"dense": {"units": output_units, "use_bias": use_bias}}, where))
        return tuple(layers), None
    if not hidden:
        raise SpecError(f"{where}.residual: a residual mlp needs hidden layers, got hidden: [].")
    for k in range(1, len(hidden)):
        if hidden[k] != hidden[k - 1]:
            raise SpecError(
                f"{where}.hidden[{k}]: a residual layer adds its input back, so its width must equal the layer "
                f"before it: got {hidden[k]} after {hidden[k - 1]}. Use equal widths or residual: false."
            )
    nodes: list[dict[str, Any]] = []
    current = "input"
    for k, width in enumerate(hidden):
        name = "hidden0" if k == 0 else f"branch{k}"
        nodes.append({"name": name, "layer": {"dense": {"units": width, **dense}}, "from": current})
        if dropout > 0:
            nodes.append({"name": f"dropout{k}", "layer": {"dropout": dropout}})
        if k > 0:
            nodes.append({"name": f"residual{k}", "layer": {"add": {}}, "from": [current, nodes[-1]["name"]]})
        current = nodes[-1]["name"]
    nodes.append({"name": "logits", "layer": {"dense": {"units": output_units, "use_bias": use_bias}}, "from": current})
    return resolve_graph({"inputs": "input", "nodes": nodes, "outputs": ["logits"]}, num_outputs, where)


def _per_layer(value: Any, count: int, where: str) -> list[Any]:
    """One value for every conv layer, or a list with one value per conv layer."""
    if isinstance(value, list):
        if len(value) != count:
            raise SpecError(
                f"{where}: a list gives one value per conv layer: expected {count} values, got {len(value)} ({value!r})."
            )
        return value
    return [value] * count


def _dimensions(value: Any, input_shape: Shape | None, where: str) -> int:
    """CNN_PARAMETERS['dimensions'], checked here: the message names conv1d and conv2d."""
    if value is None:
        return 2 if input_shape is not None and len(input_shape) == 3 else 1
    if value not in (1, 2):
        raise SpecError(f"{where}.dimensions: expected 1 (conv1d) or 2 (conv2d), got {value!r}.")
    return value


def expand_cnn(value: Any, num_outputs: int, dropout: float, where: str, input_shape: Shape | None = None) -> Expansion:
    declared = CNN_PARAMETERS
    example = "{filters: [25, 25, 25], kernel_size: [5, 3, 3], strides: 2, padding: 1}"
    o = options(value, declared, where, example, REQUIRED["cnn"])
    filters = _widths(o["filters"], f"{where}.filters")
    if not filters:
        raise SpecError(f"{where}.filters: expected at least one conv layer, got [].")
    rank = _dimensions(o["dimensions"], input_shape, where)
    kernel_sizes = _per_layer(o["kernel_size"], len(filters), f"{where}.kernel_size")
    strides = _per_layer(o["strides"], len(filters), f"{where}.strides")
    paddings = _per_layer(o["padding"], len(filters), f"{where}.padding")
    pool = declared["pool"].check(o["pool"], f"{where}.pool")
    readout = declared["readout"].check(o["readout"], f"{where}.readout")
    if readout == "sequence" and rank != 1:
        raise SpecError(
            f"{where}.readout: 'sequence' keeps the time axis of a conv1d stack; this cnn is 2-D (conv2d). "
            "Use flatten or a global pooling readout."
        )
    batch_norm = declared["batch_norm"].check(o["batch_norm"], f"{where}.batch_norm")
    activation = _activation(o["activation"], f"{where}.activation")
    output_units = declared["output_units"].check(o["output_units"] or num_outputs, f"{where}.output_units")
    layers: list[LayerSpec] = []
    for i, width in enumerate(filters):
        here = f"{where}.filters[{i}]"
        conv = {"filters": width, "kernel_size": kernel_sizes[i], "strides": strides[i], "padding": paddings[i]}
        layers.append(
            resolve_layer({f"conv{rank}d": {**conv, "activation": "linear" if batch_norm else activation}}, here)
        )
        if batch_norm:
            layers.append(resolve_layer({"batch_norm": {}}, here))
            layers.append(resolve_layer({"activation": activation}, here))
        if pool != "none":
            layers.append(resolve_layer({f"{pool}_pool{rank}d": {"pool_size": o["pool_size"]}}, f"{where}.pool_size"))
    if readout != "sequence":
        layers.append(resolve_layer({readout: {}}, where))
    _head(layers, _widths(o["dense"], f"{where}.dense"), activation, output_units, dropout, where)
    return tuple(layers), None


def expand_lenet5(
    value: Any, num_outputs: int, dropout: float, where: str, input_shape: Shape | None = None
) -> Expansion:
    o = options(value, LENET5_PARAMETERS, where, "{activation: tanh, pool: avg}")
    cnn = {
        "filters": [6, 16],
        "kernel_size": 5,
        "padding": ["same", o["padding"]],
        "activation": o["activation"],
        "pool": o["pool"],
        "pool_size": 2,
        "dense": [120, 84],
        "dimensions": o["dimensions"],
        "output_units": o["output_units"],
    }
    return expand_cnn(cnn, num_outputs, dropout, where, input_shape)


def expand_rnn(value: Any, num_outputs: int, dropout: float, where: str, input_shape: Shape | None = None) -> Expansion:
    declared = RNN_PARAMETERS
    o = options(value, declared, where, "{cell: gru, units: 6, bidirectional: true, readout: flatten}", REQUIRED["rnn"])
    cell = declared["cell"].check(o["cell"], f"{where}.cell")
    depth = declared["depth"].check(o["depth"], f"{where}.depth")
    readout = declared["readout"].check(o["readout"], f"{where}.readout")
    output_units = declared["output_units"].check(o["output_units"] or num_outputs, f"{where}.output_units")
    layers = []
    for k in range(depth):
        sequences = k < depth - 1 or readout != "last"
        recurrent = {"units": o["units"], "bidirectional": o["bidirectional"], "return_sequences": sequences}
        layers.append(resolve_layer({cell: recurrent}, where))
    if readout in ("flatten", "mean"):
        layers.append(resolve_layer({"flatten" if readout == "flatten" else "global_avg_pool": {}}, where))
    _head(
        layers,
        _widths(o["dense"], f"{where}.dense"),
        _activation(o["activation"], f"{where}.activation"),
        output_units,
        dropout,
        where,
    )
    return tuple(layers), None


def expand_transformer(
    value: Any, num_outputs: int, dropout: float, where: str, input_shape: Shape | None = None
) -> Expansion:
    declared = TRANSFORMER_PARAMETERS
    o = options(value, declared, where, "{depth: 2, heads: 4, width: 64}")
    width = declared["width"].check(o["width"], f"{where}.width")
    depth = declared["depth"].check(o["depth"], f"{where}.depth")
    readout = declared["readout"].check(o["readout"], f"{where}.readout")
    norm = declared["norm"].check(o["norm"], f"{where}.norm")
    output_units = declared["output_units"].check(o["output_units"] or num_outputs, f"{where}.output_units")
    block = {
        "heads": o["heads"],
        "ffn_units": o["ffn_units"] if o["ffn_units"] is not None else 4 * width,
        "key_dim": o["key_dim"],
        "activation": _activation(o["activation"], f"{where}.activation"),
        "dropout": dropout,
        "norm": norm,
    }
    if o["key_dim"] is None and isinstance(o["heads"], int) and o["heads"] > 0 and width % o["heads"]:
        raise SpecError(
            f"{where}.heads: width {width} is not divisible by heads {o['heads']}; set key_dim or change them."
        )
    layers = [
        resolve_layer({"conv1d": {"filters": width, "kernel_size": 1}}, f"{where}.width"),
        resolve_layer({"position_embedding": {}}, where),
    ]
    layers += [resolve_layer({"transformer_encoder": block}, where) for _ in range(depth)]
    if norm == "pre":
        layers.append(resolve_layer({"layer_norm": {}}, where))
    if readout != "sequence":
        layers.append(resolve_layer({"global_avg_pool" if readout == "mean" else "flatten": {}}, where))
    layers.append(resolve_layer({"dense": {"units": output_units}}, where))
    return tuple(layers), None


EXPANDERS = {
    "mlp": expand_mlp,
    "cnn": expand_cnn,
    "lenet5": expand_lenet5,
    "rnn": expand_rnn,
    "transformer": expand_transformer,
}
assert set(EXPANDERS) == set(FAMILIES)
