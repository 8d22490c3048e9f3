"""The dataset contract every adapter consumes: numpy arrays, fixed splits, static metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The tasks and what the training loop records per split for each (harness.adapters.metrics computes
# them) are declared once in harness.measures; re-exported here, where the dataset contract lives.
from harness.measures import MEASURES, TASK_MEASURES, TASKS

__all__ = ["MEASURES", "TASKS", "TASK_MEASURES", "Dataset", "DatasetInfo"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, known WITHOUT generating or loading it (validate needs them)."""

    name: str
    # 'classification' (integer labels 0..C-1) | 'binary' (labels 0/1) | 'regression' (float targets) |
    # 'sequence' (label strings of classes 1..C-1, padded with 0, for the ctc loss)
    task: str
    input_shape: tuple[int, ...]  # one sample, no batch axis: (40,) for MNIST-1D vectors
    num_outputs: int  # output units the model needs: C classes, 1 for binary, K targets for regression
    num_classes: int | None  # None for regression; sequence: the symbols plus the ctc blank (class 0)
    description: str = ""
    target_length: int | None = None  # sequence: the longest label string, the width of y


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test splits as arrays.

    x: float32, shape (N, *input_shape). y: int64 (N,) for classification and binary,
    float32 (N, K) for regression, int64 (N, target_length) for sequence (each row a label
    string of classes >= 1, then 0s). Splits are fixed per dataset, or drawn from the trial's
    seed under `resplit: per_seed`; standardization, where applied, is fitted on the training split only.
    """

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray  # may have 0 rows when no validation fraction is asked for
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
