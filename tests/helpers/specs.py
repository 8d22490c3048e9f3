"""TrialSpecs and small in-memory datasets for the adapter and layer tests (no framework import)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.data.types import DatasetInfo
from harness.spec import (
    DatasetSpec,
    RegularizerSpec,
    TrainingSpec,
    TrialSpec,
    resolve_component,
    resolve_model,
)

# loss name -> DatasetInfo.task it trains on
TASKS = {"cross_entropy": "classification", "binary_cross_entropy": "binary", "mse": "regression"}
# the default network of the optimizer/loss/regularizer tests: dense(6, tanh) -> dense(outputs)
DENSE_TANH = ({"dense": {"units": 6, "activation": "tanh"}}, {"dense": {}})


def trial_spec(
    model: Mapping[str, Any] | Sequence[Mapping[str, Any]] = DENSE_TANH,
    num_outputs: int = 3,
    *,
    loss: str = "cross_entropy",
    optimizer: Any = "sgd",
    initializer: Any = "he_normal",
    regularizer: RegularizerSpec | None = None,
    init_mode: str = "shared",
    seed: int = 0,
    epochs: int = 1,
    batch_size: int = 8,
    shuffle: bool = True,
    dataset: DatasetSpec | None = None,
    backend: str = "torch",
    device: str = "cpu",
    input_shape: tuple[int, ...] | None = None,
    dropout: float = 0.0,
) -> TrialSpec:
    """A TrialSpec, on the in-memory 'arrays' dataset unless `dataset` says otherwise.

    Args:
        model: a raw model ({"layers": [...]}, a family shorthand, {"graph": ...}) or a list of layers.
        num_outputs: units of the model's head (classes, 1 for binary, targets for regression).
        optimizer, initializer: a component name or a {name: ..., **params} mapping.
        input_shape: needed by families that choose conv1d or conv2d from it (cnn, lenet5).
        dropout: the regularizer's dropout rate as families insert it.
    Other arguments: the TrialSpec fields of the same names.
    """
    raw = model if isinstance(model, Mapping) else {"layers": list(model)}
    return TrialSpec(
        dataset=dataset or DatasetSpec("arrays"),
        model=resolve_model(raw, num_outputs, dropout=dropout, input_shape=input_shape),
        loss=resolve_component("loss", loss, "loss"),
        optimizer=resolve_component("optimizer", optimizer, "optimizer"),
        initializer=resolve_component("initializer", initializer, "initializer"),
        regularizer=regularizer or RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=batch_size, shuffle=shuffle),
        seed=seed,
        backend=backend,
        init_mode=init_mode,
        device=device,
    )


def arrays_info(input_shape: tuple[int, ...], num_outputs: int = 3, loss: str = "mse") -> DatasetInfo:
    """The DatasetInfo an adapter builds a model for: `num_outputs` classes, or as many regression targets."""
    classes = {"cross_entropy": num_outputs, "binary_cross_entropy": 2}.get(loss)
    return DatasetInfo("arrays", TASKS[loss], tuple(input_shape), num_outputs, classes)


def labelled_arrays(
    loss: str, num_samples: int = 32, features: int = 5, outputs: int = 3, seed: int = 1
) -> tuple[DatasetInfo, np.ndarray, np.ndarray]:
    """(info, x, y): standard-normal float32 features and targets the loss expects.

    y: int64 classes 0..outputs-1 (cross_entropy), int64 0/1 (binary_cross_entropy, the model has
    ONE output whatever `outputs` says), or float32 (num_samples, outputs) (mse).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_samples, features)).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, outputs, num_samples).astype(np.int64)
    elif loss == "binary_cross_entropy":
        y, outputs = rng.integers(0, 2, num_samples).astype(np.int64), 1
    else:
        y = rng.normal(size=(num_samples, outputs)).astype(np.float32)
    return arrays_info((features,), outputs, loss), x, y
