"""Canonical layers: parameters, shape inference, and the tensors each layer owns.

Canonical weight layout (adapters convert to their own):
    dense kernel  (fan_in, fan_out) so that y = x @ kernel + bias   (Keras' layout;
                  PyTorch's Linear.weight is its transpose)
    bias          (units,)
Fan-in/fan-out of a kernel of shape (..., in, out): receptive = prod(shape[:-2]),
fan_in = in*receptive, fan_out = out*receptive (same rule as both frameworks use).

Shapes exclude the batch axis: an MNIST-1D vector input is (40,).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError, did_you_mean, unknown_name
from harness.spec.components import Component, Param, check_number, resolve_component

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorSpec:
    """One trainable tensor of a layer, in canonical layout."""

    name: str  # 'kernel' or 'bias'
    shape: Shape
    role: str  # 'kernel': drawn by the initializer, touched by l1/l2/weight decay; 'bias': zeros, untouched


@dataclass(frozen=True)
class LayerSpec:
    """One resolved layer: kind plus every parameter explicit (activations as Components)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            self.kind: {k: (v.to_dict() if isinstance(v, Component) else v) for k, v in self.params}
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSpec:
        ((kind, params),) = data.items()
        resolved = {
            k: (Component.from_dict(v) if k in _COMPONENT_PARAMS.get(kind, ()) else v) for k, v in params.items()
        }
        return cls(kind=kind, params=tuple(sorted(resolved.items())))


@dataclass(frozen=True)
class LayerPlan:
    """A layer placed in a model: index, input and output shapes, owned tensors."""

    index: int
    layer: LayerSpec
    input_shape: Shape
    output_shape: Shape
    tensors: tuple[TensorSpec, ...]

    @property
    def name(self) -> str:
        return f"{self.index}.{self.layer.kind}"


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel in canonical layout (..., in, out)."""
    if len(shape) < 2:
        raise ValueError(f"fans need a kernel of rank >= 2, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


# --- layer definitions -----------------------------------------------------------------

InferFn = Callable[[Shape, Mapping[str, Any], str], tuple[Shape, tuple[TensorSpec, ...]]]


@dataclass(frozen=True)
class LayerDef:
    name: str
    doc: str
    params: Mapping[str, Param]
    infer: InferFn
    required: tuple[str, ...] = ()


def _infer_dense(shape: Shape, p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    if len(shape) != 1:
        raise SpecError(
            f"{where}: dense expects a vector input (features,), got shape {shape}. "
            "Put a flatten layer before it, or use a layer made for this input."
        )
    tensors = [TensorSpec("kernel", (shape[0], p["units"]), "kernel")]
    if p["use_bias"]:
        tensors.append(TensorSpec("bias", (p["units"],), "bias"))
    return (p["units"],), tuple(tensors)


def _infer_identity(shape: Shape, p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    return shape, ()


LAYERS: dict[str, LayerDef] = {
    "dense": LayerDef(
        "dense",
        "y = activation(x @ kernel + bias); kernel (in, units), bias (units,)",
        {"units": Param(None, "int_positive"), "activation": Param("linear"), "use_bias": Param(True)},
        _infer_dense,
        required=("units",),
    ),
    "dropout": LayerDef(
        "dropout",
        "inverted dropout: in training each element is zeroed with probability rate and the survivors "
        "are scaled by 1/(1-rate); identity at evaluation",
        {"rate": Param(None, "unit")},
        _infer_identity,
        required=("rate",),
    ),
    "activation": LayerDef(
        "activation", "y = activation(x), element-wise (softmax: over the last axis)", {"activation": Param(None)},
        _infer_identity, required=("activation",),
    ),
}

# Parameters whose value is an activation Component, per layer kind.
_COMPONENT_PARAMS: dict[str, tuple[str, ...]] = {"dense": ("activation",), "activation": ("activation",)}


def resolve_layer(raw: Any, where: str) -> LayerSpec:
    """Resolve `{dense: {units: 100, activation: relu}}` (or `{activation: relu}`) to a LayerSpec."""
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
    if not isinstance(given, Mapping):
        raise SpecError(f"{here}: expected a mapping of parameters, got {given!r}.")
    params: dict[str, Any] = {}
    for key, value in given.items():
        if key not in definition.params:
            raise SpecError(
                f"{here}.{key}: layer {kind!r} has no parameter {key!r}.{did_you_mean(key, definition.params)} "
                f"Its parameters: {', '.join(sorted(definition.params))}."
            )
        if key in _COMPONENT_PARAMS.get(kind, ()):
            params[key] = resolve_component("activation", value, f"{here}.{key}")
        elif key == "use_bias":
            if not isinstance(value, bool):
                raise SpecError(f"{here}.{key}: expected true or false, got {value!r}.")
            params[key] = value
        else:
            params[key] = check_number(value, definition.params[key].check, f"{here}.{key}")
    for key in definition.required:
        if key not in params:
            raise SpecError(f"{here}: layer {kind!r} needs the parameter {key!r}.")
    for key, param in definition.params.items():
        if key not in params:
            default = param.default
            params[key] = resolve_component("activation", default, here) if key in _COMPONENT_PARAMS.get(kind, ()) else default
    return LayerSpec(kind=kind, params=tuple(sorted(params.items())))


def plan_layers(layers: tuple[LayerSpec, ...], input_shape: Shape) -> tuple[LayerPlan, ...]:
    """Infer every layer's shapes and tensors; raise SpecError naming the layer on mismatch."""
    plans = []
    shape = tuple(input_shape)
    for index, layer in enumerate(layers):
        where = f"model.layers[{index}] ({layer.kind})"
        output_shape, tensors = LAYERS[layer.kind].infer(shape, dict(layer.params), where)
        plans.append(LayerPlan(index, layer, shape, output_shape, tensors))
        shape = output_shape
    return tuple(plans)
