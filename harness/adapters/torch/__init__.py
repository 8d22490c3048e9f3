"""The PyTorch adapter. Imported only through harness.adapters.get_adapter (it imports torch).

Modules (mirrored name for name by harness/adapters/keras/): adapter (setup, devices, build),
layers (canonical layers as modules), realize (each canonical layer as modules and where its
tensors live), network (modules, canonical weight keys, native init), optimizers (canonical
rules, clipping, decoupled decay; make_optimizer), losses (LOSS_FUNCTIONS, loss_function,
kernel_penalty; every loss takes (outputs, targets)), model (TorchModel), training (an epoch of
steps, a batch's gradients). What both adapters share is in harness.adapters.common.
"""

from __future__ import annotations

from harness.adapters.torch.adapter import TorchAdapter


def make_adapter(name: str) -> TorchAdapter:
    """The adapter for backend `name` ('torch')."""
    return TorchAdapter(name)


__all__ = ["TorchAdapter", "make_adapter"]
