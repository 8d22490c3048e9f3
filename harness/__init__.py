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

    Args:
        target: a results folder as `harness run` writes it (`<store>/<suite>/`), or a suite's YAML
            file, whose trials are looked up in `store`.
        store: the folder holding harness.sqlite (default: the results folder's parent, or results/
            for a suite file).

    Returns:
        The suite's Results (summary, comparisons, curves, ...: see harness.analysis.Results).

    Raises:
        HarnessError: the target is neither a suite file nor a results folder, the suite file is
            invalid, there is no store, or the store holds none of the suite's trials.

    Imports pandas and the store only when called, so `import harness` stays light.
    """
    from harness.results_folder import load as _load

    return _load(target, store)
