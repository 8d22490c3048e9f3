"""Resolve a suite's `model:` block into a ModelSpec, and check it against data and loss.

Three forms:
    model: {mlp: {hidden: [100, 100], activation: relu}}       # a family shorthand (harness.spec.families)
    model: {layers: [{dense: {units: 100, activation: relu}}, {dense: {}}]}   # a plain stack
    model: {graph: {inputs: x, nodes: [...], outputs: [...]}}  # a DAG (harness.spec.graph)
The output layer's size comes from the dataset unless given (`output_units`, or the last dense
layer's `units`; in a graph, a dense node read by an output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError, unknown_name
from harness.spec.families import EXPANDERS, FAMILIES
from harness.spec.graph import resolve_graph
from harness.spec.layers import LayerSpec, Shape, resolve_layer
from harness.spec.types import ModelSpec

# The task each canonical loss needs (the same table the suite loader checks the trial's loss with).
LOSS_TASKS = {
    "cross_entropy": "classification",
    "binary_cross_entropy": "binary",
    "mse": "regression",
    "ctc": "sequence",
}
FORMS = ("layers", "graph")

__all__ = ["FAMILIES", "LOSS_TASKS", "check_model_against_task", "resolve_model"]


def resolve_model(
    raw: Any, num_outputs: int, dropout: float = 0.0, where: str = "model", input_shape: Shape | None = None
) -> ModelSpec:
    """Expand a family shorthand, or resolve an explicit layer list or graph.

    Args:
        raw: the suite's `model` value (after grid substitution).
        num_outputs: output units the dataset/loss needs (classes, 1 for binary, targets for regression).
        dropout: the regularizer's dropout rate, inserted by families (see harness.spec.families).
        where: key path for messages.
        input_shape: the dataset's input shape, when known: cnn/lenet5 pick conv1d or conv2d from it.

    Raises:
        SpecError: naming the key path, what was received and what is expected.
    """
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SpecError(
            f"{where}: expected exactly one of 'layers', 'graph' or a family shorthand ({', '.join(FAMILIES)}), "
            f"got {raw!r}. Example: model: {{mlp: {{hidden: [100, 100], activation: relu}}}}."
        )
    ((key, value),) = raw.items()
    if key == "layers":
        return _resolve_layers(value, num_outputs, where)
    if key == "graph":
        layers, graph = resolve_graph(value, num_outputs, f"{where}.graph")
        return ModelSpec(layers=layers, family=None, graph=graph)
    if key in EXPANDERS:
        family_layers, family_graph = EXPANDERS[key](value, num_outputs, dropout, f"{where}.{key}", input_shape)
        return ModelSpec(layers=family_layers, family=key, graph=family_graph)
    raise unknown_name("model form", key, [*FORMS, *FAMILIES], where)


def _resolve_layers(value: Any, num_outputs: int, where: str) -> ModelSpec:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}.layers: expected a non-empty list of layers, got {value!r}.")
    raw_layers = [dict(x) if isinstance(x, Mapping) else x for x in value]
    last = raw_layers[-1]
    # The output layer's width comes from the dataset unless given.
    if (
        isinstance(last, dict)
        and set(last) == {"dense"}
        and isinstance(last["dense"], Mapping)
        and "units" not in last["dense"]
    ):
        raw_layers[-1] = {"dense": {**last["dense"], "units": num_outputs}}
    layers = tuple(resolve_layer(x, f"{where}.layers[{i}]") for i, x in enumerate(raw_layers))
    return ModelSpec(layers=layers, family=None)


def _final_activation(model: ModelSpec, index: int) -> tuple[str | None, LayerSpec]:
    """The activation the output at plan `index` ends with (walking back through a stack's activation-free layers)."""
    layer = model.layers[index]
    if model.graph is not None:
        return (layer["activation"].name if layer.kind in ("dense", "activation") else None), layer
    for earlier in reversed(model.layers[: index + 1]):
        if earlier.kind in ("dense", "activation"):
            return earlier["activation"].name, layer
    return None, layer


def check_model_against_task(
    model: ModelSpec, input_shape: Shape, loss: str, task: str, num_outputs: int, target_length: int | None = None
) -> None:
    """Shape-check the model on the dataset's input and check every output fits its loss.

    target_length: a sequence dataset's longest label string S; ctc needs (T, num_outputs) outputs
    with T >= 2*S - 1 steps (S labels with a blank between repeated neighbours).

    Raises:
        SpecError: naming the layer/node and shapes, or the loss/dataset mismatch and its fix.
    """
    plans = model.plan(input_shape)
    for output in model.outputs():
        output_loss = output.loss or loss
        label = "model" if model.graph is None else f"model.graph.outputs '{output.name}'"
        if output.loss is not None and LOSS_TASKS.get(output_loss) != task:
            fitting = [name for name, needed in LOSS_TASKS.items() if needed == task]
            raise SpecError(
                f"{label}: loss {output_loss!r} needs a {LOSS_TASKS.get(output_loss)} dataset, but this dataset is a "
                f"{task} dataset. Every output predicts the dataset's target: use loss {' or '.join(fitting)}, or drop the "
                "output's `loss` to use the suite's."
            )
        final_activation, last = _final_activation(model, output.index)
        if (
            output_loss in ("cross_entropy", "binary_cross_entropy", "ctc")
            and final_activation in ("softmax", "sigmoid")
            and last.kind in ("dense", "activation")
        ):
            raise SpecError(
                f"{label}: the last layer applies {final_activation!r}, but loss {output_loss!r} takes logits "
                "(it applies the softmax/sigmoid itself, in a numerically stable form). "
                "Remove the final activation; predictions use the argmax of the logits."
            )
        output_shape = plans[output.index].output_shape
        if output_loss == "ctc":
            _check_ctc_output(output_shape, num_outputs, target_length, label)
        elif output_shape != (num_outputs,):
            hint = (
                " Put a flatten or global pooling layer before the output layer, so it sees one vector per sample."
                if len(output_shape) > 1
                else f" Drop the output width so it comes from the dataset, or set it to {num_outputs}."
            )
            raise SpecError(
                f"{label}: the output shape is {output_shape}, but loss {output_loss!r} on this {task} dataset needs "
                f"({num_outputs},).{hint}"
            )


def _check_ctc_output(shape: Shape, num_outputs: int, target_length: int | None, label: str) -> None:
    """ctc reads one class distribution per output step: (steps, classes), enough steps for the longest string."""
    if len(shape) != 2 or shape[1] != num_outputs:
        raise SpecError(
            f"{label}: the output shape is {shape}, but loss 'ctc' needs one score per class at every step, "
            f"(steps, {num_outputs}) ({num_outputs - 1} symbols and the blank). Keep the time axis (return_sequences: "
            "true, no flatten or pooling over time) and end with a dense layer, which applies at every step."
        )
    needed = 2 * target_length - 1 if target_length else 1
    if shape[0] < needed:
        raise SpecError(
            f"{label}: the model emits {shape[0]} steps, but loss 'ctc' needs at least {needed} to spell the longest "
            f"label string ({target_length} symbols, a blank between repeated neighbours). Use less striding or pooling."
        )
