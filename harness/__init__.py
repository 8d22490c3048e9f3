"""harness: a model-comparison benchmarking harness for deep learning (PyTorch and Keras)."""
from __future__ import annotations

from harness.errors import HarnessError

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__"]
