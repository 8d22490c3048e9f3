"""Resolve a suite's `model:` block into a ModelSpec, and check it against data and loss.

Three forms:
    model: {mlp: {hidden: [100, 100], activation: relu}}       # a family shorthand (harness.spec.families)
    model: {layers: [{dense: {units: 100, activation: relu}}, {dense: {}}]}   # a plain stack
    model: {graph: {inputs: x, nodes: [...], outputs: [...]}}  # a DAG (harness.spec.graph)
The output layer's size comes from the dataset unless given (`output_units`, or the last dense
layer's `units`; in a graph, a dense node read by an output).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
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
    raw: Any,
    num_outputs: int,
    dropout: float = 0.0,
    where: str = "model",
    input_shape: Shape | None = None,
    folder: Path | None = None,
) -> ModelSpec:
    """Expand a family shorthand, or resolve an explicit layer list or graph.

    Args:
        raw: the suite's `model` value (after grid substitution).
        num_outputs: output units the dataset/loss needs (classes, 1 for binary, targets for regression).
        dropout: the regularizer's dropout rate, inserted by families (see harness.spec.families).
        where: key path for messages.
        input_shape: the dataset's input shape, when known: cnn/lenet5 pick conv1d or conv2d from it.
        folder: the suite file's folder, where a Python model's modules are looked for first.

    Raises:
        SpecError: naming the key path, what was received and what is expected.
    """
    registered = registered_model(raw)
    if registered is not None:
        raw = registered
    if isinstance(raw, Mapping) and "python" in raw:
        return resolve_python_model(raw, where, folder or Path.cwd())
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


PYTHON_MODEL_KEYS = ("torch", "keras")  # a factory per framework; `keras` serves every keras backend


def resolve_python_model(raw: Mapping[str, Any], where: str, folder: Path) -> ModelSpec:
    """`{python: {torch: mod:make_torch, keras: mod:make_keras}, args: {...}}`: a model from the user's code.

    Each factory is called in the worker as factory(input_shape, output_units, **args) and returns a
    torch.nn.Module / keras.Model that outputs logits. Here only the modules' FILES are found (their
    parent packages are imported to find them) and hashed, so editing the model reruns its trials.

    Raises:
        SpecError: unknown keys, no factory, a reference not 'module:function', a module not found.
    """
    for key in raw:
        if key not in ("python", "args", "names"):
            raise SpecError(f"{where}.{key}: a Python model has the keys python, args and names, not {key!r}.")
    factories = raw["python"]
    example = "{torch: mypkg.nets:make_torch, keras: mypkg.nets:make_keras}"
    if not isinstance(factories, Mapping) or not factories:
        raise SpecError(
            f"{where}.python: expected a mapping of framework to factory, e.g. {example}, got {factories!r}."
        )
    digest = hashlib.sha256()
    for key, reference in sorted(factories.items()):
        if key not in PYTHON_MODEL_KEYS:
            raise unknown_name("framework", str(key), PYTHON_MODEL_KEYS, f"{where}.python")
        if not isinstance(reference, str) or reference.count(":") != 1 or not all(reference.split(":")):
            raise SpecError(f"{where}.python.{key}: expected 'package.module:function', got {reference!r}.")
        module = reference.split(":")[0]
        origin, problem = module_file(module, folder)
        if origin is None:
            raise SpecError(
                f"{where}.python.{key}: cannot find module {module!r}{problem}. Put it beside the suite file or "
                "install its package."
            )
        digest.update(f"{key}={reference}\0".encode() + origin.read_bytes())
    args = raw.get("args", {})
    if not isinstance(args, Mapping):
        raise SpecError(f"{where}.args: expected a mapping of keyword arguments for the factories, got {args!r}.")
    names, by_shape = _python_names(raw.get("names"), factories, where)
    return ModelSpec(
        layers=(),
        family="python",
        names=names,
        by_shape=by_shape,
        python=tuple(sorted((str(key), str(value)) for key, value in factories.items())),
        args=json.dumps(args, sort_keys=True),
        source=digest.hexdigest()[:16],
        import_path=str(folder.resolve()),
    )


BY_SHAPE = "by_shape"


def _python_names(raw: Any, factories: Mapping[str, Any], where: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    """`names: {torch_parameter: keras_variable_path, ...}` or `names: by_shape`: pair the two factories'
    parameters for shared init and parity (checked against the built models at suite load). Returns the
    pairs in the order given and whether they are to be matched by shape (pairs then filled in at load)."""
    if raw is None:
        return (), False
    example = "names: {stem.weight: stem/kernel, stem.bias: stem/bias, ...} (torch parameter: Keras variable path)"
    if set(factories) != set(PYTHON_MODEL_KEYS):
        raise SpecError(
            f"{where}.names: pairs the torch and Keras factories' parameters, so it needs both factories; "
            f"this model gives only {', '.join(factories)}. Add the other factory, or drop names."
        )
    if raw == BY_SHAPE:
        return (), True
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"{where}.names: expected {BY_SHAPE!r} or a mapping, e.g. {example}; got {raw!r}.")
    pairs = []
    for torch_name, keras_name in raw.items():
        if not isinstance(torch_name, str) or not isinstance(keras_name, str) or not torch_name or not keras_name:
            raise SpecError(
                f"{where}.names: expected names as strings, e.g. {example}; got {torch_name!r}: {keras_name!r}."
            )
        pairs.append((torch_name, keras_name))
    repeated = sorted({b for _, b in pairs if [b2 for _, b2 in pairs].count(b) > 1})
    if repeated:
        raise SpecError(f"{where}.names: Keras variables {repeated} are paired with more than one torch parameter.")
    return tuple(pairs), False


MODELS_GROUP = "harness.models"  # entry points '<name>.torch' / '<name>.keras' = 'module:factory'


def registered_model(raw: Any) -> dict[str, Any] | None:
    """`my_net` or `{name: my_net, args: {...}}` when an installed package registers factories for it
    (entry points `my_net.torch`, `my_net.keras` in group harness.models), as a `{python, args}` mapping."""
    if isinstance(raw, str):
        name, args = raw, {}
    elif isinstance(raw, Mapping) and isinstance(raw.get("name"), str) and set(raw) <= {"name", "args"}:
        name, args = raw["name"], raw.get("args", {})
    else:
        return None
    factories = {
        point.name.rsplit(".", 1)[1]: point.value
        for point in metadata.entry_points(group=MODELS_GROUP)
        if point.name.rsplit(".", 1)[0] == name and point.name.rsplit(".", 1)[-1] in PYTHON_MODEL_KEYS
    }
    return {"python": factories, "args": args} if factories else None


def module_file(module: str, folder: Path) -> tuple[Path | None, str]:
    """The file of `module`: beside the suite first (as the workers import it, the suite's folder first on
    the path), else where Python would find it. Returns (path or None, why not found)."""
    relative = Path(*module.split("."))
    for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
        if candidate.is_file():
            return candidate, ""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:
        return None, f" ({type(error).__name__}: {error})"
    if found is None or not found.origin or not Path(found.origin).is_file():
        return None, ""
    return Path(found.origin), ""


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
    if model.python:
        return  # checked by building it (harness.adapters.python_models.check_python_model)
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
