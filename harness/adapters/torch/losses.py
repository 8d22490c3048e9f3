"""Canonical losses on model outputs, target preparation, and the kernel penalties.

Losses (harness.spec.components.LOSSES), all a mean over the batch:
    cross_entropy         logits (N, C) vs int64 labels (N,)   -> F.cross_entropy (takes logits)
    binary_cross_entropy  one logit (N, 1) vs 0/1 labels (N,)   -> F.binary_cross_entropy_with_logits
    mse                   predictions (N, K) vs targets (N, K), mean over ALL N*K elements -> F.mse_loss
    ctc                   logits (N, T, C) vs int64 label strings (N, S) padded with 0 -> F.ctc_loss per sample
                          (reduction='none': 'mean' would divide each by its string's length), then the mean
Penalties (RegularizerSpec), over kernels only, never biases:
    l1 * sum|kernel|  +  (l2 / 2) * sum kernel^2
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import BackendError
from harness.spec.components import LOSSES

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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


DATA_LOSSES: dict[str, LossFunction] = {
    "cross_entropy": F.cross_entropy,  # mean reduction, no label smoothing, no class weights
    "binary_cross_entropy": _binary_cross_entropy,
    "mse": F.mse_loss,  # mean over every element
    "ctc": _ctc,
}
assert set(DATA_LOSSES) == set(LOSSES), "every canonical loss needs a torch realization"


def data_loss_function(name: str) -> LossFunction:
    """The torch function computing canonical loss `name` from (outputs, targets).

    Raises:
        BackendError: a loss this adapter does not realize.
    """
    if name not in DATA_LOSSES:
        raise BackendError(f"loss: the torch backend has no realization of {name!r}. Expected one of: {', '.join(DATA_LOSSES)}.")
    return DATA_LOSSES[name]


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


def kernel_penalty(kernels: Sequence[torch.Tensor], l1: float, l2: float) -> Callable[[], torch.Tensor] | None:
    """A function returning l1*sum|k| + (l2/2)*sum k^2 over the kernels, or None when both are 0.

    Its gradient is l1*sign(k) + l2*k (sign(0) = 0), added to the data-loss gradient by autograd.
    """
    if l1 == 0 and l2 == 0:
        return None
    kernels = list(kernels)

    def penalty() -> torch.Tensor:
        total = torch.zeros((), dtype=kernels[0].dtype, device=kernels[0].device) if kernels else torch.zeros(())
        for kernel in kernels:
            if l1:
                total = total + l1 * kernel.abs().sum()
            if l2:
                total = total + (0.5 * l2) * kernel.square().sum()
        return total

    return penalty
