"""KerasModel: a built Keras network with its canonical loss and optimizer, driven by the harness loop.

How a step runs depends on the Keras backend (each has its own way to take gradients):
    tensorflow  one `tf.function` per EPOCH: a `tf.range` loop over the epoch's steps
                (gather the epoch's samples once, slice each batch, GradientTape, apply),
                returning the per-step loss vector. One host round trip per epoch is what
                beats `model.fit`, which returns to Python between steps.
    torch       an eager loop; gradients from `torch.autograd.grad` of the Keras variables'
                torch tensors (what Keras' own torch trainer does).
    jax         a jitted stateless step (`stateless_call`, `jax.value_and_grad`,
                `optimizer.stateless_apply`), variables written back once per epoch.
Everything else (network, loss, penalty, optimizer rule) is the same `keras.ops` code.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from harness.adapters.keras.losses import LossFunction, loss_function, prepare_targets
from harness.adapters.keras.network import Network

PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds memory on large splits
# (epoch order, batch bounds) -> (steps, 1 + outputs): the minimized data loss, then each output's loss
EpochRunner = Callable[[np.ndarray, np.ndarray], np.ndarray]
RETRACING_MESSAGE = "triggered tf.function retracing"


class KerasModel:
    """Implements harness.adapters.base.Model for Keras 3 (float32 throughout).

    Args:
        network: the Keras model plus the canonical view of its variables.
        loss_name: canonical loss name (decides how targets are stored).
        data_loss: the keras.ops function of that loss, (targets, outputs) -> scalar.
        penalty: returns the l1/l2 kernel penalty, or None when there is none.
        optimizer: a Keras optimizer; the adapter passes the canonical one (optimizers.py).
        num_outputs: output units (reshapes regression targets).
        device: Keras device name the variables and steps live on ('cpu:0', 'gpu:0').
    """

    def __init__(
        self,
        network: Network,
        loss_name: str,
        data_loss: LossFunction,
        penalty: Callable[[], Any] | None,
        optimizer: keras.optimizers.Optimizer,
        num_outputs: int,
        device: str = "cpu:0",
    ) -> None:
        self.network = network
        self.loss_name = loss_name
        self.data_loss = data_loss
        self.penalty = penalty
        self.optimizer = optimizer
        self.num_outputs = num_outputs
        self.device = device
        self.backend = keras.backend.backend()
        self._trainable = list(network.model.trainable_variables)
        with keras.device(device):
            optimizer.build(self._trainable)
        # set_weights restores these: iteration 0, zero (or initial_accumulator) slots, lr.
        self._optimizer_start = [np.array(v.numpy()) for v in optimizer.variables]
        self._x: Any = None
        self._y: Any = None
        # Several outputs (graph form): each output's loss (its own, or the trial's) and its share
        # w_i / sum_j(w_j) of the minimized weighted mean sum_i(w_i * loss_i) / sum_j(w_j).
        self.output_names = [output.name for output in network.outputs]
        self.output_loss_names = [output.loss or loss_name for output in network.outputs]
        self.output_loss_functions = [loss_function(name) for name in self.output_loss_names]
        total_weight = sum(output.weight for output in network.outputs)
        self.output_shares = [output.weight / total_weight for output in network.outputs]
        self._targets: list[Any] = []  # one target tensor per output, in the form its loss consumes
        self.output_losses: dict[str, np.ndarray] = {}  # per output, each step's loss in the last train_epoch
        self._trainable_index = {id(variable): index for index, variable in enumerate(self._trainable)}
        self._run_epoch: EpochRunner = _EPOCH_RUNNERS[self.backend](self)
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

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every canonical tensor (weights and batch_norm state) as a float32 array; Keras' layout is canonical."""
        return {
            key: np.array(variable.numpy(), dtype=np.float32)
            for key, variable in self.network.variables.items()
        }

    # --- training -----------------------------------------------------------------------

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once; steps only index it."""
        with keras.device(self.device):
            self._x = ops.convert_to_tensor(np.asarray(x, dtype=np.float32))
            self._y = ops.convert_to_tensor(prepare_targets(self.loss_name, y, self.num_outputs))
            prepared = {name: ops.convert_to_tensor(prepare_targets(name, y, self.num_outputs)) for name in set(self.output_loss_names)}
            self._targets = [prepared[name] for name in self.output_loss_names]

    def train_epoch(self, batches: list[np.ndarray]) -> np.ndarray:
        """One optimizer step per index array; returns each step's data loss as float64 (steps,).

        The loss of a step is computed in its forward pass, before its update, in training mode
        (dropout active). The minimized objective adds the kernel penalties; the returned value
        does not. Non-finite losses are returned as they are (the loop detects divergence).

        Raises:
            RuntimeError: set_training_data was not called first.
        """
        if self._x is None:
            raise RuntimeError("call set_training_data before train_epoch")
        if not batches:
            self.output_losses = {name: np.zeros(0, dtype=np.float64) for name in self.output_names}
            return np.zeros(0, dtype=np.float64)
        order = np.concatenate(batches).astype(np.int64, copy=False)
        bounds = np.concatenate([[0], np.cumsum([len(batch) for batch in batches])]).astype(np.int64)
        with keras.device(self.device):
            table = np.asarray(self._run_epoch(order, bounds), dtype=np.float64)  # (steps, 1 + outputs)
        self.output_losses = {name: table[:, 1 + i] for i, name in enumerate(self.output_names)}
        return table[:, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The FIRST output in evaluation mode (dropout off, batch_norm on its moving statistics): float32 (N, ...)."""
        return self.predict_outputs(x)[self.output_names[0]]

    def predict_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output in evaluation mode, by output name, float32 (N, ...) in canonical (channels-last) layout."""
        chunks = self._in_chunks(self._forward, x)
        return {name: chunks[i] for i, name in enumerate(self.output_names)}

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
            prepared = {name: ops.convert_to_tensor(prepare_targets(name, y, self.num_outputs)) for name in set(self.output_loss_names)}
            targets = [prepared[name] for name in self.output_loss_names]
            try:
                values = _GRADIENTS[self.backend](self, inputs, targets)
            finally:
                for variable, value in zip(state, saved):
                    variable.assign(value)
        result = {}
        for key, variable in self.network.variables.items():
            if variable.trainable:
                value = values[self._trainable_index[id(variable)]]
                result[key] = np.zeros(tuple(variable.shape), np.float32) if value is None else np.asarray(ops.convert_to_numpy(value), np.float32)
        return result

    def _in_chunks(self, function: Callable[[np.ndarray], Any], x: np.ndarray) -> list[np.ndarray]:
        """Apply a forward function returning one tensor or a list of them to x in PREDICT_CHUNK rows;
        return one concatenated float32 array per returned tensor."""
        x = np.asarray(x, dtype=np.float32)
        pieces: list[list[np.ndarray]] = []
        with keras.device(self.device):
            for start in range(0, max(len(x), 1), PREDICT_CHUNK):
                outputs = function(x[start:start + PREDICT_CHUNK])
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
        losses = [function(target, output) for function, target, output in zip(self.output_loss_functions, targets, outputs)]
        if len(losses) == 1:
            data_loss = losses[0]
        else:
            data_loss = sum(share * loss for share, loss in zip(self.output_shares, losses))
        objective = data_loss + self.penalty() if self.penalty is not None else data_loss
        return objective, ops.stack([ops.cast(loss, "float32") for loss in (data_loss, *losses)])


def _make_forward(model: KerasModel) -> Callable[[np.ndarray], Any]:
    network = model.network.model
    if model.backend == "tensorflow":
        import tensorflow as tf

        input_shape = tuple(network.inputs[0].shape[1:])

        @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
        def forward(x: Any) -> Any:
            return network(x, training=False)

        return forward
    return lambda x: network(ops.convert_to_tensor(x), training=False)


class _DropRetracingWarning:
    """logging filter: drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing".

    Every KerasModel traces its own epoch function (its variables are captured), so a process that
    builds many models (parity over many arms, a worker running many trials) trips TensorFlow's
    heuristic for a function re-created in a loop. Here that is by design, not a performance bug.
    """

    def filter(self, record: Any) -> bool:
        return RETRACING_MESSAGE not in record.getMessage()


_retracing_filter_installed = False


def _silence_retracing_warning(tf: Any) -> None:
    global _retracing_filter_installed
    if not _retracing_filter_installed:
        tf.get_logger().addFilter(_DropRetracingWarning())
        _retracing_filter_installed = True


def _target_specs(model: KerasModel, tf: Any) -> list[Any]:
    """One TensorSpec per output target, as losses.prepare_targets stores it."""
    specs = {"cross_entropy": tf.TensorSpec((None,), tf.int32), "ctc": tf.TensorSpec((None, None), tf.int32)}
    return [specs.get(name, tf.TensorSpec((None, None), tf.float32)) for name in model.output_loss_names]


def _tensorflow_runner(model: KerasModel) -> EpochRunner:
    """One traced tf.function runs every step of an epoch and returns the (steps, 1 + outputs) losses."""
    import tensorflow as tf

    _silence_retracing_warning(tf)
    trainable, optimizer = model._trainable, model.optimizer
    input_shape = tuple(model.network.model.inputs[0].shape[1:])
    columns = 1 + len(model.output_names)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, *input_shape), tf.float32),  # the training split, x
            _target_specs(model, tf),  # its targets, one tensor per output
            tf.TensorSpec((None,), tf.int64),  # the epoch's sample indices, batch after batch
            tf.TensorSpec((None,), tf.int64),  # batch b is order[bounds[b]:bounds[b + 1]]
        ],
        autograph=False,
    )
    def run_epoch(x: Any, targets: list[Any], order: Any, bounds: Any) -> Any:
        x_epoch = tf.gather(x, order)  # (samples, *input_shape), gathered once per epoch
        targets_epoch = [tf.gather(target, order) for target in targets]
        steps = tf.shape(bounds, out_type=tf.int64)[0] - 1

        def body(step: Any, losses: Any) -> tuple[Any, Any]:
            start, stop = bounds[step], bounds[step + 1]
            with tf.GradientTape() as tape:
                objective, step_losses = model.objective(x_epoch[start:stop], [t[start:stop] for t in targets_epoch])
            gradients = tape.gradient(objective, trainable)
            optimizer.apply(gradients, trainable)  # automatic control dependencies order the updates
            return step + 1, losses.write(tf.cast(step, tf.int32), step_losses)

        # An explicit while loop (autograph off): tracing is ~1 s faster than converting a Python loop.
        start_state = (
            tf.constant(0, tf.int64),
            tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32), element_shape=tf.TensorShape([columns])),
        )
        _, losses = tf.while_loop(lambda step, _: step < steps, body, start_state)
        return losses.stack()

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        return run_epoch(model._x, model._targets, tf.constant(order), tf.constant(bounds)).numpy()

    return runner


def _torch_runner(model: KerasModel) -> EpochRunner:
    """Eager steps on Keras' torch backend; torch autograd takes the gradients."""
    import torch

    trainable, optimizer = model._trainable, model.optimizer

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        index = ops.convert_to_tensor(order)
        x_epoch, targets_epoch = model._x[index], [target[index] for target in model._targets]
        losses = []
        for step in range(len(bounds) - 1):
            start, stop = int(bounds[step]), int(bounds[step + 1])
            objective, step_losses = model.objective(x_epoch[start:stop], [t[start:stop] for t in targets_epoch])
            gradients = torch.autograd.grad(objective, [variable.value for variable in trainable])
            with torch.no_grad():
                optimizer.apply(list(gradients), trainable)
            losses.append(step_losses.detach())
        return torch.stack(losses).cpu().numpy()

    return runner


