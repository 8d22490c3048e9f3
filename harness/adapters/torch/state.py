"""A TorchModel's whole training state as numpy arrays plus JSON, for checkpoints (harness.adapters.checkpoints).

Mirrors harness/adapters/keras/state.py. The state is everything the next optimizer step reads:
every module tensor (`state_dict`: weights, batch_norm running statistics, non-trainable slots),
the optimizer's per-parameter state and parameter groups, and the RNG states (each dropout
generator, and torch's global generator). Restoring it into a model built from the same spec
makes the following steps bit-identical to a model that never stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from harness.adapters.torch.model import TorchModel

MODULE, OPTIMIZER, RNG = "module/", "optimizer/", "rng/"


def _generators(model: TorchModel) -> list[torch.Generator]:
    """The model's own generators (dropout masks), once each, in module order."""
    found: dict[int, torch.Generator] = {}
    for module in model.network.module.modules():
        generator = getattr(module, "generator", None)
        if isinstance(generator, torch.Generator):
            found.setdefault(id(generator), generator)
    return list(found.values())


def training_state(model: TorchModel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, JSON-able values): module tensors, optimizer state, RNG states (copies)."""
    arrays: dict[str, np.ndarray] = {}
    for key, tensor in model.network.module.state_dict().items():
        arrays[MODULE + key] = tensor.detach().cpu().numpy().copy()
    saved = model.optimizer.optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in saved["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                arrays[f"{OPTIMIZER}{index}/{name}"] = value.detach().cpu().numpy().copy()
            else:  # a number or None (SGD's momentum_buffer without momentum)
                scalars.setdefault(str(index), {})[name] = value
    for index, generator in enumerate(_generators(model)):
        arrays[f"{RNG}{index}"] = generator.get_state().numpy().copy()
    arrays[RNG + "global"] = torch.get_rng_state().numpy().copy()
    meta = {"param_groups": saved["param_groups"], "optimizer_scalars": scalars, "generators": len(_generators(model))}
    return arrays, meta


def restore_training_state(model: TorchModel, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Load what training_state returned into a model built from the same spec.

    Raises:
        ValueError: the state does not fit this model (other tensors, shapes, or generators).
    """
    module = model.network.module
    tensors = {
        key[len(MODULE) :]: torch.from_numpy(value.copy()) for key, value in arrays.items() if key.startswith(MODULE)
    }
    module.load_state_dict(tensors, strict=True)  # copies into the existing tensors, on their device
    state: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        if key.startswith(OPTIMIZER):
            index, name = key[len(OPTIMIZER) :].split("/", 1)
            state.setdefault(int(index), {})[name] = torch.from_numpy(value.copy()).to(_device_of(model, name))
    for position, slots in meta["optimizer_scalars"].items():
        state.setdefault(int(position), {}).update(slots)
    model.optimizer.reset()
    model.optimizer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    generators = _generators(model)
    if len(generators) != meta["generators"]:
        raise ValueError(f"the checkpoint has {meta['generators']} generators, the model {len(generators)}")
    for number, generator in enumerate(generators):
        generator.set_state(torch.from_numpy(arrays[f"{RNG}{number}"].copy()))
    torch.set_rng_state(torch.from_numpy(arrays[RNG + "global"].copy()))


def _device_of(model: TorchModel, name: str) -> torch.device:
    """Where an optimizer state tensor lives: 'step' counters stay on the CPU (torch's own rule for
    non-capturable optimizers), the moments beside the parameters."""
    return torch.device("cpu") if name == "step" else model.device
