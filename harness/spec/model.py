"""Resolve a suite's `model:` block into a ModelSpec, and check it against data and loss.

Two forms:
    model: {mlp: {hidden: [100, 100], activation: relu}}       # family shorthand
    model: {layers: [{dense: {units: 100, activation: relu}}, {dense: {units: 10}}]}
The output layer's size comes from the dataset unless given (`output_units`, or the
last dense layer's `units`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError, did_you_mean, unknown_name
from harness.spec.components import check_number, resolve_component
from harness.spec.layers import LayerSpec, Shape, resolve_layer
from harness.spec.types import ModelSpec

MLP_KEYS = {"hidden", "activation", "output_units", "use_bias"}
FAMILIES = {"mlp": "dense layers of the given widths, each followed by the activation, then a linear output layer"}


def resolve_model(raw: Any, num_outputs: int, dropout: float = 0.0, where: str = "model") -> ModelSpec:
    """Expand a family shorthand or resolve an explicit layer list.

    Args:
        raw: the suite's `model` value (after grid substitution).
        num_outputs: output units the dataset/loss needs (classes, 1 for binary, targets for regression).
        dropout: the regularizer's dropout rate, inserted after each hidden activation of a family.
    """
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SpecError(
            f"{where}: expected exactly one of 'layers' or a family shorthand ({', '.join(FAMILIES)}), "
            f"got {raw!r}. Example: model: {{mlp: {{hidden: [100, 100], activation: relu}}}}."
        )
    ((key, value),) = raw.items()
    if key == "layers":
        return _resolve_layers(value, num_outputs, where)
    if key == "mlp":
        return _expand_mlp(value, num_outputs, dropout, f"{where}.mlp")
    raise unknown_name("model form", key, ["layers", *FAMILIES], where)


def _resolve_layers(value: Any, num_outputs: int, where: str) -> ModelSpec:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}.layers: expected a non-empty list of layers, got {value!r}.")
    raw_layers = [dict(x) if isinstance(x, Mapping) else x for x in value]
    last = raw_layers[-1]
    # The output layer's width comes from the dataset unless given.
    if isinstance(last, dict) and set(last) == {"dense"} and isinstance(last["dense"], Mapping) and "units" not in last["dense"]:
        raw_layers[-1] = {"dense": {**last["dense"], "units": num_outputs}}
    layers = tuple(resolve_layer(x, f"{where}.layers[{i}]") for i, x in enumerate(raw_layers))
    return ModelSpec(layers=layers, family=None)


def _expand_mlp(value: Any, num_outputs: int, dropout: float, where: str) -> ModelSpec:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping such as {{hidden: [100, 100], activation: relu}}, got {value!r}.")
    for key in value:
        if key not in MLP_KEYS:
            raise SpecError(
                f"{where}.{key}: unknown key {key!r}.{did_you_mean(key, MLP_KEYS)} Expected keys: {', '.join(sorted(MLP_KEYS))}."
            )
    hidden = value.get("hidden", [])
    if not isinstance(hidden, list):
        raise SpecError(f"{where}.hidden: expected a list of layer widths such as [100, 100], got {hidden!r}.")
    for i, width in enumerate(hidden):
        check_number(width, "int_positive", f"{where}.hidden[{i}]")
    activation = resolve_component("activation", value.get("activation", "relu"), f"{where}.activation")
    use_bias = value.get("use_bias", True)
    if not isinstance(use_bias, bool):
        raise SpecError(f"{where}.use_bias: expected true or false, got {use_bias!r}.")
    output_units = value.get("output_units", num_outputs)
    check_number(output_units, "int_positive", f"{where}.output_units")
    linear = resolve_component("activation", "linear", where)
    layers: list[LayerSpec] = []
    for width in hidden:
        layers.append(LayerSpec("dense", tuple(sorted({"units": width, "activation": activation, "use_bias": use_bias}.items()))))
        if dropout > 0:
            layers.append(LayerSpec("dropout", (("rate", dropout),)))
    layers.append(LayerSpec("dense", tuple(sorted({"units": output_units, "activation": linear, "use_bias": use_bias}.items()))))
    return ModelSpec(layers=tuple(layers), family="mlp")


def check_model_against_task(model: ModelSpec, input_shape: Shape, loss: str, task: str, num_outputs: int) -> None:
    """Shape-check the model on the dataset's input and check its output fits the loss.

    Raises:
        SpecError: naming the layer index and shapes, or the loss/dataset mismatch and its fix.
    """
    plans = model.plan(input_shape)
    output_shape = plans[-1].output_shape
    last = model.layers[-1]
    final_activation = None
    for layer in reversed(model.layers):
        if layer.kind == "dense":
            final_activation = layer["activation"].name
            break
        if layer.kind == "activation":
            final_activation = layer["activation"].name
            break
    if loss in ("cross_entropy", "binary_cross_entropy") and final_activation in ("softmax", "sigmoid") and last.kind in ("dense", "activation"):
        raise SpecError(
            f"model: the last layer applies {final_activation!r}, but loss {loss!r} takes logits "
            "(it applies the softmax/sigmoid itself, in a numerically stable form). "
            "Remove the final activation; predictions use the argmax of the logits."
        )
    if output_shape != (num_outputs,):
        raise SpecError(
            f"model: the output shape is {output_shape}, but loss {loss!r} on this {task} dataset needs "
            f"({num_outputs},). Drop the output width so it comes from the dataset, or set it to {num_outputs}."
        )
