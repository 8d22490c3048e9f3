"""TorchModel: a built network with its loss and canonical update, driven by the harness loop."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from harness.adapters.torch.losses import LossFunction, data_loss_function, prepare_targets
from harness.adapters.torch.layers import InvertedDropout
from harness.adapters.torch.network import Network, load_weights, read_weights
from harness.adapters.torch.optimizers import CanonicalUpdate

PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds memory on large splits


class TorchModel:
    """Implements harness.adapters.base.Model for PyTorch (float32 throughout).

    Args:
        network: modules plus the canonical view of their tensors.
        loss_name: canonical loss name (decides how targets are stored).
        data_loss: the torch function of that loss.
        penalty: returns the l1/l2 kernel penalty, or None when there is none.
        update: clipping, decoupled decay and the optimizer rule.
        device: where parameters and data live.
    """

    def __init__(
        self,
        network: Network,
        loss_name: str,
        data_loss: LossFunction,
        penalty: Callable[[], torch.Tensor] | None,
        update: CanonicalUpdate,
        device: torch.device,
    ) -> None:
        self.network = network
        self.loss_name = loss_name
        self.data_loss = data_loss
        self.penalty = penalty
        self.update = update
        self.device = device
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        # Several outputs (graph form): each output's loss (its own, or the trial's) and its weight
        # in the weighted mean sum_i(w_i * loss_i) / sum_i(w_i).
        self.output_names = [output.name for output in network.outputs]
        self.output_loss_names = [output.loss or loss_name for output in network.outputs]
        self.output_loss_functions = [data_loss_function(name) for name in self.output_loss_names]
        total_weight = sum(output.weight for output in network.outputs)
        self.output_shares = [output.weight / total_weight for output in network.outputs]
        self._targets: dict[str, torch.Tensor] = {}
        self.output_losses: dict[str, np.ndarray] = {}  # per output, each step's loss in the last train_epoch

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical-layout float32 arrays keyed by weight_key; resets optimizer state.

        Raises:
            ValueError: keys or shapes do not match the model.
        """
        load_weights(self.network, weights)
        self.update.reset()

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every trainable tensor as a float32 array in canonical layout."""
        return read_weights(self.network)

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once; steps only index it."""
        self._x = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        self._y = prepare_targets(self.loss_name, y, self.device)
        self._targets = {name: prepare_targets(name, y, self.device) for name in set(self.output_loss_names)}

    def train_epoch(self, batches: list[np.ndarray]) -> np.ndarray:
        """One optimizer step per index array; returns each step's data loss as float64 (steps,).

        The loss of a step is computed in its forward pass, before its update, in training mode
        (dropout active). The minimized objective adds the kernel penalties; the returned value
        does not. Non-finite losses are returned as they are (the loop detects divergence).

        Raises:
            RuntimeError: set_training_data was not called first.
        """
        if self._x is None or self._y is None:
            raise RuntimeError("call set_training_data before train_epoch")
        if not batches:
            self.output_losses = {name: np.zeros(0, dtype=np.float64) for name in self.output_names}
            return np.zeros(0, dtype=np.float64)
        if len(self.output_names) > 1:
            return self._train_epoch_outputs(batches)
        x, y = self._x, self._y
        module, data_loss, penalty, update = self.network.module, self.data_loss, self.penalty, self.update
        # all indices of the epoch in one tensor, split into views: one host->device copy
        sizes = [len(batch) for batch in batches]
        indices = torch.from_numpy(np.concatenate(batches).astype(np.int64, copy=False)).to(self.device)
        losses = []  # detached 0-d tensors, stacked once at the end: no per-step host sync
        module.train()
        for index in indices.split(sizes):
            loss = data_loss(module(x[index]), y[index])
            losses.append(loss.detach())
            objective = loss + penalty() if penalty is not None else loss
            update.zero_grad()
            objective.backward()
            update.step()
        result = torch.stack(losses).cpu().numpy().astype(np.float64)
        self.output_losses = {self.output_names[0]: result}
        return result

    def _train_epoch_outputs(self, batches: list[np.ndarray]) -> np.ndarray:
        """train_epoch for several outputs: minimizes the weighted mean of their losses (+ penalties)."""
        x, module, penalty, update = self._x, self.network.module, self.penalty, self.update
        targets = [self._targets[name] for name in self.output_loss_names]
        functions, shares = self.output_loss_functions, self.output_shares
        sizes = [len(batch) for batch in batches]
        indices = torch.from_numpy(np.concatenate(batches).astype(np.int64, copy=False)).to(self.device)
        totals, per_output = [], []
        module.train()
        for index in indices.split(sizes):
            outputs = module(x[index])
            losses = [function(output, target[index]) for function, output, target in zip(functions, outputs, targets)]
            loss = sum(share * value for share, value in zip(shares, losses))
            totals.append(loss.detach())
            per_output.append(torch.stack([value.detach() for value in losses]))
            objective = loss + penalty() if penalty is not None else loss
            update.zero_grad()
            objective.backward()
            update.step()
        table = torch.stack(per_output).cpu().numpy().astype(np.float64)  # (steps, outputs)
        self.output_losses = {name: table[:, i] for i, name in enumerate(self.output_names)}
        return torch.stack(totals).cpu().numpy().astype(np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The FIRST output in evaluation mode (dropout off, batch_norm on its running statistics),
        without gradients: float32 (N, outputs)."""
        return self.predict_outputs(x)[self.output_names[0]]

    def predict_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output in evaluation mode, by output name, float32 (N, ...) in canonical layout."""
        module = self.network.module
        module.eval()
        inputs = torch.tensor(np.asarray(x, dtype=np.float32))  # a copy: dataset arrays are read-only
        chunks: list[list[torch.Tensor]] = [[] for _ in self.output_names]
        with torch.inference_mode():
            for start in range(0, max(len(inputs), 1), PREDICT_CHUNK):
                outputs = module(inputs[start:start + PREDICT_CHUNK].to(self.device))
                for chunk, output in zip(chunks, outputs if len(chunks) > 1 else (outputs,)):
                    chunk.append(output.cpu())
        return {
            name: torch.cat(chunk).numpy().astype(np.float32, copy=False) for name, chunk in zip(self.output_names, chunks)
        }

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
                values = computed[1:len(network.to_last) + 1]
            arrays = []
            for value, permutation in zip(values, network.to_last):
                value = value.permute(permutation) if permutation else value
                arrays.append(value.cpu().numpy().astype(np.float32, copy=True))
        return arrays

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of data loss + penalties (training mode) on one batch, per canonical trainable key,
        before clipping. Restores what the pass touched: dropout generator states, buffers (batch_norm
        running statistics) and the parameters' .grad; no optimizer state is read or written."""
        module = self.network.module
        generators = {id(m.generator): m.generator for m in module.modules() if isinstance(m, InvertedDropout)}
        generator_states = {key: generator.get_state() for key, generator in generators.items()}
        # Everything the forward pass may move: registered buffers AND the state slots (batch_norm's
        # moving statistics are non-trainable Parameters, which module.buffers() does not list).
        state = list(module.buffers()) + [t for slot in self.network.slots if not slot.trainable for t in slot.tensors]
        buffers = [(tensor, tensor.detach().clone()) for tensor in state]
        parameters = self.network.parameters
        saved_grads = [parameter.grad for parameter in parameters]
        inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        try:
            module.train()
            outputs = module(inputs)
            if len(self.output_names) > 1:
                loss = sum(share * function(output, prepare_targets(name, y, self.device))
                           for share, function, name, output in zip(self.output_shares, self.output_loss_functions,
                                                                     self.output_loss_names, outputs))
            else:
                loss = self.data_loss(outputs, prepare_targets(self.loss_name, y, self.device))
            objective = loss + self.penalty() if self.penalty is not None else loss
            grads = torch.autograd.grad(objective, parameters, allow_unused=True)
        finally:
            for key, generator in generators.items():
                generator.set_state(generator_states[key])
            with torch.no_grad():
                for buffer, copy in buffers:
                    buffer.copy_(copy)
            for parameter, grad in zip(parameters, saved_grads):
                parameter.grad = grad
        by_tensor = {id(parameter): grad for parameter, grad in zip(parameters, grads)}
        result = {}
        for slot in self.network.slots:
            if not slot.trainable:
                continue
            arrays = []
            for tensor in slot.tensors:
                grad = by_tensor.get(id(tensor))
                arrays.append(np.zeros(tuple(tensor.shape), np.float32) if grad is None else grad.detach().cpu().numpy())
            result[slot.key] = np.array(slot.to_canonical(arrays), dtype=np.float32, order="C")
        return result