def _jax_objective(model: KerasModel) -> Callable:
    """(trainable values, non-trainable values, x, targets) -> (objective, (losses, non-trainable values))."""
    network, trainable = model.network.model, model._trainable

    def objective(trainable_values: list, non_trainable_values: list, x: Any, targets: list) -> tuple[Any, tuple]:
        outputs, non_trainable_values = network.stateless_call(trainable_values, non_trainable_values, x, training=True)
        with keras.StatelessScope(state_mapping=list(zip(trainable, trainable_values))):
            total, losses = model.objective_of(outputs, targets)
        return total, (losses, non_trainable_values)

    return objective


def _jax_runner(model: KerasModel) -> EpochRunner:
    """A jitted stateless step per batch on Keras' jax backend; variables written back per epoch."""
    import jax

    network, optimizer, trainable = model.network.model, model.optimizer, model._trainable
    non_trainable = list(network.non_trainable_variables)
    gradient = jax.value_and_grad(_jax_objective(model), has_aux=True)

    @jax.jit
    def step(trainable_values: list, non_trainable_values: list, optimizer_values: list, x: Any, targets: list) -> tuple:
        (_, (losses, non_trainable_values)), gradients = gradient(trainable_values, non_trainable_values, x, targets)
        trainable_values, optimizer_values = optimizer.stateless_apply(optimizer_values, gradients, trainable_values)
        return trainable_values, non_trainable_values, optimizer_values, losses

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        trainable_values = [v.value for v in trainable]
        non_trainable_values = [v.value for v in non_trainable]
        optimizer_values = [v.value for v in optimizer.variables]
        x_epoch, targets_epoch = model._x[order], [target[order] for target in model._targets]
        losses = []
        for index in range(len(bounds) - 1):
            start, stop = int(bounds[index]), int(bounds[index + 1])
            trainable_values, non_trainable_values, optimizer_values, step_losses = step(
                trainable_values, non_trainable_values, optimizer_values, x_epoch[start:stop], [t[start:stop] for t in targets_epoch]
            )
            losses.append(step_losses)
        for variables, values in ((trainable, trainable_values), (non_trainable, non_trainable_values),
                                  (optimizer.variables, optimizer_values)):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return np.asarray(jax.device_get(losses))

    return runner


_EPOCH_RUNNERS: dict[str, Callable[[KerasModel], EpochRunner]] = {
    "tensorflow": _tensorflow_runner,
    "torch": _torch_runner,
    "jax": _jax_runner,
}


# --- gradients of the objective, per backend: (model, x, targets) -> one gradient per trainable variable ---

def _tensorflow_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        objective, _ = model.objective(x, targets)
    return tape.gradient(objective, model._trainable)


def _torch_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import torch

    objective, _ = model.objective(x, targets)
    return list(torch.autograd.grad(objective, [v.value for v in model._trainable], allow_unused=True))


def _jax_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import jax

    non_trainable = [v.value for v in model.network.model.non_trainable_variables]
    gradient = jax.grad(_jax_objective(model), has_aux=True)
    values, _ = gradient([v.value for v in model._trainable], non_trainable, x, targets)
    return list(values)


_GRADIENTS: dict[str, Callable[[KerasModel, Any, list[Any]], list[Any]]] = {
    "tensorflow": _tensorflow_gradients,
    "torch": _torch_gradients,
    "jax": _jax_gradients,
}
