"""harness: a model-comparison benchmarking harness for deep learning (PyTorch and Keras)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:  # type hints only: `import harness` stays light (no pandas, no SQLite)
    from collections.abc import Sequence

    from matplotlib.figure import Figure

    from harness.adapters.base import Model
    from harness.analysis import Results

__version__ = "0.1.0"

__all__ = ["HarnessError", "__version__", "figures", "load", "load_weights", "run"]


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


def run(
    suite: str | Path,
    store: str | Path = "results",
    *,
    jobs: int | None = None,
    backends: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    rerun: bool = False,
    device: str | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> Results:
    """Run a suite from Python (a notebook, a script) as `harness run` does; return its Results.

    Trials already in the store are reused (resumable, as on the command line), the run is recorded
    with its commit (`harness history`), and the tables are written to `<store>/<suite>/`.

    Args:
        suite: the suite's YAML file.
        store: the store folder (default results/, as `harness run`).
        jobs: worker processes (default: the number of cores).
        backends: run only these backends, overriding the suite's `backends`.
        seeds: a count (3) or a list ([0, 1, 2]), overriding the suite's `seeds`.
        rerun: run trials again even when the store has their result.
        device: cpu, auto, cuda or cuda:N, overriding the suite's `device`.
        progress: a progress bar (tqdm's: a widget in Jupyter, text in a terminal; none without tqdm).
        threads: intra-op threads each worker is pinned to (default: cores/jobs), as `--threads`.

    Returns:
        The suite's Results: `.summary()`, `.comparisons()`, `.epochs()`, ... as pandas DataFrames.
        Failed or diverged trials are in them with their status (`.failures()`); a run interrupted with
        Ctrl-C raises KeyboardInterrupt after saving the trials that finished.

    Raises:
        HarnessError: the suite is invalid, a GPU is missing, a trial does not fit in memory, the store
            cannot be used (the message says what and how to fix it); nothing is written then.

    Example:
        >>> import harness
        >>> results = harness.run("suites/smoke.yaml", store="/tmp/store", jobs=2)
        >>> results.summary()[["arm", "backend", "metric", "mean", "ci_low", "ci_high"]]
    """
    import sys

    from harness.api import load_checked_suite, notebook_progress, run_suite

    loaded = load_checked_suite(suite, backends, seeds, on_note=lambda note: print(f"note: {note}", file=sys.stderr))
    start, observe, close = notebook_progress() if progress else (None, None, None)
    try:
        done = run_suite(
            loaded,
            suite,
            store,
            jobs=jobs,
            threads=threads,
            rerun=rerun,
            quiet=True,
            device=device,
            on_event=observe,
            on_start=start,
        )
    finally:
        if close is not None:
            close()
    if done.summary.interrupted:
        raise KeyboardInterrupt("harness.run: interrupted; finished trials are saved, run again to resume")
    if done.summary.code_changed:
        raise HarnessError(f"harness.run stopped: {done.summary.code_changed}. Run again to finish with the new code.")
    if done.summary.failed or done.summary.timeout:
        import warnings

        warnings.warn(
            f"harness.run: {done.summary.failed} trial(s) failed and {done.summary.timeout} timed out; "
            "their errors are in results.failures()",
            RuntimeWarning,
            stacklevel=2,
        )
    return done.results


def figures(results: Results) -> dict[str, Figure]:
    """The report's figures of some Results, by key ('curves_test_accuracy', 'final_test_accuracy', ...).

    Needs the report extra (matplotlib, seaborn). Each is a matplotlib Figure: display it in a notebook
    (it renders inline as the cell's value) or `.savefig("x.png")`.

    Example:
        >>> shown = harness.figures(harness.load("results/optimizers"))
        >>> shown["curves_test_accuracy"].savefig("curves.png")
    """
    from harness.report.gallery import build_figures

    return {item.key: item.figure for item in build_figures(results)}
