"""The types every layer definition shares: tensors, resolved layers, placed layers, parameters.

Canonical conventions (every adapter converts to its own):
    tensors     CHANNELS-LAST and without the batch axis: a vector (features,), a sequence
                (length, channels), an image (height, width, channels).
    kernels     (..., fan_in axis, fan_out axis): dense (in, out) so that y = x @ kernel + bias,
                conv (k..., in, out). fan_in = in*receptive, fan_out = out*receptive with
                receptive = prod(shape[:-2]) (the rule both frameworks use).

Tensor roles decide how a tensor is drawn in shared init, whether it trains, and whether the
l1/l2 penalties and decoupled weight decay touch it (harness.spec.init draws them):

    role              initial value                                    trains  regularized
    kernel            the suite's initializer                          yes     yes
    recurrent_kernel  the layer's recurrent_initializer (orthogonal)   yes     yes
    embedding         the layer's initializer (uniform +-0.05)         yes     yes
    bias              0; under fan_in_uniform U(+-1/sqrt(fan_in))      yes     no
    gamma             1                                                yes     no
    beta              0                                                yes     no
    moving_mean       0   (batch_norm state, updated in training mode) no      no
    moving_variance   1   (batch_norm state, updated in training mode) no      no
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError
from harness.spec.components import Component, check_number

Shape = tuple[int, ...]

ROLES = ("kernel", "recurrent_kernel", "embedding", "bias", "gamma", "beta", "moving_mean", "moving_variance")
STATE_ROLES = ("moving_mean", "moving_variance")  # non-trainable state: carried by get/set_weights, never by the optimizer
REGULARIZED_ROLES = ("kernel", "recurrent_kernel", "embedding")  # weight matrices; vectors and state never


@dataclass(frozen=True)
class TensorSpec:
    """One tensor a layer owns, in canonical layout.

    `initializer` overrides the suite's initializer for this tensor (a recurrent layer's kernel and
    recurrent kernel, embeddings);
    `fan_in` is the fan a bias is drawn with under fan_in_uniform (U(+-1/sqrt(fan_in))).
    """

    name: str  # e.g. 'kernel', 'bias', 'forward_recurrent_kernel', 'query_kernel', 'moving_mean'
    shape: Shape
    role: str  # one of ROLES
    initializer: Component | None = None
    fan_in: int | None = None

    @property
    def trainable(self) -> bool:
        """False for batch_norm's running statistics (state updated by the forward pass)."""
        return self.role not in STATE_ROLES

    @property
    def regularized(self) -> bool:
        """True for weight matrices: l1/l2 penalties and decoupled weight decay touch them."""
        return self.role in REGULARIZED_ROLES


def _freeze(value: Any) -> Any:
    """Lists (from JSON or YAML) become tuples so a LayerSpec is hashable and compares equal after a round trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Component):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class LayerSpec:
    """One resolved layer: kind plus every parameter explicit (components as Components, lists as tuples)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: {key: _thaw(value) for key, value in self.params}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSpec:
        ((kind, params),) = data.items()
        components = COMPONENT_PARAMS.get(kind, {})
        resolved = {
            key: (Component.from_dict(value) if key in components and isinstance(value, Mapping) else _freeze(value))
            for key, value in params.items()
        }
        return cls(kind=kind, params=tuple(sorted(resolved.items())))


