"""Canonical losses on model outputs, target preparation, and the kernel penalties.

Losses (harness.spec.components.LOSSES), all a mean over the batch:
    cross_entropy         logits (N, C) vs int64 labels (N,)   -> F.cross_entropy (takes logits)
    binary_cross_entropy  one logit (N, 1) vs 0/1 labels (N,)   -> F.binary_cross_entropy_with_logits
    mse                   predictions (N, K) vs targets (N, K), mean over ALL N*K elements -> F.mse_loss
    ctc                   logits (N, T, C) vs int64 label strings (N, S) padded with 0 -> F.ctc_loss per sample
                          (reduction='none': 'mean' would divide each by its string's length), then the mean
Penalties: harness.adapters.common.penalty_terms, over kernels only, never biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.adapters.common import complete_table, look_up, penalty_terms
from harness.spec.components import LOSSES

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) -> scalar tensor


def _binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # logits (N, 1) -> (N,) against float labels (N,); the stable softplus form inside torch
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels)


def _ctc(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # F.ctc_loss wants time-major log-probabilities (T, N, C); blank 0; a string's length is its count of
    # nonzero labels (they come first); every sample uses all T steps. zero_infinity stays False: an
    # impossible string is a real divergence (the suite loader rules it out by checking T >= 2S - 1).
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)
    steps, batch = log_probs.shape[:2]
    input_lengths = torch.full((batch,), steps, dtype=torch.int64, device=logits.device)
    target_lengths = (labels > 0).sum(dim=1)
    return F.ctc_loss(log_probs, labels, input_lengths, target_lengths, blank=0, reduction="none").mean()


LOSS_FUNCTIONS: dict[str, LossFunction] = complete_table(
    {
        "cross_entropy": F.cross_entropy,  # mean reduction, no label smoothing, no class weights
        "binary_cross_entropy": _binary_cross_entropy,
        "mse": F.mse_loss,  # mean over every element
        "ctc": _ctc,
    },
    LOSSES,
    "torch",
    "loss",
)


def loss_function(name: str) -> LossFunction:
    """The torch function computing canonical loss `name` from (outputs, targets).

    Raises:
        BackendError: a loss this adapter does not realize.
    """
    return look_up(LOSS_FUNCTIONS, name, "torch", "loss")


def prepare_targets(name: str, targets: np.ndarray, device: torch.device) -> torch.Tensor:
    """Targets as the loss expects them: int64 labels (cross_entropy), float32 labels (N,)
    (binary_cross_entropy), float32 (N, K) (mse; a (N,) target becomes (N, 1)), int64 label
    strings (N, S) (ctc)."""
    if name in ("cross_entropy", "ctc"):
        tensor = torch.tensor(np.asarray(targets, dtype=np.int64))
    elif name == "binary_cross_entropy":
        tensor = torch.tensor(np.asarray(targets, dtype=np.float32).reshape(-1))
    else:
        array = np.asarray(targets, dtype=np.float32)
        tensor = torch.tensor(array.reshape(len(array), -1))
    return tensor.to(device)


ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"abs": torch.abs, "square": torch.square}


def kernel_penalty(kernels: Sequence[torch.Tensor], l1: float, l2: float) -> Callable[[], torch.Tensor] | None:
    """A function returning the canonical penalty (harness.adapters.common.penalty_terms) over the
    kernels, or None when l1 and l2 are both 0. Autograd adds its gradient to the data loss's."""
    terms = penalty_terms(l1, l2)
    if not terms:
        return None
    kernels = list(kernels)

    def penalty() -> torch.Tensor:
        total = torch.zeros((), dtype=kernels[0].dtype, device=kernels[0].device) if kernels else torch.zeros(())
        for kernel in kernels:
            for term in terms:
                total = total + term.coefficient * ELEMENTWISE[term.elementwise](kernel).sum()
        return total

    return penalty
