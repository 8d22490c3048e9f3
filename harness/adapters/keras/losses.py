"""Canonical losses on logits and the l1/l2 penalties, with `keras.ops` (any Keras backend).

Keras' loss classes default to `from_logits=False` (they expect probabilities) and its
MSE averages over the last axis first (SEMANTICS.md, "Losses"); the canonical losses
(harness.spec.components.LOSSES) take logits and average MSE over ALL elements. Keras'
`regularizers.L2(x)` adds x*sum(w^2); the canonical l2 adds (l2/2)*sum(kernel^2), so the
penalty is written here, on kernels only, and never through `model.losses`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from harness.errors import BackendError

LossFunction = Callable[[Any, Any], Any]  # (targets, outputs) -> scalar tensor


def cross_entropy(labels: Any, logits: Any) -> Any:
    """Mean over the batch of -log softmax(logits)[label]. labels int (N,), logits (N, C)."""
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def binary_cross_entropy(targets: Any, logits: Any) -> Any:
    """Mean over the batch of -[y log sigmoid(z) + (1-y) log(1-sigmoid(z))]. targets float (N, 1), logits (N, 1)."""
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


def mean_squared_error(targets: Any, predictions: Any) -> Any:
    """Mean over ALL elements of (prediction - target)^2. Both (N, K)."""
    return ops.mean(ops.square(predictions - targets))


def connectionist_temporal_classification(labels: Any, logits: Any) -> Any:
    """Mean over the batch of the ctc negative log-likelihood. labels int (N, S), 0-padded; logits (N, T, C).

    keras.ops.ctc_loss takes logits, per-sample lengths and the blank index (0) and returns one loss
    per sample, not divided by the string's length, so its mean is the canonical ctc.
    """
    shape = ops.shape(logits)
    target_lengths = ops.sum(ops.cast(ops.greater(labels, 0), "int32"), axis=1)
    output_lengths = ops.full((shape[0],), shape[1], dtype="int32")
    return ops.mean(ops.ctc_loss(labels, logits, target_lengths, output_lengths, mask_index=0))


LOSS_FUNCTIONS: dict[str, LossFunction] = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "mse": mean_squared_error,
    "ctc": connectionist_temporal_classification,
}


def loss_function(name: str) -> LossFunction:
    """The canonical data loss of a name.

    Raises:
        BackendError: a loss this adapter does not realize.
    """
    if name not in LOSS_FUNCTIONS:
        raise BackendError(f"loss: the Keras backend has no realization of {name!r}. Expected one of: {', '.join(LOSS_FUNCTIONS)}.")
    return LOSS_FUNCTIONS[name]


def prepare_targets(name: str, y: np.ndarray, num_outputs: int) -> np.ndarray:
    """Targets in the form the loss consumes.

    cross_entropy: int32 labels (N,) (the dtype Keras' sparse cross entropy casts to anyway);
    binary_cross_entropy: float32 (N, 1), one target per logit; mse: float32 (N, num_outputs);
    ctc: int32 label strings (N, S), 0-padded.
    """
    if name == "cross_entropy":
        return np.asarray(y).astype(np.int32).reshape(-1)
    if name == "ctc":
        return np.asarray(y).astype(np.int32).reshape(len(y), -1)
    if name == "binary_cross_entropy":
        return np.asarray(y).astype(np.float32).reshape(-1, 1)
    return np.asarray(y).astype(np.float32).reshape(-1, num_outputs)


def penalty_function(kernels: list[Any], l1: float, l2: float) -> Callable[[], Any] | None:
    """l1*sum|kernel| + (l2/2)*sum kernel^2 over every kernel (biases untouched), or None if both are 0.

    The returned function reads the kernels' current values each time it is called, so
    it can run inside a gradient tape or a traced step.
    """
    if not l1 and not l2 or not kernels:
        return None

    def penalty() -> Any:
        total = 0.0
        for kernel in kernels:
            if l1:
                total = total + l1 * ops.sum(ops.abs(kernel))
            if l2:
                total = total + (l2 / 2.0) * ops.sum(ops.square(kernel))
        return total

    return penalty