@dataclass(frozen=True)
class LayerPlan:
    """A layer placed in a model: index, input and output shapes, owned tensors, and wiring.

    `inputs` holds the plan indices this layer reads, in order; -1 is the model input. A plain
    stack reads (index - 1,). `input_shapes` holds one shape per input; `input_shape` is the first.
    `node` is the graph node's name ('' in a plain stack).
    """

    index: int
    layer: LayerSpec
    input_shape: Shape
    output_shape: Shape
    tensors: tuple[TensorSpec, ...]
    inputs: tuple[int, ...] = ()
    input_shapes: tuple[Shape, ...] = ()
    node: str = ""

    def __post_init__(self) -> None:
        if not self.inputs:
            object.__setattr__(self, "inputs", (self.index - 1,))
        if not self.input_shapes:
            object.__setattr__(self, "input_shapes", (self.input_shape,))

    @property
    def name(self) -> str:
        """'<index>.<kind>', e.g. '0.dense': the prefix of every canonical weight key of this layer."""
        return f"{self.index}.{self.layer.kind}"


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel in canonical layout (..., in, out)."""
    if len(shape) < 2:
        raise ValueError(f"fans need a kernel of rank >= 2, got shape {shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


# --- parameters ------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerParam:
    """One parameter of a layer kind: default and check.

    check: a numeric check of harness.spec.components.check_number (positive, int_positive, unit, ...),
    or 'bool', 'choice' (one of `choices`), 'ints' (a positive int or a list of `rank` positive ints,
    stored as a tuple of `rank`), 'padding' ('valid' | 'same' | int | list of ints >= 0, stored as a
    tuple), 'optional_int' (null or a positive int), 'shape' (a list of positive ints, one may be -1),
    'activation' / 'initializer' (a component name or mapping, stored as a Component).
    """

    default: Any
    check: str = "any"
    choices: tuple[str, ...] = ()


InferFn = Callable[[tuple[Shape, ...], Mapping[str, Any], str], tuple[Shape, tuple[TensorSpec, ...]]]


@dataclass(frozen=True)
class LayerDef:
    """A canonical layer kind: its parameters, meaning (doc), shape inference and arity.

    `infer(input_shapes, params, where)` returns the output shape and the tensors, or raises
    SpecError naming `where` and the shapes. `spatial_rank` is 1 or 2 for conv/pool kinds
    (the length of kernel_size & co.), else 0. `arity` is (min, max) inputs; only graph nodes
    may have more than one.
    """

    name: str
    doc: str
    params: Mapping[str, LayerParam]
    infer: InferFn
    required: tuple[str, ...] = ()
    spatial_rank: int = 0
    arity: tuple[int, int] = (1, 1)


# Parameters whose value is a Component, per layer kind: {parameter: component kind}.
COMPONENT_PARAMS: dict[str, dict[str, str]] = {}


def component_params(kind: str, mapping: Mapping[str, str]) -> None:
    """Register which parameters of a layer kind hold components (used by resolve and from_dict)."""
    COMPONENT_PARAMS[kind] = dict(mapping)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: expected an integer > 0, got {value!r}.")
    return value


def check_layer_param(value: Any, param: LayerParam, rank: int, where: str) -> Any:
    """Validate and normalize one layer parameter value (see LayerParam.check).

    Raises:
        SpecError: naming `where`, the value received and what is expected.
    """
    check = param.check
    if check == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}.")
        return value
    if check == "choice":
        if value not in param.choices:
            raise SpecError(f"{where}: expected one of {', '.join(map(repr, param.choices))}, got {value!r}.")
        return value
    if check == "optional_int":
        return None if value is None else _positive_int(value, where)
    if check == "ints":
        values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(values, (list, tuple)) or len(values) != rank:
            raise SpecError(f"{where}: expected a positive integer or a list of {rank} positive integers, got {value!r}.")
        return tuple(_positive_int(item, where) for item in values)
    if check == "padding":
        if value in ("valid", "same"):
            return value
        values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(values, (list, tuple)) or len(values) != rank
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values)
        ):
            raise SpecError(
                f"{where}: expected 'valid', 'same', an integer >= 0 (zeros on both sides) or a list of {rank} "
                f"such integers, got {value!r}."
            )
        return tuple(values)
    if check == "shape":
        if not isinstance(value, (list, tuple)) or not value:
            raise SpecError(f"{where}: expected a non-empty list of dimensions such as [8, 8, 1], got {value!r}.")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or (item < 1 and item != -1):
                raise SpecError(f"{where}: every dimension must be a positive integer (or one -1), got {value!r}.")
        if list(value).count(-1) > 1:
            raise SpecError(f"{where}: at most one dimension may be -1 (inferred), got {value!r}.")
        return tuple(value)
    return check_number(value, check, where)
