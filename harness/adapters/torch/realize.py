"""Each canonical layer as torch modules, the layout they run in, and canonical<->torch tensor slots.

A `Realization` says which modules compute a placed layer (LayerPlan), which layout its
inputs must be in ('last' = canonical channels-last, 'first' = torch's channels-first, None =
whatever they are), which layout its output is in, and where each canonical tensor lives.

Canonical -> torch tensor conversions (TensorSlot.to_torch; to_canonical is the inverse):
    dense kernel (in, out)               -> Linear.weight (out, in)                      transpose
    conv kernel (k..., in, out)          -> weight (out, in, k...)                        axes moved
    rnn kernel (C, G*h), recurrent (h, G*h) -> weight_ih (G*h, C), weight_hh (G*h, h)     transpose, gate blocks
                                            reordered to torch's order (gru: canonical z, r, n -> torch r, z, n;
                                            lstm i, f, c, o = torch i, f, g, o)
    simple_rnn / lstm bias (G*h,)        -> bias_ih (reordered), bias_hh held at 0 and frozen
    gru bias (2, 3h)                     -> bias_ih = row 0, bias_hh = row 1 (each reordered)
    batch_norm gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean, running_var
    everything else                      -> a torch tensor of the canonical shape        identity
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness.adapters.common import look_up, realizer_table
from harness.adapters.torch.layers import (
    Add,
    BatchNorm,
    Concatenate,
    Convolution,
    Embedding,
    GlobalPool,
    InvertedDropout,
    LayerNorm,
    MultiHeadAttention,
    Pool,
    PositionEmbedding,
    Recurrent,
    Reshape,
    TransformerEncoder,
    activation_module,
)
from harness.spec.init import weight_key
from harness.spec.layer_types import LayerPlan, TensorSpec
from harness.spec.layers_sequence import GATES, attention_widths, transformer_key_dim
from harness.spec.layers_spatial import axis_paddings

LAST, FIRST = "last", "first"
# torch's gate order as canonical gate indices: gru canonical (z, r, n) -> torch (r, z, n)
TORCH_GATE_ORDER = {"simple_rnn": (0,), "lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}


def permutation(rank: int, layout: str) -> tuple[int, ...]:
    """Axes permutation of a (N, *canonical-rank axes) tensor INTO `layout` from the other layout."""
    if layout == FIRST:
        return (0, rank, *range(1, rank))  # (N, ..., C) -> (N, C, ...)
    return (0, *range(2, rank + 1), 1)  # (N, C, ...) -> (N, ..., C)


@dataclass(frozen=True)
class TensorSlot:
    """Where one canonical tensor lives in torch, and how to convert it both ways."""

    key: str  # canonical key, e.g. '0.dense.kernel'
    spec: TensorSpec
    tensors: tuple[torch.Tensor, ...]  # the torch parameters/buffers backing it
    to_torch: Callable[[np.ndarray], tuple[np.ndarray, ...]]
    to_canonical: Callable[[list[np.ndarray]], np.ndarray]

    @property
    def trainable(self) -> list[torch.Tensor]:
        """The backing tensors the optimizer updates (a frozen zero bias_hh is not one)."""
        return (
            [t for t in self.tensors if isinstance(t, nn.Parameter) and t.requires_grad] if self.spec.trainable else []
        )


def _identity(key: str, spec: TensorSpec, tensor: torch.Tensor) -> TensorSlot:
    return TensorSlot(key, spec, (tensor,), lambda a: (a,), lambda arrays: arrays[0])


def _transposed(key: str, spec: TensorSpec, tensor: torch.Tensor) -> TensorSlot:
    return TensorSlot(key, spec, (tensor,), lambda a: (a.T,), lambda arrays: arrays[0].T)


def _conv_kernel(key: str, spec: TensorSpec, tensor: torch.Tensor) -> TensorSlot:
    rank = len(spec.shape)
    axes = (rank - 1, rank - 2, *range(rank - 2))  # (k..., in, out) -> (out, in, k...)
    inverse = tuple(int(i) for i in np.argsort(axes))
    return TensorSlot(
        key, spec, (tensor,), lambda a: (np.transpose(a, axes),), lambda arrays: np.transpose(arrays[0], inverse)
    )


def _gate_matrix(key: str, spec: TensorSpec, tensor: torch.Tensor, order: tuple[int, ...]) -> TensorSlot:
    gates = len(order)
    inverse = tuple(int(i) for i in np.argsort(order))

    def to_torch(a: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = a.T  # (G*h, in), canonical gate order
        return (rows.reshape(gates, -1, rows.shape[1])[list(order)].reshape(rows.shape),)

    def to_canonical(arrays: list[np.ndarray]) -> np.ndarray:
        rows = arrays[0]
        return rows.reshape(gates, -1, rows.shape[1])[list(inverse)].reshape(rows.shape).T

    return TensorSlot(key, spec, (tensor,), to_torch, to_canonical)


def _reorder(vector: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    return vector.reshape(len(order), -1)[list(order)].reshape(-1)


def _gate_bias(key: str, spec: TensorSpec, bias_ih: torch.Tensor, bias_hh: torch.Tensor, kind: str) -> TensorSlot:
    order = TORCH_GATE_ORDER[kind]
    inverse = tuple(int(i) for i in np.argsort(order))
    if kind == "gru":  # (2, 3h): input bias, recurrent bias
        return TensorSlot(
            key,
            spec,
            (bias_ih, bias_hh),
            lambda a: (_reorder(a[0], order), _reorder(a[1], order)),
            lambda arrays: np.stack([_reorder(arrays[0], inverse), _reorder(arrays[1], inverse)]),
        )
    return TensorSlot(  # one canonical bias: bias_ih carries it, bias_hh stays 0
        key,
        spec,
        (bias_ih, bias_hh),
        lambda a: (_reorder(a, order), np.zeros_like(a)),
        lambda arrays: _reorder(arrays[0] + arrays[1], inverse),
    )


@dataclass
class Realization:
    """The modules of one placed layer, its layouts and its tensor slots."""

    modules: list[nn.Module]
    layout_in: str | None  # layout every input (of rank >= 2) must be in; None: as they come (merges: the first's)
    layout_out: str
    slots: list[TensorSlot] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What a realization may need besides the plan: the layouts its inputs arrive in, the dropout RNG."""

    layouts: tuple[str, ...]
    generator: torch.Generator


