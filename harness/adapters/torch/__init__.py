"""The PyTorch adapter. Imported only through harness.adapters.get_adapter (it imports torch).

Modules (mirrored file for file by harness/adapters/keras/): adapter (setup, devices, build),
network (modules, canonical weight keys, native init), optimizers (canonical rules, clipping,
decoupled decay), losses (canonical losses, kernel penalties), model (TorchModel).
"""
from __future__ import annotations

from harness.adapters.torch.adapter import TorchAdapter


def make_adapter(name: str) -> TorchAdapter:
    """The adapter for backend `name` ('torch')."""
    return TorchAdapter(name)


__all__ = ["TorchAdapter", "make_adapter"]
