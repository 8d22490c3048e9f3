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

from harness.adapters.keras.losses import LossFunction, prepare_targets
from harness.adapters.keras.network import Network

PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds memory on large splits
EpochRunner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (epoch order, batch bounds) -> losses


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
        self._run_epoch: EpochRunner = _EPOCH_RUNNERS[self.backend](self)
        self._forward = _make_forward(self)

    # --- weights ------------------------------------------------------------------------

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical-layout float32 arrays keyed by weight_key; resets optimizer state.

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
        """Every trainable tensor as a float32 array in canonical layout (Keras' layout is canonical)."""
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
            return np.zeros(0, dtype=np.float64)
        order = np.concatenate(batches).astype(np.int64, copy=False)
        bounds = np.concatenate([[0], np.cumsum([len(batch) for batch in batches])]).astype(np.int64)
        with keras.device(self.device):
            losses = self._run_epoch(order, bounds)
        return np.asarray(losses, dtype=np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs in evaluation mode (dropout off): float32 (N, outputs)."""
        x = np.asarray(x, dtype=np.float32)
        outputs = []
        with keras.device(self.device):
            for start in range(0, max(len(x), 1), PREDICT_CHUNK):
                outputs.append(ops.convert_to_numpy(self._forward(x[start:start + PREDICT_CHUNK])))
        return np.concatenate(outputs).astype(np.float32, copy=False)

    # --- the pieces the runners share ----------------------------------------------------

    def objective(self, x: Any, y: Any) -> tuple[Any, Any]:
        """(objective, data loss) of one batch in training mode: data loss + kernel penalty."""
        outputs = self.network.model(x, training=True)
        data_loss = self.data_loss(y, outputs)
        objective = data_loss + self.penalty() if self.penalty is not None else data_loss
        return objective, data_loss


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


def _tensorflow_runner(model: KerasModel) -> EpochRunner:
    """One traced tf.function runs every step of an epoch and returns the (steps,) loss vector."""
    import tensorflow as tf

    trainable, optimizer = model._trainable, model.optimizer

    input_shape = tuple(model.network.model.inputs[0].shape[1:])
    target_spec = (
        tf.TensorSpec((None,), tf.int32) if model.loss_name == "cross_entropy"
        else tf.TensorSpec((None, model.num_outputs), tf.float32)
    )

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, *input_shape), tf.float32),  # the training split, x
            target_spec,  # its targets, as losses.prepare_targets stores them
            tf.TensorSpec((None,), tf.int64),  # the epoch's sample indices, batch after batch
            tf.TensorSpec((None,), tf.int64),  # batch b is order[bounds[b]:bounds[b + 1]]
        ],
        autograph=False,
    )
    def run_epoch(x: Any, y: Any, order: Any, bounds: Any) -> Any:
        x_epoch = tf.gather(x, order)  # (samples, *input_shape), gathered once per epoch
        y_epoch = tf.gather(y, order)
        steps = tf.shape(bounds, out_type=tf.int64)[0] - 1

        def body(step: Any, losses: Any) -> tuple[Any, Any]:
            start, stop = bounds[step], bounds[step + 1]
            with tf.GradientTape() as tape:
                objective, data_loss = model.objective(x_epoch[start:stop], y_epoch[start:stop])
            gradients = tape.gradient(objective, trainable)
            optimizer.apply(gradients, trainable)  # automatic control dependencies order the updates
            return step + 1, losses.write(tf.cast(step, tf.int32), tf.cast(data_loss, tf.float32))

        # An explicit while loop (autograph off): tracing is ~1 s faster than converting a Python loop.
        start_state = (tf.constant(0, tf.int64), tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32)))
        _, losses = tf.while_loop(lambda step, _: step < steps, body, start_state)
        return losses.stack()

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        return run_epoch(model._x, model._y, tf.constant(order), tf.constant(bounds)).numpy()

    return runner


def _torch_runner(model: KerasModel) -> EpochRunner:
    """Eager steps on Keras' torch backend; torch autograd takes the gradients."""
    import torch

    trainable, optimizer = model._trainable, model.optimizer

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        index = ops.convert_to_tensor(order)
        x_epoch, y_epoch = model._x[index], model._y[index]
        losses = []
        for step in range(len(bounds) - 1):
            start, stop = int(bounds[step]), int(bounds[step + 1])
            objective, data_loss = model.objective(x_epoch[start:stop], y_epoch[start:stop])
            gradients = torch.autograd.grad(objective, [variable.value for variable in trainable])
            with torch.no_grad():
                optimizer.apply(list(gradients), trainable)
            losses.append(data_loss.detach())
        return torch.stack(losses).cpu().numpy()

    return runner


def _jax_runner(model: KerasModel) -> EpochRunner:
    """A jitted stateless step per batch on Keras' jax backend; variables written back per epoch."""
    import jax

    network, optimizer, trainable = model.network.model, model.optimizer, model._trainable
    non_trainable = list(network.non_trainable_variables)

    def objective(trainable_values: list, non_trainable_values: list, x: Any, y: Any) -> tuple[Any, tuple]:
        outputs, non_trainable_values = network.stateless_call(trainable_values, non_trainable_values, x, training=True)
        data_loss = model.data_loss(y, outputs)
        total = data_loss
        if model.penalty is not None:
            with keras.StatelessScope(state_mapping=list(zip(trainable, trainable_values))):
                total = data_loss + model.penalty()
        return total, (data_loss, non_trainable_values)

    gradient = jax.value_and_grad(objective, has_aux=True)

    @jax.jit
    def step(trainable_values: list, non_trainable_values: list, optimizer_values: list, x: Any, y: Any) -> tuple:
        (_, (data_loss, non_trainable_values)), gradients = gradient(trainable_values, non_trainable_values, x, y)
        trainable_values, optimizer_values = optimizer.stateless_apply(optimizer_values, gradients, trainable_values)
        return trainable_values, non_trainable_values, optimizer_values, data_loss

    def runner(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        trainable_values = [v.value for v in trainable]
        non_trainable_values = [v.value for v in non_trainable]
        optimizer_values = [v.value for v in optimizer.variables]
        x_epoch, y_epoch = model._x[order], model._y[order]
        losses = []
        for index in range(len(bounds) - 1):
            start, stop = int(bounds[index]), int(bounds[index + 1])
            trainable_values, non_trainable_values, optimizer_values, data_loss = step(
                trainable_values, non_trainable_values, optimizer_values, x_epoch[start:stop], y_epoch[start:stop]
            )
            losses.append(data_loss)
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