def _slots_by_name(plan: LayerPlan, make: dict[str, Callable[[str, TensorSpec], TensorSlot]]) -> list[TensorSlot]:
    return [make[t.name](weight_key(plan, t), t) for t in plan.tensors]


def _module_slots(plan: LayerPlan, owner: nn.Module, names: dict[str, str] | None = None) -> list[TensorSlot]:
    """Identity slots for modules holding canonical-layout tensors as attributes (attribute = tensor name)."""
    names = names or {}
    return [_identity(weight_key(plan, t), t, owner.get_parameter(names.get(t.name, t.name))) for t in plan.tensors]


def _rank(plan: LayerPlan) -> int:
    return len(plan.input_shape)


def dense(plan: LayerPlan, context: Context) -> Realization:
    p = plan.layer
    linear = nn.Linear(plan.input_shape[-1], p["units"], bias=p["use_bias"])
    makers = {
        "kernel": lambda k, t: _transposed(k, t, linear.weight),
        "bias": lambda k, t: _identity(k, t, linear.bias),
    }
    modules = [m for m in (linear, activation_module(p["activation"])) if m is not None]
    # Linear acts on the last axis: a sequence (steps, features) must arrive channels-last.
    return Realization(modules, LAST if len(plan.input_shape) > 1 else None, LAST, _slots_by_name(plan, makers))


def activation(plan: LayerPlan, context: Context) -> Realization:
    layout = context.layouts[0]
    module = activation_module(plan.layer["activation"], 1 if layout == FIRST else -1)
    return Realization([module] if module is not None else [], None, layout)


def dropout(plan: LayerPlan, context: Context) -> Realization:
    rate = plan.layer["rate"]
    return Realization([InvertedDropout(rate, context.generator)] if rate > 0 else [], None, context.layouts[0])


def convolution(plan: LayerPlan, context: Context) -> Realization:
    p = plan.layer
    rank = _rank(plan) - 1
    paddings = axis_paddings(plan.input_shape, p["kernel_size"], p["strides"], p["dilation"], p["padding"])
    conv = Convolution(
        rank, plan.input_shape[-1], p["filters"], p["kernel_size"], p["strides"], p["dilation"], paddings, p["use_bias"]
    )
    makers = {"kernel": lambda k, t: _conv_kernel(k, t, conv.weight)}
    if conv.bias is not None:  # the spec declares a bias tensor only with use_bias
        bias = conv.bias
        makers["bias"] = lambda k, t: _identity(k, t, bias)
    modules = [m for m in (conv, activation_module(p["activation"], 1)) if m is not None]
    return Realization(modules, FIRST, FIRST, _slots_by_name(plan, makers))


def pool(plan: LayerPlan, context: Context) -> Realization:
    p = plan.layer
    rank = _rank(plan) - 1
    strides = p["strides"] if p["strides"] is not None else p["pool_size"]
    paddings = axis_paddings(plan.input_shape, p["pool_size"], strides, (1,) * rank, p["padding"])
    mode = plan.layer.kind.split("_")[0]
    return Realization([Pool(mode, rank, p["pool_size"], strides, paddings, plan.input_shape[:-1])], FIRST, FIRST)


def global_pool(plan: LayerPlan, context: Context) -> Realization:
    rank = _rank(plan)
    dims = tuple(range(2, rank + 1)) if context.layouts[0] == FIRST else tuple(range(1, rank))
    return Realization([GlobalPool("avg" if plan.layer.kind == "global_avg_pool" else "max", dims)], None, LAST)


