"""KerasModel: a built Keras network with its canonical loss and optimizer, driven by the harness loop.

How an epoch and a batch's gradients run on each Keras backend is in harness.adapters.keras.training
(mirrored by harness.adapters.torch.training); this module holds the model's state and its public
interface, which is all the training functions read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from harness.adapters.common import output_losses, prediction_chunks, train_epoch
from harness.adapters.keras import state
from harness.adapters.keras.losses import loss_function, prepare_targets
from harness.adapters.keras.network import Network
from harness.adapters.keras.training import epoch_runner, objective_gradients, tensorflow_seedings


class KerasModel:
    """Implements harness.adapters.base.Model for Keras 3 (float32 throughout).

    Args:
        network: the Keras model plus the canonical view of its variables.
        loss_name: canonical loss name of the trial (an output's own loss overrides it).
        penalty: returns the l1/l2 kernel penalty, or None when there is none.
        optimizer: a Keras optimizer; the adapter passes the canonical one (optimizers.py).
        num_outputs: output units (reshapes regression targets).
        device: Keras device name the variables and steps live on ('cpu:0', 'gpu:0').
    """

    def __init__(
        self,
        network: Network,
        loss_name: str,
        penalty: Callable[[], Any] | None,
        optimizer: keras.optimizers.Optimizer,
        num_outputs: int,
        device: str = "cpu:0",
    ) -> None:
        self.network = network
        self.loss_name = loss_name
        self.penalty = penalty
        self.optimizer = optimizer
        self.num_outputs = num_outputs
        self.device = device
        self.backend = keras.backend.backend()
        self.trainable_variables = list(network.model.trainable_variables)  # what the optimizer updates, in its order
        with keras.device(device):
            optimizer.build(self.trainable_variables)
        # set_weights restores these: iteration 0, zero (or initial_accumulator) slots, lr.
        self._optimizer_start = [np.array(v.numpy()) for v in optimizer.variables]
        # each output's loss (its own, or the trial's) and its share of the minimized weighted mean
        self.losses = output_losses(network.outputs, loss_name, loss_function)
        self.training_inputs: Any = None  # the training split on the device (N, ...)
        self.training_targets: list[Any] = []  # one target tensor per output, in the form its loss consumes
        self.output_losses: dict[str, np.ndarray] = {}  # per output, each step's loss in the last train_epoch
        self._trainable_index = {id(variable): index for index, variable in enumerate(self.trainable_variables)}
        # seconds spent tracing and compiling this model's functions (training.py; the forward below), over
        # its whole life: the loop reads how much it grew inside a timed region and moves that to compile_seconds
        self.compile_seconds = 0.0
        self.reuse_key: str | None = None  # set by KerasAdapter.build: which later trials may reuse this model
        self.reused = False  # True once KerasAdapter.build handed it to a later trial (restarted)
        self._run_epoch = epoch_runner(self)
        self._forward = _make_forward(self)

    # --- weights ------------------------------------------------------------------------

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical-layout float32 arrays keyed by weight_key (batch_norm state too); resets optimizer state.

        Raises:
            ValueError: keys or shapes do not match the model.
        """
        expected = self.network.variables
        if set(weights) != set(expected):
            missing, unknown = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise ValueError(
                f"set_weights: missing keys {missing}, unknown keys {unknown}; the model has {list(expected)}"
            )
        for key, variable in expected.items():
            value = np.asarray(weights[key], dtype=np.float32)
            if value.shape != tuple(variable.shape):
                raise ValueError(
                    f"set_weights: {key!r} has shape {value.shape}, the model expects {tuple(variable.shape)}"
                )
            variable.assign(value)
        for variable, start in zip(self.optimizer.variables, self._optimizer_start):
            variable.assign(start)

    def restart_optimizer(self, learning_rate: float) -> None:
        """Put the optimizer back where a newly built one with this learning rate starts (iteration 0,
        initial slots), for a reused model (harness.adapters.keras.reuse); set_weights then keeps it there."""
        lr_index = next(i for i, v in enumerate(self.optimizer.variables) if v is self.optimizer.learning_rate)
        dtype = self._optimizer_start[lr_index].dtype
        self._optimizer_start[lr_index] = np.array(learning_rate, dtype=dtype)  # what add_variable stores
        for variable, start in zip(self.optimizer.variables, self._optimizer_start):
            variable.assign(start)

    def clear_training_data(self) -> None:
        """Drop the training split from the device (a model kept for reuse holds no data)."""
        self.training_inputs, self.training_targets, self.output_losses = None, [], {}

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every canonical tensor (weights and batch_norm state) as a float32 array; Keras' layout is canonical."""
        return {key: np.array(variable.numpy(), dtype=np.float32) for key, variable in self.network.variables.items()}

    # --- training -----------------------------------------------------------------------

    def training_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything the next step reads (weights, optimizer and RNG state) as (arrays, JSON values),
        for checkpoints: harness.adapters.keras.state."""
        return state.training_state(self)

    def restore_training_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Take back what training_state returned (a model built from the same spec); ValueError if it does not fit."""
        state.restore_training_state(self, arrays, meta)

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once; steps only index it."""
        with keras.device(self.device):
            self.training_inputs = ops.convert_to_tensor(np.asarray(x, dtype=np.float32))
            self.training_targets = self.targets(y)

    def targets(self, y: np.ndarray) -> list[Any]:
        """`y` as tensors in the form each output's loss consumes (prepared once per loss), in output order."""
        prepared = {
            name: ops.convert_to_tensor(prepare_targets(name, y, self.num_outputs))
            for name in set(self.losses.loss_names)
        }
        return [prepared[name] for name in self.losses.loss_names]

    def train_epoch(self, batches: list[np.ndarray], learning_rates: np.ndarray | None = None) -> np.ndarray:
        """harness.adapters.base.Model.train_epoch; RuntimeError before set_training_data."""
        if self.training_inputs is None:
            raise RuntimeError("call set_training_data before train_epoch")
        with keras.device(self.device):
            losses, self.output_losses = train_epoch(self._run_epoch, batches, self.losses.names, learning_rates)
        return losses

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The FIRST output in evaluation mode (dropout off, batch_norm on its moving statistics): float32 (N, ...)."""
        return self.predict_outputs(x)[self.losses.names[0]]

    def predict_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output in evaluation mode, by output name, float32 (N, ...) in canonical (channels-last) layout."""
        chunks = self._in_chunks(self._forward, x)
        return {name: chunks[i] for i, name in enumerate(self.losses.names)}

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Evaluation-mode output of every layer in plan order, float32, channels-last (a dense or conv
        layer's output is after its activation). For diagnostics; not a training path."""
        layer_model = self.network.layer_model
        return self._in_chunks(lambda batch: layer_model(ops.convert_to_tensor(batch), training=False), x)

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of the minimized objective (data loss + penalties, training mode) on one batch, per
        canonical key of every trainable tensor, before clipping. Changes nothing: batch_norm's moving
        statistics and the dropout seed state are restored, no optimizer state is touched."""
        state = list(self.network.model.non_trainable_variables)
        saved = [np.array(variable.numpy()) for variable in state]
        with keras.device(self.device):
            inputs = ops.convert_to_tensor(np.asarray(x, dtype=np.float32))
            targets = self.targets(y)
            try:
                values = objective_gradients(self, inputs, targets)
            finally:
                for variable, value in zip(state, saved):
                    variable.assign(value)
        result = {}
        for key, variable in self.network.variables.items():
            if variable.trainable:
                value = values[self._trainable_index[id(variable)]]
                result[key] = (
                    np.zeros(tuple(variable.shape), np.float32)
                    if value is None
                    else np.asarray(ops.convert_to_numpy(value), np.float32)
                )
        return result

    def _in_chunks(self, function: Callable[[np.ndarray], Any], x: np.ndarray) -> list[np.ndarray]:
        """Apply a forward function returning one tensor or a list of them to x in chunks of
        common.PREDICT_CHUNK rows; return one concatenated float32 array per returned tensor."""
        x = np.asarray(x, dtype=np.float32)
        pieces: list[list[np.ndarray]] = []
        with keras.device(self.device):
            for rows in prediction_chunks(len(x)):
                outputs = function(x[rows])
                outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
                if not pieces:
                    pieces = [[] for _ in outputs]
                for piece, output in zip(pieces, outputs):
                    piece.append(ops.convert_to_numpy(output))
        return [np.concatenate(piece).astype(np.float32, copy=False) for piece in pieces]

    # --- the pieces the runners share ----------------------------------------------------

    def objective(self, x: Any, targets: list[Any]) -> tuple[Any, Any]:
        """(objective, losses) of one batch in training mode. losses (1 + outputs,): the data loss (the
        weighted mean of the outputs' losses), then each output's loss; objective = data loss + penalty."""
        return self.objective_of(self.network.model(x, training=True), targets)

    def objective_of(self, outputs: Any, targets: list[Any]) -> tuple[Any, Any]:
        """objective() from the model's training-mode outputs (one tensor, or a list for several outputs)."""
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        losses = [function(output, target) for function, output, target in zip(self.losses.functions, outputs, targets)]
        data_loss = (
            losses[0] if len(losses) == 1 else sum(share * loss for share, loss in zip(self.losses.shares, losses))
        )
        objective = data_loss + self.penalty() if self.penalty is not None else data_loss
        return objective, ops.stack([ops.cast(loss, "float32") for loss in (data_loss, *losses)])


def _make_forward(model: KerasModel) -> Callable[[np.ndarray], Any]:
    """The evaluation-mode forward pass. TensorFlow: a tf.function, traced on first use and instantiated by
    one call on a zero-filled row (evaluation mode moves no state), again whenever TensorFlow's caches
    lost it (training.note_tensorflow_seeded); timed into model.compile_seconds."""
    network = model.network.model
    if model.backend == "tensorflow":
        import tensorflow as tf

        input_shape = tuple(network.inputs[0].shape[1:])

        @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
        def forward(x: Any) -> Any:
            return network(x, training=False)

        instantiated: list[int] = []  # the tensorflow_seedings() count it was last instantiated at (training.py)

        def compiled_forward(x: Any) -> Any:
            if instantiated != [tensorflow_seedings()]:
                started = time.perf_counter()
                forward.get_concrete_function()  # traces once; later calls return the trace
                forward(tf.zeros((1, *input_shape), tf.float32))
                model.compile_seconds += time.perf_counter() - started
                instantiated[:] = [tensorflow_seedings()]
            return forward(x)

        return compiled_forward
    return lambda x: network(ops.convert_to_tensor(x), training=False)
