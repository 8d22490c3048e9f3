"""Canonical layers: the registry, parameters, shape inference, and the tensors each layer owns.

Conventions (harness.spec.layer_types): tensors are channels-last without the batch axis (an
MNIST-1D vector is (40,), its sequence form (40, 1), a digits image (8, 8, 1)); a dense kernel
is (fan_in, fan_out) so that y = x @ kernel + bias (PyTorch's Linear.weight is its transpose);
conv kernels are (k..., in, out). Tensor roles (kernel, bias, gamma, state, ...) say how each
tensor is initialized, whether it trains and whether penalties touch it.

Layer kinds defined here (the others: harness.spec.layers_spatial, harness.spec.layers_sequence):
    dense, dropout, activation          as before
    batch_norm   per channel (last axis) over the batch and every position axis; see BATCH_NORM_DOC
    layer_norm   per sample over the last axis: y = gamma*(x - mean)/sqrt(var + eps) + beta, var biased
    add          element-wise sum of >= 2 inputs of one shape (graph form only)
    concatenate  >= 2 inputs joined along the last (channel) axis, in `from` order (graph form only)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError, unknown_name
from harness.spec.components import resolve_component
from harness.spec.layer_types import ROLES, LayerDef, LayerPlan, LayerSpec, Shape, TensorSpec, fans
from harness.spec.layers_sequence import SEQUENCE_LAYERS
from harness.spec.layers_spatial import SPATIAL_LAYERS
from harness.spec.params import Parameter, reject_unknown_keys

BATCH_NORM_DOC = (
    "training: mu, var = mean and BIASED variance per channel over the batch and every position axis; "
    "y = gamma*(x - mu)/sqrt(var + eps) + beta; then moving_mean = momentum*moving_mean + (1-momentum)*mu, "
    "moving_variance = momentum*moving_variance + (1-momentum)*var*n/(n-1) (the UNBIASED variance, n values "
    "per channel; Ioffe & Szegedy 2015, Alg. 2). evaluation: y = gamma*(x - moving_mean)/sqrt(moving_variance + eps) "
    "+ beta. momentum 0.9 is PyTorch's momentum=0.1 and Keras' momentum=0.9."
)


def _infer_dense(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    if len(shape) not in (1, 2):
        raise SpecError(
            f"{where}: dense expects a vector (features,) or a sequence (steps, features), got shape {shape}. "
            "Put a flatten or global pooling layer before it, or use a layer made for this input."
        )
    # On a sequence the one kernel applies at every step (PyTorch's Linear and Keras' Dense both act on the last axis).
    tensors = [TensorSpec("kernel", (shape[-1], p["units"]), "kernel")]
    if p["use_bias"]:
        tensors.append(TensorSpec("bias", (p["units"],), "bias", fan_in=shape[-1]))
    return (*shape[:-1], p["units"]), tuple(tensors)


def _infer_identity(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    return shapes[0], ()


def _infer_batch_norm(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    channels = (shape[-1],)
    return shape, (
        TensorSpec("gamma", channels, "gamma"),
        TensorSpec("beta", channels, "beta"),
        TensorSpec("moving_mean", channels, "moving_mean"),
        TensorSpec("moving_variance", channels, "moving_variance"),
    )


def _infer_layer_norm(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    return shape, (TensorSpec("gamma", (shape[-1],), "gamma"), TensorSpec("beta", (shape[-1],), "beta"))


def _infer_add(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    if len(set(shapes)) != 1:
        raise SpecError(
            f"{where}: add needs inputs of one shape, got {', '.join(map(str, shapes))}. "
            "Make the branches the same width (or use concatenate)."
        )
    return shapes[0], ()


def _infer_concatenate(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    first = shapes[0]
    if any(len(s) != len(first) or s[:-1] != first[:-1] for s in shapes):
        raise SpecError(
            f"{where}: concatenate joins inputs along the last (channel) axis, so every other axis must match; "
            f"got {', '.join(map(str, shapes))}. Flatten or pool the branches to one shape first."
        )
    return (*first[:-1], sum(s[-1] for s in shapes)), ()


LAYERS: dict[str, LayerDef] = {
    "dense": LayerDef(
        "dense",
        "y = activation(x @ kernel + bias); kernel (in, units), bias (units,); input a vector (in,), or a sequence "
        "(steps, in) with the one kernel applied at every step",
        {
            "units": Parameter("integer", None, "> 0"),
            "activation": Parameter("activation", "linear"),
            "use_bias": Parameter("bool", True),
        },
        _infer_dense,
        required=("units",),
    ),
    "dropout": LayerDef(
        "dropout",
        "inverted dropout: in training each element is zeroed with probability rate and the survivors "
        "are scaled by 1/(1-rate); identity at evaluation",
        {"rate": Parameter("number", None, "[0, 1)")},
        _infer_identity,
        required=("rate",),
    ),
    "activation": LayerDef(
        "activation",
        "y = activation(x), element-wise (softmax: over the last axis)",
        {"activation": Parameter("activation")},
        _infer_identity,
        required=("activation",),
    ),
    "batch_norm": LayerDef(
        "batch_norm",
        BATCH_NORM_DOC,
        {"momentum": Parameter("number", 0.9, "[0, 1)"), "eps": Parameter("number", 1e-5, "> 0")},
        _infer_batch_norm,
    ),
    "layer_norm": LayerDef(
        "layer_norm",
        "per sample over the last axis: y = gamma*(x - mean)/sqrt(var + eps) + beta (biased var)",
        {"eps": Parameter("number", 1e-5, "> 0")},
        _infer_layer_norm,
    ),
    "add": LayerDef("add", "element-wise sum of >= 2 inputs of one shape (graph form)", {}, _infer_add, arity=(2, 64)),
    "concatenate": LayerDef(
        "concatenate",
        "join >= 2 inputs along the last (channel) axis in `from` order (graph form)",
        {},
        _infer_concatenate,
        arity=(2, 64),
    ),
    **SPATIAL_LAYERS,
    **SEQUENCE_LAYERS,
}

__all__ = [
    "LAYERS",
    "ROLES",
    "LayerDef",
    "LayerPlan",
    "LayerSpec",
    "Shape",
    "TensorSpec",
    "fans",
    "infer_layer",
    "plan_layers",
    "resolve_layer",
]


def resolve_layer(raw: Any, where: str) -> LayerSpec:
    """Resolve `{dense: {units: 100, activation: relu}}` (or `{activation: relu}`, `{dropout: 0.5}`) to a LayerSpec.

    Every parameter becomes explicit: defaults filled, components resolved, int-or-list values
    (kernel_size, strides, ...) stored as tuples of the layer's spatial rank.

    Raises:
        SpecError: unknown kind or parameter (did-you-mean), a bad value, a missing required parameter.
    """
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SpecError(
            f"{where}: a layer is a mapping with exactly one key, the layer kind "
            f"(e.g. {{dense: {{units: 100, activation: relu}}}}), got {raw!r}."
        )
    ((kind, given),) = raw.items()
    if kind not in LAYERS:
        raise unknown_name("layer", kind, LAYERS, where)
    definition = LAYERS[kind]
    here = f"{where}.{kind}"
    if kind == "activation" and (isinstance(given, str) or (isinstance(given, Mapping) and "name" in given)):
        given = {"activation": given}  # shorthand: {activation: relu}
    if kind == "dropout" and isinstance(given, (int, float)) and not isinstance(given, bool):
        given = {"rate": given}  # shorthand: {dropout: 0.5}
    if given is None and not definition.required:
        given = {}  # {flatten: } or {flatten: null}
    if not isinstance(given, Mapping):
        raise SpecError(f"{here}: expected a mapping of parameters, got {given!r}.")
    components = definition.components
    params: dict[str, Any] = {}
    reject_unknown_keys(given, sorted(definition.params), here, f"layer {kind!r}")
    for key, value in given.items():
        if key in components and not (value is None and definition.params[key].default is None):
            params[key] = resolve_component(components[key], value, f"{here}.{key}")
        elif value is None and definition.params[key].default is None and key not in definition.required:
            params[key] = None  # an optional parameter left at its 'derive it' default
        else:
            params[key] = definition.params[key].check(value, f"{here}.{key}", definition.spatial_rank)
    for key in definition.required:
        if key not in params:
            raise SpecError(f"{here}: layer {kind!r} needs the parameter {key!r}.")
    for key, param in definition.params.items():
        if key in params:
            continue
        if key in components and param.default is not None:  # a None component: 'the suite's', decided later
            params[key] = resolve_component(components[key], param.default, here)
        elif param.default is not None and param.kind in ("ints", "padding"):
            params[key] = param.check(param.default, here, definition.spatial_rank)
        else:
            params[key] = param.default
    return LayerSpec(kind=kind, params=tuple(sorted(params.items())))


def infer_layer(
    index: int,
    layer: LayerSpec,
    input_shapes: tuple[Shape, ...],
    where: str,
    inputs: tuple[int, ...] = (),
    node: str = "",
) -> LayerPlan:
    """Place one layer: check its arity, infer its output shape and tensors.

    Raises:
        SpecError: naming `where`, the layer and the shapes.
    """
    definition = LAYERS[layer.kind]
    low, high = definition.arity
    if not low <= len(input_shapes) <= high:
        expected = f"exactly {low}" if low == high else f"{low} to {high}" if high < 64 else f"at least {low}"
        hint = " Merging layers exist only in the graph form (model: {graph: ...})." if low > 1 else ""
        raise SpecError(f"{where}: {layer.kind} takes {expected} input(s), got {len(input_shapes)}.{hint}")
    output_shape, tensors = definition.infer(tuple(input_shapes), dict(layer.params), where)
    return LayerPlan(
        index, layer, input_shapes[0], output_shape, tensors, inputs=inputs, input_shapes=tuple(input_shapes), node=node
    )


def plan_layers(layers: tuple[LayerSpec, ...], input_shape: Shape) -> tuple[LayerPlan, ...]:
    """Infer every layer's shapes and tensors in a plain stack; raise SpecError naming the layer on mismatch."""
    plans = []
    shape = tuple(input_shape)
    for index, layer in enumerate(layers):
        plan = infer_layer(index, layer, (shape,), f"model.layers[{index}] ({layer.kind})", inputs=(index - 1,))
        plans.append(plan)
        shape = plan.output_shape
    return tuple(plans)
