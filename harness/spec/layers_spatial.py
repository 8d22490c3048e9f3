"""Canonical convolution, pooling and shape layers (channels-last), with their padding rule.

Convolution (conv1d over (length, channels), conv2d over (height, width, channels)) is a
cross-correlation, as in both frameworks:
    y[o, f] = activation(bias[f] + sum_{j, c} x_padded[o*stride + j*dilation, c] * kernel[j, c, f])
with j running over the kernel window (one index per spatial axis), kernel (k..., in, filters).

Padding, per spatial axis of length L, kernel k, stride s, dilation d (span = (k-1)*d + 1):
    'valid'  no padding; output floor((L - span)/s) + 1
    int p    p zeros before and after; output floor((L + 2p - span)/s) + 1  (PyTorch's Conv padding=p)
    'same'   TensorFlow's rule: total = max((ceil(L/s) - 1)*s + span - L, 0) zeros,
             before = total // 2, after = total - before (the extra zero goes at the END);
             output ceil(L/s)
A stride > 1 together with a dilation > 1 is refused (TensorFlow's convolution refuses it).

Pooling windows use the same rule with dilation 1 (strides default to pool_size). Max pooling
never picks a padded cell; average pooling divides by the number of REAL cells in the window
(padded cells are excluded from the count, TensorFlow's 'SAME' average).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError
from harness.spec.layer_types import LayerDef, Shape, TensorSpec
from harness.spec.params import Parameter

RANK_NAMES = {1: "(length, channels)", 2: "(height, width, channels)"}


def padding_amounts(length: int, kernel: int, stride: int, dilation: int, padding: Any) -> tuple[int, int]:
    """Zeros (before, after) added to one spatial axis of `length` under the canonical padding rule."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        span = (kernel - 1) * dilation + 1
        total = max((math.ceil(length / stride) - 1) * stride + span - length, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def window_output_length(length: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    """Number of window positions on an axis of `length` padded by (before, after); <= 0 if none fits."""
    span = (kernel - 1) * dilation + 1
    padded = length + before + after
    return (padded - span) // stride + 1 if padded >= span else 0


def axis_paddings(
    shape: Shape, kernel: tuple[int, ...], strides: tuple[int, ...], dilation: tuple[int, ...], padding: Any
) -> tuple[tuple[int, int], ...]:
    """(before, after) zeros per spatial axis of a channels-last `shape` (channels excluded)."""
    per_axis = padding if isinstance(padding, tuple) else (padding,) * len(kernel)
    return tuple(
        padding_amounts(length, k, s, d, p)
        for length, k, s, d, p in zip(shape[:-1], kernel, strides, dilation, per_axis)
    )


def _expect_rank(kind: str, rank: int, shape: Shape, where: str) -> None:
    if len(shape) == rank + 1:
        return
    hint = ""
    if rank == 1 and len(shape) == 1:
        hint = (
            f" A vector input needs a channel axis: use the dataset's sequence shape (mnist1d: shape: sequence) "
            f"or put {{reshape: {{target_shape: [{shape[0]}, 1]}}}} before it."
        )
    elif len(shape) == 1:
        hint = " Its input is a vector, e.g. the output of a dense or flatten layer: move this layer before those."
    raise SpecError(f"{where}: {kind} expects a {RANK_NAMES[rank]} input, got shape {shape}.{hint}")


def _window_output(kind: str, shape: Shape, kernel, strides, dilation, padding, where: str) -> tuple[int, ...]:
    lengths = []
    for (before, after), length, k, s, d in zip(
        axis_paddings(shape, kernel, strides, dilation, padding), shape[:-1], kernel, strides, dilation
    ):
        out = window_output_length(length, k, s, d, before, after)
        if out < 1:
            span = (k - 1) * d + 1
            raise SpecError(
                f"{where}: {kind}'s window spans {span} positions but the input axis has {length} "
                f"(+{before + after} padding), input shape {shape}. Use a smaller kernel/pool size, padding 'same', "
                "or fewer downsampling layers before it."
            )
        lengths.append(out)
    return tuple(lengths)


def _conv_infer(rank: int):
    kind = f"conv{rank}d"

    def infer(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
        (shape,) = shapes
        _expect_rank(kind, rank, shape, where)
        if max(p["strides"]) > 1 and max(p["dilation"]) > 1:
            raise SpecError(
                f"{where}: strides {list(p['strides'])} together with dilation {list(p['dilation'])}: a stride > 1 with a "
                "dilation > 1 is not supported (TensorFlow refuses it, so it could not be compared). Use one of them."
            )
        lengths = _window_output(kind, shape, p["kernel_size"], p["strides"], p["dilation"], p["padding"], where)
        channels = shape[-1]
        kernel_shape = (*p["kernel_size"], channels, p["filters"])
        tensors = [TensorSpec("kernel", kernel_shape, "kernel")]
        if p["use_bias"]:
            tensors.append(TensorSpec("bias", (p["filters"],), "bias", fan_in=channels * math.prod(p["kernel_size"])))
        return (*lengths, p["filters"]), tuple(tensors)

    return infer


def _pool_infer(kind: str, rank: int):
    def infer(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
        (shape,) = shapes
        _expect_rank(kind, rank, shape, where)
        strides = p["strides"] if p["strides"] is not None else p["pool_size"]
        lengths = _window_output(kind, shape, p["pool_size"], strides, (1,) * rank, p["padding"], where)
        return (*lengths, shape[-1]), ()

    return infer


def _infer_global(kind: str):
    def infer(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
        (shape,) = shapes
        if len(shape) < 2:
            raise SpecError(
                f"{where}: {kind} pools over the positions of a (positions..., channels) input, got shape {shape} "
                "(no position axis). Remove it, or move it before the flatten/dense layers."
            )
        return (shape[-1],), ()

    return infer


def _infer_flatten(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    return (math.prod(shape),), ()


def _infer_reshape(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    target = list(p["target_shape"])
    size = math.prod(shape)
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if size % known:
            raise SpecError(
                f"{where}: cannot reshape {shape} ({size} values) to {tuple(target)}: {size} is not a multiple of {known}."
            )
        target[target.index(-1)] = size // known
    if math.prod(target) != size:
        raise SpecError(
            f"{where}: cannot reshape {shape} ({size} values) to {tuple(target)} ({math.prod(target)} values). "
            "The number of values must stay the same."
        )
    return tuple(target), ()


def _conv_def(rank: int) -> LayerDef:
    return LayerDef(
        f"conv{rank}d",
        f"cross-correlation over a channels-last {RANK_NAMES[rank]} input, kernel (k..., in, filters), "
        "bias (filters,), then the activation; padding valid | same (TensorFlow's rule, extra zero at the end) | "
        "int (zeros on both sides)",
        {
            "filters": Parameter("integer", None, "> 0"),
            "kernel_size": Parameter("ints"),
            "strides": Parameter("ints", 1),
            "padding": Parameter("padding", "valid"),
            "dilation": Parameter("ints", 1),
            "activation": Parameter("activation", "linear"),
            "use_bias": Parameter("bool", True),
        },
        _conv_infer(rank),
        required=("filters", "kernel_size"),
        spatial_rank=rank,
    )


def _pool_def(mode: str, rank: int) -> LayerDef:
    meaning = (
        "maximum over each window (padded cells never win)"
        if mode == "max"
        else "mean over each window's real cells (padded cells excluded from the count)"
    )
    return LayerDef(
        f"{mode}_pool{rank}d",
        f"{meaning}, per channel, over a {RANK_NAMES[rank]} input; strides default to pool_size; padding valid | same",
        {
            "pool_size": Parameter("ints", 2),
            "strides": Parameter("ints"),
            "padding": Parameter("choice", "valid", choices=("valid", "same")),
        },
        _pool_infer(f"{mode}_pool{rank}d", rank),
        spatial_rank=rank,
    )


SPATIAL_LAYERS: dict[str, LayerDef] = {
    "conv1d": _conv_def(1),
    "conv2d": _conv_def(2),
    "max_pool1d": _pool_def("max", 1),
    "max_pool2d": _pool_def("max", 2),
    "avg_pool1d": _pool_def("avg", 1),
    "avg_pool2d": _pool_def("avg", 2),
    "global_avg_pool": LayerDef(
        "global_avg_pool",
        "mean over every position axis: (positions..., channels) -> (channels,)",
        {},
        _infer_global("global_avg_pool"),
    ),
    "global_max_pool": LayerDef(
        "global_max_pool",
        "maximum over every position axis: (positions..., channels) -> (channels,)",
        {},
        _infer_global("global_max_pool"),
    ),
    "flatten": LayerDef(
        "flatten",
        "row-major flatten of the CHANNELS-LAST tensor (channels vary fastest): (d1, ..., dk) -> (d1*...*dk,)",
        {},
        _infer_flatten,
    ),
    "reshape": LayerDef(
        "reshape",
        "row-major reshape of the channels-last tensor to target_shape (one entry may be -1: inferred)",
        {"target_shape": Parameter("shape")},
        _infer_reshape,
        required=("target_shape",),
    ),
}
