"""How a dataset is cut and scaled: fixed splits (or, with `resplit: per_seed`, splits drawn from the trial's
seed) and train-only statistics.

The splitting is the harness's own numpy code, not scikit-learn's, so the splits (and with
them every stored result) stay the same across scikit-learn versions and need no import.
Held-out sizes follow scikit-learn's convention, ceil(fraction * N): breast_cancer's 569
rows give 426 train / 143 test, digits' 1797 give 1347 / 450.
"""

from __future__ import annotations

import math

import numpy as np

from harness.data.sources import DATASET_SEED

SCALINGS = ("standard", "minmax", "unit", "none")
# `resplit`: 'fixed' cuts every dataset one way for every trial; 'per_seed' draws the cut from the trial's
# seed (Bouthillier et al. 2021), so seeds vary split, initialization and order together.
RESPLITS = ("fixed", "per_seed")
RESPLIT_TAG = (
    1  # default_rng([DATASET_SEED, stream, RESPLIT_TAG, seed]): never equal to the fixed [DATASET_SEED, stream]
)


def split_rng(stream: int, seed: int | None = None) -> np.random.Generator:
    """The generator of one split draw: fixed per dataset (seed None), or per trial seed (resplit: per_seed)."""
    if seed is None:
        return np.random.default_rng([DATASET_SEED, stream])
    return np.random.default_rng([DATASET_SEED, stream, RESPLIT_TAG, seed])


def held_out_count(num_samples: int, fraction: float) -> int:
    """Rows held out of `num_samples` for `fraction`: ceil(fraction * num_samples).

    The product is rounded to 9 decimals first, so 0.28 * 25 (= 7.000000000000001 in
    binary floating point) holds out 7, not 8.
    """
    return math.ceil(round(fraction * num_samples, 9))


def stratified_counts(labels: np.ndarray, num_held: int) -> dict[int, int]:
    """Rows of each class to hold out, proportional to class size (largest-remainder rounding).

    Each class gets floor(num_held * n_c / N); the rows left over go to the classes with the
    largest fractional remainders (ties: larger class first, then smaller label). A class is
    never held out entirely unless every row is held out, since floor(q) + 1 <= n_c whenever
    q = num_held * n_c / N is not an integer.
    """
    classes, sizes = np.unique(labels, return_counts=True)
    quotas = num_held * sizes / sizes.sum()
    counts = np.floor(quotas).astype(np.int64)
    remainders = quotas - counts
    leftover = num_held - int(counts.sum())
    order = np.lexsort((classes, -sizes, -remainders))  # last key is primary: remainder descending
    counts[order[:leftover]] += 1
    return {int(label): int(count) for label, count in zip(classes, counts)}


def split_indices(
    num_samples: int,
    fraction: float,
    stream: int,
    labels: np.ndarray | None = None,
    shuffle_kept: bool = False,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut rows 0..num_samples-1 into (kept, held_out) index arrays (int64), from the fixed dataset seed
    (or, given `seed`, from that trial seed: resplit per_seed).

    Args:
        num_samples: rows to cut.
        fraction: share held out, in [0, 1); held_out_count rows.
        stream: stream id under DATASET_SEED (test split and validation use different ones).
        labels: class labels (N,) to stratify on (classification, binary); None draws plainly (regression).
        shuffle_kept: True returns the kept rows in a fixed random order, so "the first N
            training samples" is a random, roughly class-balanced subset even when the source
            is sorted by class (iris, wine); False keeps the source order.

    Returns:
        kept, held_out. held_out is always in source order.
    """
    rng = split_rng(stream, seed)
    num_held = held_out_count(num_samples, fraction)
    if labels is None:
        held = rng.permutation(num_samples)[:num_held]
    else:
        parts = [
            rng.permutation(np.flatnonzero(labels == label))[:count]
            for label, count in stratified_counts(labels, num_held).items()
        ]
        held = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    held = np.sort(held).astype(np.int64)
    kept = np.setdiff1d(np.arange(num_samples, dtype=np.int64), held, assume_unique=True)
    if shuffle_kept:
        kept = rng.permutation(kept)
    return kept, held


def fit_scaling(x_train: np.ndarray, method: str, unit_range: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (offset, divisor) fitted on the TRAINING rows only; apply as (x - offset) / divisor.

    Args:
        x_train: (N, D) float64 training features (N >= 1).
        method: 'standard' (mean, population std; sklearn's StandardScaler), 'minmax' (min,
            max - min: the training range maps to [0, 1]), 'unit' (0, unit_range: the raw
            value range known for the dataset, 16 for digits), 'none' (0, 1).
        unit_range: required for 'unit'.

    Returns:
        offset (D,), divisor (D,), float64. A feature constant on the training rows (std or
        range 0, e.g. digits' always-blank corner pixels) gets divisor 1 instead of a division by 0.
    """
    num_features = x_train.shape[1]
    if method == "standard":
        offset, divisor = x_train.mean(axis=0), x_train.std(axis=0)
    elif method == "minmax":
        offset, divisor = x_train.min(axis=0), x_train.max(axis=0) - x_train.min(axis=0)
    elif method == "unit":
        if unit_range is None:
            raise ValueError("scaling 'unit' needs the dataset's unit_range")
        offset, divisor = np.zeros(num_features), np.full(num_features, float(unit_range))
    elif method == "none":
        offset, divisor = np.zeros(num_features), np.ones(num_features)
    else:
        raise ValueError(f"unknown scaling {method!r}; expected one of {SCALINGS}")
    return offset, np.where(divisor > 0, divisor, 1.0)
