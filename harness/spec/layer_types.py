"""The types every layer definition shares: tensors, resolved layers, placed layers.

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

from harness.spec.components import Component
from harness.spec.params import Parameter

Shape = tuple[int, ...]

ROLES = ("kernel", "recurrent_kernel", "embedding", "bias", "gamma", "beta", "moving_mean", "moving_variance")
STATE_ROLES = (
    "moving_mean",
    "moving_variance",
)  # non-trainable state: carried by get/set_weights, never by the optimizer
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
        # Only a component (activation, initializer) is stored as a mapping; every other value is a scalar or a list.
        resolved = {
            key: (Component.from_dict(value) if isinstance(value, Mapping) else _freeze(value))
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


# --- layer kinds -------------------------------------------------------------------------

COMPONENT_KINDS = ("activation", "initializer")  # Parameter kinds resolved by harness.spec.components.resolve_component
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
    params: Mapping[str, Parameter]
    infer: InferFn
    required: tuple[str, ...] = ()
    spatial_rank: int = 0
    arity: tuple[int, int] = (1, 1)

    @property
    def components(self) -> dict[str, str]:
        """{parameter: component kind} of the parameters whose value is a component (activation, initializer)."""
        return {key: param.kind for key, param in self.params.items() if param.kind in COMPONENT_KINDS}
