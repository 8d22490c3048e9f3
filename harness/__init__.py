"""harness: a model-comparison benchmarking harness for deep learning (PyTorch and Keras)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:  # type hints only: `import harness` stays light (no pandas, no SQLite)
    from harness.adapters.base import Model
    from harness.analysis import Results

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__", "load", "load_weights"]


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


def load_weights(
    results_dir: str | Path,
    arm: str,
    seed: int,
    backend: str = "torch",
    *,
    trained_in: str | None = None,
    store: str | Path | None = None,
) -> Model:
    """A trial's saved weights (`training: {save_weights: final}`) in a ready model of any backend.

    Example:
        >>> import harness
        >>> model = harness.load_weights("results/optimizers", arm="adam", seed=0, backend="keras")
        >>> logits = model.predict(x_test)        # float32 (N, classes), evaluation mode

    A trial trained in torch loads into Keras and the other way round: the file holds the canonical
    tensors (`<store>/weights/<hash>.safetensors`). See harness.weights.load_weights for every
    argument (`trained_in` picks the trial's backend when the arm ran in several) and the errors.

    Imports the requested framework only when called.
    """
    from harness.weights import load_weights as _load_weights

    return _load_weights(results_dir, arm, seed, backend, trained_in=trained_in, store=store)
