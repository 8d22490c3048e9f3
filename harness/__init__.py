"""harness: a model-comparison benchmarking harness for deep learning (PyTorch and Keras)."""
from __future__ import annotations

from harness.errors import HarnessError

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__", "load"]


def load(target, store=None):  # noqa: ANN001, ANN201 - thin lazy wrapper, documented in harness.results.load
    """Load a suite's stored results for analysis: `harness.load("results/optimizers").summary()`."""
    from harness.results import load as _load

    return _load(target, store)
