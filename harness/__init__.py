"""harness: a model-comparison benchmarking harness for deep learning (PyTorch and Keras)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:  # type hints only: `import harness` stays light (no pandas, no SQLite)
    from harness.analysis import Results

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__", "load"]


def load(target: str | Path, store: str | Path | None = None) -> Results:
    """Load a suite's stored results for analysis: `harness.load("results/optimizers").summary()`.

    A thin lazy wrapper around `harness.results_folder.load` (see there for the arguments).
    """
    from harness.results_folder import load as _load

    return _load(target, store)
