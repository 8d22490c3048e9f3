"""The torch network of a spec: modules, canonical weight keys, native-mode initialization.

The layer plans (harness.spec.layers) become an `nn.Sequential` (a plain stack with one
output) or a `Graph` (the graph form). Every canonical tensor - trainable weights and
batch_norm state - is reachable by its canonical key (harness.spec.init.weight_key, e.g.
'0.dense.kernel') through a TensorSlot that converts between the canonical layout and
torch's (harness.adapters.torch.realize). The model input arrives channels-last; layers
that run channels-first get a Permute in front, and the outputs leave channels-last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.adapters.common import complete_table, look_up
from harness.adapters.torch.layers import (
    ACTIVATION_MODULES,
    Graph,
    InvertedDropout,
    MultiInput,
    Permute,
    activation_module,
)
from harness.adapters.torch.realize import LAST, Context, TensorSlot, permutation, realize
from harness.spec.components import INITIALIZERS, Component
from harness.spec.graph import ModelOutput
from harness.spec.init import CONSTANTS
from harness.spec.layer_types import LayerPlan

__all__ = [
    "ACTIVATION_MODULES",
    "KERNEL_INITIALIZERS",
    "InvertedDropout",
    "Network",
    "TensorSlot",
    "activation_module",
    "build_network",
    "initialize_native",
    "load_weights",
    "read_weights",
]


@dataclass(frozen=True)
class Network:
    """The torch module plus the canonical view of its tensors (plan order) and its outputs."""

    module: nn.Sequential | Graph  # nn.Sequential for a plain stack, Graph otherwise
    slots: tuple[TensorSlot, ...]
    outputs: tuple[ModelOutput, ...]
    # Diagnostics (TorchModel.layer_outputs): for a stack, the count of Sequential children up to the
    # end of each plan's modules; per plan, the permutation bringing its output channels-last (None: none).
    plan_ends: tuple[int, ...] = ()
    to_last: tuple[tuple[int, ...] | None, ...] = ()

    @property
    def kernels(self) -> list[torch.Tensor]:
        """Tensors the l1/l2 penalties and decoupled weight decay touch (weight matrices)."""
        return [t for slot in self.slots if slot.spec.regularized for t in slot.trainable]

    @property
    def parameters(self) -> list[torch.Tensor]:
        """Every tensor the optimizer updates (batch_norm state and frozen zero biases excluded)."""
        return [t for slot in self.slots for t in slot.trainable]


def _convert(rank: int, have: str, need: str | None) -> tuple[int, ...] | None:
    """The permutation bringing a tensor of canonical `rank` from layout `have` to `need` (None: none needed)."""
    if need is None or rank < 2 or have == need:
        return None
    return permutation(rank, need)


def build_network(
    plans: tuple[LayerPlan, ...], dropout_generator: torch.Generator, outputs: Sequence[ModelOutput] | None = None
) -> Network:
    """Build the modules of a model's plans (float32, CPU; move with `.to(device)` afterwards).

    Args:
        plans: `spec.model.plan(input_shape)`.
        dropout_generator: the RNG of every dropout mask.
        outputs: `spec.model.outputs()`; default: one output, the last plan.

    Raises:
        BackendError: a layer kind this adapter does not realize.
    """
    outputs = tuple(outputs) if outputs is not None else (ModelOutput("output", len(plans) - 1),)
    layouts: dict[int, str] = {-1: LAST}
    ranks: dict[int, int] = {-1: len(plans[0].input_shapes[0])}
    nodes: list[list[nn.Module] | nn.Module] = []
    slots: list[TensorSlot] = []
    for plan in plans:
        realization = realize(plan, Context(tuple(layouts[s] for s in plan.inputs), dropout_generator))
        need = realization.layout_in if realization.layout_in is not None else layouts[plan.inputs[0]]
        conversions = [_convert(ranks[s], layouts[s], need) for s in plan.inputs]
        if len(plan.inputs) == 1:
            nodes.append(([Permute(conversions[0])] if conversions[0] else []) + realization.modules)
        else:
            (layer_module,) = realization.modules
            nodes.append(MultiInput(layer_module, conversions) if any(conversions) else layer_module)
        layouts[plan.index] = realization.layout_out if len(plan.output_shape) > 1 else LAST
        ranks[plan.index] = len(plan.output_shape)
        slots.extend(realization.slots)
    finals = {o.index: _convert(ranks[o.index], layouts[o.index], LAST) for o in outputs}
    to_last = tuple(_convert(ranks[plan.index], layouts[plan.index], LAST) for plan in plans)
    plan_ends: tuple[int, ...] = ()
    is_stack = all(plan.inputs == (plan.index - 1,) for plan in plans) and [o.index for o in outputs] == [
        len(plans) - 1
    ]
    if is_stack:
        stack = [node for node in nodes if isinstance(node, list)]  # all of them: each plan has one input
        modules = [m for node in stack for m in node]
        plan_ends = tuple(int(end) for end in np.cumsum([len(node) for node in stack]))
        last = finals[len(plans) - 1]
        module: nn.Sequential | Graph = nn.Sequential(*modules, *([Permute(last)] if last else []))
    else:
        graph_nodes = [nn.Sequential(*node) if isinstance(node, list) else node for node in nodes]
        index_of = {}
        for output in outputs:  # a channels-first output gets its own Permute node
            final = finals[output.index]
            if final and output.index not in index_of:
                graph_nodes.append(Permute(final))
                index_of[output.index] = len(graph_nodes) - 1
        sources = [plan.inputs for plan in plans] + [(index,) for index in index_of]
        module = Graph(graph_nodes, sources, [index_of.get(o.index, o.index) for o in outputs])
    return Network(module.to(torch.float32), tuple(slots), outputs, plan_ends, to_last)


def write_slot(slot: TensorSlot, array: np.ndarray) -> None:
    """Copy one canonical-layout array into the torch tensors behind a slot."""
    array = np.asarray(array, dtype=np.float32)
    if tuple(array.shape) != tuple(slot.spec.shape):
        raise ValueError(f"weight {slot.key!r}: expected canonical shape {slot.spec.shape}, got {array.shape}")
    with torch.no_grad():
        for tensor, converted in zip(slot.tensors, slot.to_torch(array)):
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(converted, dtype=np.float32)))


def load_weights(network: Network, weights: dict[str, np.ndarray]) -> None:
    """Copy canonical-layout arrays (weights and batch_norm state) into the network.

    Raises:
        ValueError: the keys or shapes do not match the network (names the offending keys).
    """
    expected = {slot.key for slot in network.slots}
    if set(weights) != expected:
        raise ValueError(
            f"weights do not match the model: missing {sorted(expected - set(weights))}, "
            f"unexpected {sorted(set(weights) - expected)}"
        )
    for slot in network.slots:
        write_slot(slot, weights[slot.key])


def read_weights(network: Network) -> dict[str, np.ndarray]:
    """Every canonical tensor (weights and batch_norm state) as a float32 array in canonical layout (copies)."""
    weights = {}
    for slot in network.slots:
        array = slot.to_canonical([tensor.detach().cpu().numpy() for tensor in slot.tensors])
        weights[slot.key] = np.array(array, dtype=np.float32, order="C")
    return weights


# Native mode: torch.nn.init configured to each canonical formula. Every function receives a
# torch tensor whose shape is the canonical shape REVERSED ((out, in) for a dense kernel, (out,
# in, k) for a conv1d kernel): torch's fan rule on it (fan_in = size(1) * receptive field) equals
# the canonical one. All normals here are plain (torch's normal_, kaiming_normal_, xavier_normal_
# never truncate).
KernelInit = Callable[[torch.Tensor, Component, torch.Generator], object]
KERNEL_INITIALIZERS: dict[str, KernelInit] = complete_table(
    {
        "zeros": lambda weight, c, generator: nn.init.zeros_(weight),
        "normal": lambda weight, c, generator: nn.init.normal_(weight, 0.0, c["std"], generator=generator),
        "uniform": lambda weight, c, generator: nn.init.uniform_(weight, -c["limit"], c["limit"], generator=generator),
        # a = gain*sqrt(6/(fan_in+fan_out))
        "xavier_uniform": lambda weight, c, generator: nn.init.xavier_uniform_(
            weight, gain=c["gain"], generator=generator
        ),
        # std = gain*sqrt(2/(fan_in+fan_out))
        "xavier_normal": lambda weight, c, generator: nn.init.xavier_normal_(
            weight, gain=c["gain"], generator=generator
        ),
        # std = gain('relu')/sqrt(fan_in) = sqrt(2/fan_in)
        "he_normal": lambda weight, c, generator: nn.init.kaiming_normal_(
            weight, mode="fan_in", nonlinearity="relu", generator=generator
        ),
        # bound = gain('relu')*sqrt(3/fan_in) = sqrt(6/fan_in)
        "he_uniform": lambda weight, c, generator: nn.init.kaiming_uniform_(
            weight, mode="fan_in", nonlinearity="relu", generator=generator
        ),
        # std = gain('linear')/sqrt(fan_in) = sqrt(1/fan_in)
        "lecun_normal": lambda weight, c, generator: nn.init.kaiming_normal_(
            weight, mode="fan_in", nonlinearity="linear", generator=generator
        ),
        # QR of a N(0,1) matrix, sign-corrected by diag(R); orthonormal along the smaller dimension
        "orthogonal": lambda weight, c, generator: nn.init.orthogonal_(weight, gain=c["gain"], generator=generator),
        # U(+-1/sqrt(fan_in)): written out rather than kaiming_uniform_(a=sqrt(5)), which equals it
        "fan_in_uniform": lambda weight, c, generator: nn.init.uniform_(
            weight,
            -1.0 / np.sqrt(math.prod(weight.shape[1:])),
            1.0 / np.sqrt(math.prod(weight.shape[1:])),
            generator=generator,
        ),
    },
    INITIALIZERS,
    "torch",
    "initializer",
)
NATIVE_FIX = "Use init_mode 'shared' instead."


def _native_tensor(slot: TensorSlot, initializer: Component, generator: torch.Generator) -> np.ndarray:
    spec = slot.spec
    if spec.role in CONSTANTS:
        return np.full(spec.shape, CONSTANTS[spec.role], dtype=np.float32)
    if spec.role == "bias":
        array = torch.zeros(spec.shape)
        if initializer.name == "fan_in_uniform":
            bound = 1.0 / np.sqrt(spec.fan_in or 1)
            nn.init.uniform_(array, -bound, bound, generator=generator)
        return array.numpy()
    component = spec.initializer or initializer  # a tensor's own (recurrent layers, embeddings), else the suite's
    draw = look_up(
        KERNEL_INITIALIZERS, component.name, "torch", "initializer", f"initializer (tensor {slot.key})", NATIVE_FIX
    )
    reversed_shape = torch.empty(tuple(reversed(spec.shape)))  # torch's fan rule reads this layout
    draw(reversed_shape, component, generator)
    return np.transpose(reversed_shape.numpy())


def initialize_native(network: Network, initializer: Component, generator: torch.Generator) -> None:
    """Draw every tensor with torch's own initializers, configured to the canonical meaning.

    Kernels follow their layer's initializer where it names one (recurrent layers, embeddings), else the suite's;
    biases are zero, except under fan_in_uniform, which draws them U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    gamma and moving_variance start at 1, beta and moving_mean at 0. Tensors are drawn in plan order.

    Raises:
        BackendError: an initializer this adapter does not realize.
    """
    look_up(KERNEL_INITIALIZERS, initializer.name, "torch", "initializer", fix=NATIVE_FIX)
    with torch.no_grad():
        for slot in network.slots:
            write_slot(slot, _native_tensor(slot, initializer, generator))
