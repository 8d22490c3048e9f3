"""Datasets as numpy arrays with fixed train/validation/test splits, all offline.

    from harness.data import resolve_dataset, dataset_info, load_dataset
    spec = resolve_dataset({"name": "digits", "validation": 0.1, "scale": "unit"})
    dataset_info(spec).input_shape   # (64,) - static, nothing loaded
    data = load_dataset(spec)         # Dataset: x_train (1212, 64) float32, ...

How a dataset is cut, in order (every step from the fixed dataset seed; with `resplit: per_seed`,
from the trial's seed instead, so each seed sees its own split and every arm at that seed the same):
1. the raw rows: the source's own test split (mnist1d, kept under resplit too), or 25% held out,
   stratified for labelled tasks (harness.data.splits);
2. `train_samples` keeps the first N rows of the training split (in a random order, so a random
   subset; under resplit the order, and so the subset, is drawn per seed, mnist1d's too);
3. `validation` holds out that fraction of what remains (stratified for labelled tasks);
4. scaling (`scale`, and `scale_target` for regression) is fitted on the rows left for
   training and applied to validation and test;
5. cast (x float32; y int64, float32 (N, K) for regression, int64 (N, target_length) label
   strings padded with 0 for sequence) and reshape to input_shape.

Importing this package loads numpy only; scikit-learn and mnist1d are imported by the
loaders that need them, and only when their disk cache misses.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.data import sources, user_datasets
from harness.data.registry import (
    DATASETS,
    TEST_FRACTION,
    DatasetDefinition,
    dataset_info,
    list_datasets,
    resolve_dataset,
)
from harness.data.splits import fit_scaling, split_indices, split_rng
from harness.data.types import TASKS, Dataset, DatasetInfo
from harness.spec.types import DatasetSpec

__all__ = [
    "DATASETS",
    "TASKS",
    "Dataset",
    "DatasetDefinition",
    "DatasetInfo",
    "clear_cache",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "resolve_dataset",
]

CACHE_SIZE = 64  # datasets kept per process; the largest (mnist1d) is ~0.8 MB as float32


def load_dataset(spec: DatasetSpec, seed: int | None = None) -> Dataset:
    """The dataset a spec describes, cut into its splits; cached per process.

    The spec is resolved first (defaults filled), so `DatasetSpec('digits')` and the resolved
    spec share one cache entry. The returned arrays are READ-ONLY because they are shared by
    every caller in the process: copy before modifying (e.g. `torch.tensor(x)`, not `from_numpy`).

    Args:
        spec: the dataset.
        seed: the trial's seed. Required when spec.resplit is 'per_seed' (it draws the split);
            ignored otherwise, so fixed splits share one cache entry across seeds.

    Raises:
        SpecError / DatasetError: as resolve_dataset, for a spec that is not valid.
        ValueError: a per_seed spec without a seed (a caller's bug: the split would be undefined).
    """
    resolved = resolve_dataset(spec)
    if resolved.resplit == "fixed":
        return _load_resolved(resolved, None)
    if seed is None or isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(
            f"dataset {resolved.name!r} resplits per seed: load_dataset needs the trial's seed, got {seed!r}"
        )
    return _load_resolved(resolved, seed)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_resolved(spec: DatasetSpec, seed: int | None) -> Dataset:
    """The cut dataset, cached per (spec, seed): seed is None for fixed splits, the trial's seed for per_seed."""
    if spec.name in user_datasets.USER_SOURCES:
        return user_datasets.load_user_dataset(spec)
    definition = DATASETS[spec.name]
    options = dict(spec.options)
    info = definition.info(options)
    labelled = info.task in ("classification", "binary")  # stratified splits; a sequence task's y is a string
    arrays = definition.produce(options)
    x_pool, y_pool = arrays["x"], arrays["y"]

    # 1. the test split: the source's own (also under resplit), else held out (per seed under resplit)
    if definition.own_test_split:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        if seed is not None:  # resplit: this seed's order of the training rows, so train_samples is its own subset
            order = split_rng(sources.TEST_SPLIT_STREAM, seed).permutation(len(y_pool))
            x_pool, y_pool = x_pool[order], y_pool[order]
    else:
        kept, held = split_indices(
            len(y_pool),
            TEST_FRACTION,
            sources.TEST_SPLIT_STREAM,
            labels=y_pool if labelled else None,
            shuffle_kept=True,
            seed=seed,
        )
        x_test, y_test, x_pool, y_pool = x_pool[held], y_pool[held], x_pool[kept], y_pool[kept]
    # 2. the first N training rows
    if spec.train_samples is not None:
        x_pool, y_pool = x_pool[: spec.train_samples], y_pool[: spec.train_samples]
    # 3. validation carved from what remains
    kept, held = split_indices(
        len(y_pool), spec.validation, sources.VALIDATION_STREAM, labels=y_pool if labelled else None, seed=seed
    )
    x_train, y_train, x_validation, y_validation = x_pool[kept], y_pool[kept], x_pool[held], y_pool[held]

    # 4. scaling fitted on the training rows only; 5. dtype and shape
    offset, divisor = fit_scaling(x_train, options["scale"], definition.unit_range)  # raw x is (N, D)
    target_offset: float | np.ndarray = 0.0  # identity scaling unless scale_target fits per-output statistics
    target_divisor: float | np.ndarray = 1.0
    if info.task == "regression" and options.get("scale_target", False):
        target_offset, target_divisor = fit_scaling(y_train.reshape(len(y_train), info.num_outputs), "standard")

    def features(x: np.ndarray) -> np.ndarray:
        scaled = (x - offset) / divisor  # (N, D) float64
        return _frozen(scaled.astype(np.float32).reshape((len(x), *info.input_shape)))

    def targets(y: np.ndarray) -> np.ndarray:
        if info.task == "regression":
            scaled = (y.reshape(len(y), info.num_outputs) - target_offset) / target_divisor
            return _frozen(scaled.astype(np.float32))
        return _frozen(y.astype(np.int64))

    return Dataset(
        info=info,
        x_train=features(x_train),
        y_train=targets(y_train),
        x_validation=features(x_validation),
        y_validation=targets(y_validation),
        x_test=features(x_test),
        y_test=targets(y_test),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def clear_cache() -> None:
    """Forget the datasets loaded in this process (the disk cache of raw arrays is kept)."""
    _load_resolved.cache_clear()