def flatten(plan: LayerPlan, context: Context) -> Realization:
    return Realization([Reshape(())] if _rank(plan) > 1 else [], LAST, LAST)


def reshape(plan: LayerPlan, context: Context) -> Realization:
    return Realization([Reshape(plan.output_shape)], LAST, LAST)


def batch_norm(plan: LayerPlan, context: Context) -> Realization:
    module = BatchNorm(plan.input_shape[-1], plan.layer["momentum"], plan.layer["eps"])
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    slots = [_identity(weight_key(plan, t), t, getattr(module, names[t.name])) for t in plan.tensors]
    return Realization([module], FIRST if _rank(plan) > 1 else None, FIRST if _rank(plan) > 1 else LAST, slots)


def layer_norm(plan: LayerPlan, context: Context) -> Realization:
    module = LayerNorm(plan.input_shape[-1], plan.layer["eps"])
    return Realization([module], LAST, LAST, _module_slots(plan, module, {"gamma": "weight", "beta": "bias"}))


def recurrent(plan: LayerPlan, context: Context) -> Realization:
    p, kind = plan.layer, plan.layer.kind
    module = Recurrent(kind, plan.input_shape[-1], p["units"], p["bidirectional"], p["return_sequences"])
    rnn, order = module.rnn, TORCH_GATE_ORDER[kind]
    slots = []
    for direction, suffix in (("forward_", ""), ("backward_", "_reverse")) if p["bidirectional"] else (("", ""),):
        tensors = {t.name[len(direction) :]: t for t in plan.tensors if t.name.startswith(direction)}
        slots += [
            _gate_matrix(
                weight_key(plan, tensors["kernel"]), tensors["kernel"], getattr(rnn, f"weight_ih_l0{suffix}"), order
            ),
            _gate_matrix(
                weight_key(plan, tensors["recurrent_kernel"]),
                tensors["recurrent_kernel"],
                getattr(rnn, f"weight_hh_l0{suffix}"),
                order,
            ),
            _gate_bias(
                weight_key(plan, tensors["bias"]),
                tensors["bias"],
                getattr(rnn, f"bias_ih_l0{suffix}"),
                getattr(rnn, f"bias_hh_l0{suffix}"),
                kind,
            ),
        ]
    assert len(slots) == len(plan.tensors) and GATES[kind] == len(order)
    return Realization([module], LAST, LAST, slots)


def embedding(plan: LayerPlan, context: Context) -> Realization:
    module = Embedding(plan.layer["vocabulary"], plan.layer["dim"])
    return Realization([module], LAST, LAST, _module_slots(plan, module, {"embeddings": "weight"}))


def position_embedding(plan: LayerPlan, context: Context) -> Realization:
    module = PositionEmbedding(plan.input_shape)
    return Realization([module], LAST, LAST, _module_slots(plan, module, {"embeddings": "weight"}))


def attention(plan: LayerPlan, context: Context) -> Realization:
    p = plan.layer
    query, context_shape = plan.input_shapes[0], plan.input_shapes[-1]
    value_dim, output_dim = attention_widths(query[1], p)
    module = MultiHeadAttention(
        query[1], context_shape[1], p["heads"], p["key_dim"], value_dim, output_dim, p["use_bias"], p["causal"]
    )
    return Realization([module], LAST, LAST, _module_slots(plan, module))


def transformer(plan: LayerPlan, context: Context) -> Realization:
    p = plan.layer
    width = plan.input_shape[1]
    module = TransformerEncoder(
        width,
        p["heads"],
        transformer_key_dim(width, p, plan.name),
        p["ffn_units"],
        p["activation"],
        p["dropout"],
        p["norm"],
        p["eps"],
        context.generator,
    )
    names = {
        f"{n}_{part}": f"attention.{n}_{part}"
        for n in ("query", "key", "value", "output")
        for part in ("kernel", "bias")
    }
    names.update(
        {
            f"norm{i}_{g}": f"norm{i}.{attribute}"
            for i in (1, 2)
            for g, attribute in (("gamma", "weight"), ("beta", "bias"))
        }
    )
    return Realization([module], LAST, LAST, _module_slots(plan, module, names))


def add(plan: LayerPlan, context: Context) -> Realization:
    return Realization([Add()], None, context.layouts[0])


def concatenate(plan: LayerPlan, context: Context) -> Realization:
    layout = context.layouts[0]
    dim = 1 if layout == FIRST and _rank(plan) > 1 else -1
    return Realization([Concatenate(dim)], None, layout)


Realizer = Callable[[LayerPlan, Context], Realization]
# layer kind -> realizer: the function above named after the kind's family (harness.adapters.common.REALIZER_FAMILIES)
REALIZERS: dict[str, Realizer] = realizer_table(globals(), "torch")


def realize(plan: LayerPlan, context: Context) -> Realization:
    """The torch realization of one placed layer.

    Raises:
        BackendError: a layer kind this adapter does not realize.
    """
    return look_up(REALIZERS, plan.layer.kind, "torch", "layer", f"model layer {plan.name}")(plan, context)
