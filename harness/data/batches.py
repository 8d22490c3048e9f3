"""Batch order drawn by the harness from the trial seed, so every backend sees the same batches."""

from __future__ import annotations

import numpy as np

from harness.spec.init import BATCH_STREAM
from harness.spec.types import TrainingSpec


def epoch_batches(num_samples: int, training: TrainingSpec, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays (int64) of the minibatches of one epoch (epochs count from 1).

    shuffle=True: a permutation drawn from default_rng([seed, BATCH_STREAM, epoch]), so the
    order of epoch k does not depend on how many epochs ran before (resumable, reproducible).
    shuffle=False: samples in order. The last batch may be smaller unless drop_last.
    """
    if training.shuffle:
        order = np.random.default_rng([seed, BATCH_STREAM, epoch]).permutation(num_samples)
    else:
        order = np.arange(num_samples)
    size = training.batch_size
    stop = num_samples - num_samples % size if training.drop_last else num_samples
    return [order[start : min(start + size, stop)] for start in range(0, stop, size)]
