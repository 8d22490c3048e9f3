"""How a TorchModel trains: one epoch of optimizer steps, and one batch's gradients for diagnostics.

Mirrors harness/adapters/keras/training.py, which does the same on each Keras backend. Both read
the model only through its public interface: `network`, `optimizer`, `device`,
`training_inputs`, `training_targets` and `objective_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.adapters.torch.layers import InvertedDropout

if TYPE_CHECKING:
    from harness.adapters.torch.model import TorchModel

# (epoch order, batch bounds, each step's learning rate or None) -> (steps, 1 + outputs): the minimized
# data loss, then each output's loss
EpochRunner = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def epoch_runner(model: TorchModel) -> EpochRunner:
    """Eager steps: forward in training mode, loss (+ penalties) backward, the canonical update.

    Each step's losses are computed in its forward pass, before its update; they stay on the
    device (detached 0-d tensors) and are copied to the host once per epoch, not once per step.
    """

    def runner(order: np.ndarray, bounds: np.ndarray, rates: np.ndarray | None) -> np.ndarray:
        x, targets = model.training_inputs, model.training_targets
        if x is None:  # train_epoch checks this before any runner is called
            raise RuntimeError("call set_training_data before train_epoch")
        module, optimizer = model.network.module, model.optimizer
        indices = torch.from_numpy(order).to(model.device)  # one host->device copy for the epoch's indices
        rows = []
        module.train()
        for step in range(len(bounds) - 1):
            index = indices[int(bounds[step]) : int(bounds[step + 1])]
            objective, losses = model.objective_of(module(x[index]), [target[index] for target in targets])
            rows.append(torch.stack([loss.detach() for loss in losses]))
            optimizer.zero_grad()
            objective.backward()
            if rates is not None:
                optimizer.set_learning_rate(float(rates[step]))
            optimizer.step()
        return torch.stack(rows).cpu().numpy()

    return runner


def objective_gradients(
    model: TorchModel, inputs: torch.Tensor, targets: list[torch.Tensor]
) -> list[torch.Tensor | None]:
    """Gradient of the objective (training mode) per `model.network.parameters` entry (None: unused), before
    clipping. Restores what the pass touched: dropout generator states, buffers (batch_norm running
    statistics) and the parameters' .grad; no optimizer state is read or written."""
    module = model.network.module
    generators = {id(m.generator): m.generator for m in module.modules() if isinstance(m, InvertedDropout)}
    generator_states = {key: generator.get_state() for key, generator in generators.items()}
    # Everything the forward pass may move: registered buffers AND the state slots (batch_norm's
    # moving statistics are non-trainable Parameters, which module.buffers() does not list).
    state = list(module.buffers()) + [t for slot in model.network.slots if not slot.trainable for t in slot.tensors]
    buffers = [(tensor, tensor.detach().clone()) for tensor in state]
    parameters = model.network.parameters
    saved_grads = [parameter.grad for parameter in parameters]
    try:
        module.train()
        objective, _ = model.objective_of(module(inputs), targets)
        return list(torch.autograd.grad(objective, parameters, allow_unused=True))
    finally:
        for key, generator in generators.items():
            generator.set_state(generator_states[key])
        with torch.no_grad():
            for buffer, copy in buffers:
                buffer.copy_(copy)
        for parameter, grad in zip(parameters, saved_grads):
            parameter.grad = grad
