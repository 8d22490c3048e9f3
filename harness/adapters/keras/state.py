"""A KerasModel's whole training state as numpy arrays plus JSON, for checkpoints (harness.adapters.checkpoints).

Mirrors harness/adapters/torch/state.py. In Keras 3 everything the next step reads is a variable:
the model's (weights, batch_norm moving statistics, and each dropout layer's seed generator state)
and the optimizer's (iteration count, moments, accumulators, learning rate). They are saved by
position, with their paths and shapes, so a model built from the same spec takes them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.adapters.keras.model import KerasModel

MODEL, OPTIMIZER = "model/", "optimizer/"


def _groups(model: KerasModel) -> dict[str, list[Any]]:
    return {MODEL: list(model.network.model.variables), OPTIMIZER: list(model.optimizer.variables)}


def training_state(model: KerasModel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, JSON-able values): every model and optimizer variable (copies), and their paths."""
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, list[str]] = {}
    for prefix, variables in _groups(model).items():
        paths[prefix] = [variable.path for variable in variables]
        for index, variable in enumerate(variables):
            arrays[f"{prefix}{index}"] = np.array(variable.numpy())
    return arrays, {"paths": paths}


def restore_training_state(model: KerasModel, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Assign what training_state returned to a model built from the same spec.

    Raises:
        ValueError: the state does not fit this model (other variables or shapes).
    """
    for prefix, variables in _groups(model).items():
        saved_paths = meta["paths"][prefix]
        if len(saved_paths) != len(variables):
            raise ValueError(f"the checkpoint has {len(saved_paths)} {prefix} variables, the model {len(variables)}")
        for index, variable in enumerate(variables):
            value = arrays[f"{prefix}{index}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{variable.path}: checkpoint shape {value.shape}, model {tuple(variable.shape)}")
            variable.assign(value)
