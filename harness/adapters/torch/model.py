"""TorchModel: a built network with its loss and canonical update, driven by the harness loop.

How an epoch and a batch's gradients run is in harness.adapters.torch.training (mirrored by
harness.adapters.keras.training); this module holds the model's state and its public interface.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import torch

from harness.adapters.common import output_losses, prediction_chunks, train_epoch
from harness.adapters.torch import state
from harness.adapters.torch.losses import loss_function, prepare_targets
from harness.adapters.torch.network import Network, load_weights, read_weights
from harness.adapters.torch.optimizers import CanonicalOptimizer
from harness.adapters.torch.training import epoch_runner, objective_gradients


class TorchModel:
    """Implements harness.adapters.base.Model for PyTorch (float32 throughout).

    Args:
        network: modules plus the canonical view of their tensors.
        loss_name: canonical loss name of the trial (an output's own loss overrides it).
        penalty: returns the l1/l2 kernel penalty, or None when there is none.
        optimizer: clipping, decoupled decay and the optimizer rule (optimizers.make_optimizer).
        device: where parameters and data live.
    """

    def __init__(
        self,
        network: Network,
        loss_name: str,
        penalty: Callable[[], torch.Tensor] | None,
        optimizer: CanonicalOptimizer,
        device: torch.device,
    ) -> None:
        self.network = network
        self.loss_name = loss_name
        self.penalty = penalty
        self.optimizer = optimizer
        self.device = device
        self.losses = output_losses(network.outputs, loss_name, loss_function)
        # What a step minimizes, one loss per target: with one output, the trial's loss; with
        # several, each output's (weighted by self.losses.shares).
        self.target_loss_names = (loss_name,) if len(self.losses.names) == 1 else self.losses.loss_names
        self.target_functions = tuple(loss_function(name) for name in self.target_loss_names)
        self.training_inputs: torch.Tensor | None = None  # the training split on the device (N, ...)
        self.training_targets: list[torch.Tensor] = []  # its targets, one per target_loss_names entry
        self.output_losses: dict[str, np.ndarray] = {}  # per output, each step's loss in the last train_epoch
        self._run_epoch = epoch_runner(self)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical-layout float32 arrays keyed by weight_key; resets optimizer state.

        Raises:
            ValueError: keys or shapes do not match the model.
        """
        load_weights(self.network, weights)
        self.optimizer.reset()

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every trainable tensor as a float32 array in canonical layout."""
        return read_weights(self.network)

    def training_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything the next step reads (weights, optimizer and RNG state) as (arrays, JSON values),
        for checkpoints: harness.adapters.torch.state."""
        return state.training_state(self)

    def restore_training_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Take back what training_state returned (a model built from the same spec); ValueError if it does not fit."""
        state.restore_training_state(self, arrays, meta)

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once; steps only index it."""
        self.training_inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        self.training_targets = self.targets(y)

    def targets(self, y: np.ndarray) -> list[torch.Tensor]:
        """`y` on the device in the form each of target_loss_names consumes (prepared once per loss)."""
        prepared = {name: prepare_targets(name, y, self.device) for name in set(self.target_loss_names)}
        return [prepared[name] for name in self.target_loss_names]

    def train_epoch(self, batches: list[np.ndarray], learning_rates: np.ndarray | None = None) -> np.ndarray:
        """harness.adapters.base.Model.train_epoch; RuntimeError before set_training_data."""
        if self.training_inputs is None:
            raise RuntimeError("call set_training_data before train_epoch")
        losses, self.output_losses = train_epoch(self._run_epoch, batches, self.losses.names, learning_rates)
        return losses

    def objective_of(
        self, outputs: torch.Tensor | tuple[torch.Tensor, ...], targets: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(objective, losses) of a batch from the module's training-mode outputs (a tuple for several):
        losses = [data loss (the weighted mean of the outputs' losses), each output's loss];
        objective = data loss + penalty."""
        per_output = outputs if len(self.target_functions) > 1 else (outputs,)
        losses = [
            function(output, target) for function, output, target in zip(self.target_functions, per_output, targets)
        ]
        # reduce, not sum: the same additions without sum's leading `0 +` (a Tensor, never the int 0)
        data_loss = (
            losses[0]
            if len(losses) == 1
            else reduce(operator.add, [share * loss for share, loss in zip(self.losses.shares, losses)])
        )
        objective = data_loss + self.penalty() if self.penalty is not None else data_loss
        return objective, [data_loss, *losses]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The FIRST output in evaluation mode (dropout off, batch_norm on its running statistics),
        without gradients: float32 (N, outputs)."""
        return self.predict_outputs(x)[self.losses.names[0]]

    def predict_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output in evaluation mode, by output name, float32 (N, ...) in canonical layout."""
        module, names = self.network.module, self.losses.names
        module.eval()
        inputs = torch.tensor(np.asarray(x, dtype=np.float32))  # a copy: dataset arrays are read-only
        chunks: list[list[torch.Tensor]] = [[] for _ in names]
        with torch.inference_mode():
            for rows in prediction_chunks(len(inputs)):
                outputs = module(inputs[rows].to(self.device))
                for chunk, output in zip(chunks, outputs if len(chunks) > 1 else (outputs,)):
                    chunk.append(output.cpu())
        return {name: torch.cat(chunk).numpy().astype(np.float32, copy=False) for name, chunk in zip(names, chunks)}

    # -- diagnostics (harness.diagnostics computes every statistic from these, in numpy) ----------

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Evaluation-mode output of every layer, in plan order, float32 channels-last (N, ...).

        A stack is run child by child and read at each plan's last module (a dense layer's
        activation module belongs to its plan, so its output is after the activation); a graph
        is run node by node as `Graph.forward` does.
        """
        module, network = self.network.module, self.network
        module.eval()
        inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        values: list[torch.Tensor] = []
        with torch.inference_mode():
            if isinstance(module, torch.nn.Sequential):
                children = list(module.children())
                value, start = inputs, 0
                for end in network.plan_ends:
                    for child in children[start:end]:
                        value = child(value)
                    values.append(value)
                    start = end
            else:
                computed = [inputs]
                for node, sources in zip(module.nodes, module.sources):
                    computed.append(node(*[computed[s] for s in sources]))
                values = computed[1 : len(network.to_last) + 1]
            arrays = []
            for value, permutation in zip(values, network.to_last):
                value = value.permute(permutation) if permutation else value
                arrays.append(value.cpu().numpy().astype(np.float32, copy=True))
        return arrays

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of data loss + penalties (training mode) on one batch, per canonical trainable key,
        before clipping. Changes nothing (see training.objective_gradients)."""
        inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        grads = objective_gradients(self, inputs, self.targets(y))
        by_tensor = {id(parameter): grad for parameter, grad in zip(self.network.parameters, grads)}
        result = {}
        for slot in self.network.slots:
            if not slot.trainable:
                continue
            arrays = []
            for tensor in slot.tensors:
                grad = by_tensor.get(id(tensor))
                arrays.append(
                    np.zeros(tuple(tensor.shape), np.float32) if grad is None else grad.detach().cpu().numpy()
                )
            result[slot.key] = np.array(slot.to_canonical(arrays), dtype=np.float32, order="C")
        return result
