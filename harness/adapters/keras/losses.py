"""Canonical losses on logits and the l1/l2 penalties, with `keras.ops` (any Keras backend).

Keras' loss classes default to `from_logits=False` (they expect probabilities) and its
MSE averages over the last axis first (docs/semantics.md, "Losses"); the canonical losses
(harness.spec.components.LOSSES) take logits and average MSE over ALL elements. Keras'
`regularizers.L2(x)` adds x*sum(w^2); the canonical l2 adds (l2/2)*sum(kernel^2)
(harness.adapters.common.penalty_terms), so the penalty is written here, on kernels only, and
never through `model.losses`. Every loss takes (outputs, targets), as in the torch adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from harness.adapters.common import complete_table, look_up, penalty_terms
from harness.spec.components import LOSSES

LossFunction = Callable[[Any, Any], Any]  # (outputs, targets) -> scalar tensor, like the torch adapter's


def cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean over the batch of -log softmax(logits)[label]. labels int (N,), logits (N, C)."""
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def binary_cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean over the batch of -[y log sigmoid(z) + (1-y) log(1-sigmoid(z))]. targets float (N, 1), logits (N, 1)."""
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


def mean_squared_error(predictions: Any, targets: Any) -> Any:
    """Mean over ALL elements of (prediction - target)^2. Both (N, K)."""
    return ops.mean(ops.square(predictions - targets))


def connectionist_temporal_classification(logits: Any, labels: Any) -> Any:
    """Mean over the batch of the ctc negative log-likelihood. labels int (N, S), 0-padded; logits (N, T, C).

    keras.ops.ctc_loss takes logits, per-sample lengths and the blank index (0) and returns one loss
    per sample, not divided by the string's length, so its mean is the canonical ctc.
    """
    shape = ops.shape(logits)
    target_lengths = ops.sum(ops.cast(ops.greater(labels, 0), "int32"), axis=1)
    output_lengths = ops.full((shape[0],), shape[1], dtype="int32")
    return ops.mean(ops.ctc_loss(labels, logits, target_lengths, output_lengths, mask_index=0))


LOSS_FUNCTIONS: dict[str, LossFunction] = complete_table(
    {
        "cross_entropy": cross_entropy,
        "binary_cross_entropy": binary_cross_entropy,
        "mse": mean_squared_error,
        "ctc": connectionist_temporal_classification,
    },
    LOSSES,
    "Keras",
    "loss",
)


def loss_function(name: str) -> LossFunction:
    """The keras.ops function computing canonical loss `name` from (outputs, targets).

    Raises:
        BackendError: a loss this adapter does not realize.
    """
    return look_up(LOSS_FUNCTIONS, name, "Keras", "loss")


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


ELEMENTWISE: dict[str, Callable[[Any], Any]] = {"abs": ops.abs, "square": ops.square}


def kernel_penalty(kernels: list[Any], l1: float, l2: float) -> Callable[[], Any] | None:
    """A function returning the canonical penalty (harness.adapters.common.penalty_terms) over the
    kernels (biases untouched), or None when l1 and l2 are both 0 or there is no kernel.

    The returned function reads the kernels' current values each time it is called, so
    it can run inside a gradient tape or a traced step.
    """
    terms = penalty_terms(l1, l2)
    if not terms or not kernels:
        return None

    def penalty() -> Any:
        total = 0.0
        for kernel in kernels:
            for term in terms:
                total = total + term.coefficient * ops.sum(ELEMENTWISE[term.elementwise](kernel))
        return total

    return penalty
