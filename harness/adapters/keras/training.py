"""How a KerasModel trains on each Keras backend: one epoch of optimizer steps, one batch's gradients.

Mirrors harness/adapters/torch/training.py. Each backend has its own way to take gradients:
    tensorflow  one `tf.function` per EPOCH: a `tf.range` loop over the epoch's steps
                (gather the epoch's samples once, slice each batch, GradientTape, apply),
                returning the per-step loss vector. One host round trip per epoch is what
                beats `model.fit`, which returns to Python between steps.
    torch       an eager loop; gradients from `torch.autograd.grad` of the Keras variables'
                torch tensors (what Keras' own torch trainer does).
    jax         a jitted stateless step (`stateless_call`, `jax.value_and_grad`,
                `optimizer.stateless_apply`), variables written back once per epoch.
Everything else (network, loss, penalty, optimizer rule) is the same `keras.ops` code. The model
is read only through its public interface: `network`, `optimizer`, `backend`, `losses`,
`trainable_variables`, `training_inputs`, `training_targets`, `objective` and `objective_of`.

Compilation is timed apart from the steps and added to `model.compile_seconds` (the loop moves it
out of train_seconds into the trial's compile_seconds):
    tensorflow  each epoch function is traced explicitly (`get_concrete_function`, its input signature
                has no fixed batch or epoch size, so one trace serves every epoch and batch size) and
                then called once on an EMPTY epoch (no steps: nothing is updated), which makes
                TensorFlow instantiate and optimize the graph; both are compile time. The first real
                epoch then runs at the speed of the others.
    jax         each step shape (the last batch of an epoch may be smaller) is compiled ahead of time,
                `jit(step).lower(...).compile()`, and the steps run that executable: the timed part is
                exactly tracing, lowering and XLA compilation, none of it a step.
    torch       eager: nothing is compiled (0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

if TYPE_CHECKING:
    from harness.adapters.keras.model import KerasModel

# (epoch order, batch bounds, each step's learning rate or None) -> (steps, 1 + outputs): the minimized
# data loss, then each output's loss. With rates, each step first assigns its rate to the optimizer's
# learning-rate variable (the canonical schedule, harness.spec.schedules; no Keras LearningRateSchedule).
EpochRunner = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
RETRACING_MESSAGE = "triggered tf.function retracing"


class _DropRetracingWarning:
    """logging filter: drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing".

    Every KerasModel traces its own epoch function (its variables are captured), so a process that
    builds many models (parity over many arms, a worker running many trials) trips TensorFlow's
    heuristic for a function re-created in a loop. Here that is by design, not a performance bug.
    """

    def filter(self, record: Any) -> bool:
        return RETRACING_MESSAGE not in record.getMessage()


_retracing_filter_installed = False

# How many times this process seeded TensorFlow (KerasAdapter.build, through keras.utils.set_random_seed):
# tf.random.set_seed also clears TensorFlow's kernel cache, which drops the instantiated graphs of traced
# functions - a reused model's too (harness.adapters.keras.reuse) - and their next call instantiates them
# again (~0.1 s for the reference MLP). A function last instantiated under an older count is instantiated
# again before it runs, timed as compile time, so that cost never lands in train or eval seconds.
_tensorflow_seedings = [0]


def note_tensorflow_seeded() -> None:
    """Record that tf.random.set_seed ran (every traced function must be instantiated again)."""
    _tensorflow_seedings[0] += 1


def tensorflow_seedings() -> int:
    return _tensorflow_seedings[0]


def _silence_retracing_warning(tf: Any) -> None:
    global _retracing_filter_installed
    if not _retracing_filter_installed:
        tf.get_logger().addFilter(_DropRetracingWarning())
        _retracing_filter_installed = True


def _target_specs(model: KerasModel, tf: Any) -> list[Any]:
    """One TensorSpec per output target, as losses.prepare_targets stores it."""
    specs = {"cross_entropy": tf.TensorSpec((None,), tf.int32), "ctc": tf.TensorSpec((None, None), tf.int32)}
    return [specs.get(name, tf.TensorSpec((None, None), tf.float32)) for name in model.losses.loss_names]


def tensorflow_runner(model: KerasModel) -> EpochRunner:
    """One traced tf.function runs every step of an epoch and returns the (steps, 1 + outputs) losses.
    Two functions, traced on first use: without rates (the optimizer's lr untouched) and with them."""
    import tensorflow as tf

    _silence_retracing_warning(tf)
    trainable, optimizer = model.trainable_variables, model.optimizer
    input_shape = tuple(model.network.model.inputs[0].shape[1:])
    columns = 1 + len(model.losses.names)
    signature = [
        tf.TensorSpec((None, *input_shape), tf.float32),  # the training split, x
        _target_specs(model, tf),  # its targets, one tensor per output
        tf.TensorSpec((None,), tf.int64),  # the epoch's sample indices, batch after batch
        tf.TensorSpec((None,), tf.int64),  # batch b is order[bounds[b]:bounds[b + 1]]
        tf.TensorSpec((None,), tf.float32),  # each step's learning rate (empty: the optimizer's own)
    ]

    def make(scheduled: bool) -> Any:
        @tf.function(input_signature=signature, autograph=False)
        def run_epoch(x: Any, targets: list[Any], order: Any, bounds: Any, rates: Any) -> Any:
            x_epoch = tf.gather(x, order)  # (samples, *input_shape), gathered once per epoch
            targets_epoch = [tf.gather(target, order) for target in targets]
            steps = tf.shape(bounds, out_type=tf.int64)[0] - 1

            def body(step: Any, losses: Any) -> tuple[Any, Any]:
                start, stop = bounds[step], bounds[step + 1]
                with tf.GradientTape() as tape:
                    objective, step_losses = model.objective(
                        x_epoch[start:stop], [t[start:stop] for t in targets_epoch]
                    )
                gradients = tape.gradient(objective, trainable)
                if scheduled:
                    optimizer.learning_rate.assign(rates[step])
                optimizer.apply(gradients, trainable)  # automatic control dependencies order the updates
                return step + 1, losses.write(tf.cast(step, tf.int32), step_losses)

            # An explicit while loop (autograph off): tracing is ~1 s faster than converting a Python loop.
            start_state = (
                tf.constant(0, tf.int64),
                tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32), element_shape=tf.TensorShape([columns])),
            )
            _, losses = tf.while_loop(lambda step, _: step < steps, body, start_state)
            return losses.stack()

        return run_epoch

    functions: dict[bool, Any] = {}
    instantiated: dict[bool, int] = {}  # the tensorflow_seedings() count each function was last instantiated at
    no_rates = tf.zeros((0,), tf.float32)

    def compiled(scheduled: bool) -> Any:
        """The epoch function, traced on first use and instantiated whenever TensorFlow's caches lost it;
        the time goes to model.compile_seconds."""
        if instantiated.get(scheduled) == tensorflow_seedings():
            return functions[scheduled]
        started = time.perf_counter()
        if scheduled not in functions:
            functions[scheduled] = make(scheduled)
            functions[scheduled].get_concrete_function()  # the trace (the input signature fixes every argument)
        # An epoch of zero steps: the while loop never runs its body, so no variable moves, but the call
        # instantiates the traced graph (graph optimization, kernels), the rest of the first-call cost.
        empty = tf.zeros((0,), tf.int64)
        functions[scheduled](model.training_inputs, model.training_targets, empty, tf.zeros((1,), tf.int64), no_rates)
        instantiated[scheduled] = tensorflow_seedings()
        model.compile_seconds += time.perf_counter() - started
        return functions[scheduled]

    def runner(order: np.ndarray, bounds: np.ndarray, rates: np.ndarray | None) -> np.ndarray:
        scheduled = rates is not None
        compiled(scheduled)
        given = tf.constant(rates, tf.float32) if rates is not None else no_rates
        return (
            functions[scheduled](
                model.training_inputs, model.training_targets, tf.constant(order), tf.constant(bounds), given
            )
        ).numpy()

    return runner


def torch_runner(model: KerasModel) -> EpochRunner:
    """Eager steps on Keras' torch backend; torch autograd takes the gradients."""
    import torch

    trainable, optimizer = model.trainable_variables, model.optimizer

    def runner(order: np.ndarray, bounds: np.ndarray, rates: np.ndarray | None) -> np.ndarray:
        index = ops.convert_to_tensor(order)
        x_epoch, targets_epoch = model.training_inputs[index], [target[index] for target in model.training_targets]
        losses = []
        for step in range(len(bounds) - 1):
            start, stop = int(bounds[step]), int(bounds[step + 1])
            objective, step_losses = model.objective(x_epoch[start:stop], [t[start:stop] for t in targets_epoch])
            gradients = torch.autograd.grad(objective, [variable.value for variable in trainable])
            with torch.no_grad():
                if rates is not None:
                    optimizer.learning_rate.assign(float(rates[step]))
                optimizer.apply(list(gradients), trainable)
            losses.append(step_losses.detach())
        return torch.stack(losses).cpu().numpy()

    return runner


def jax_objective(model: KerasModel) -> Callable:
    """(trainable values, non-trainable values, x, targets) -> (objective, (losses, non-trainable values))."""
    network, trainable = model.network.model, model.trainable_variables

    def objective(trainable_values: list, non_trainable_values: list, x: Any, targets: list) -> tuple[Any, tuple]:
        outputs, non_trainable_values = network.stateless_call(trainable_values, non_trainable_values, x, training=True)
        with keras.StatelessScope(state_mapping=list(zip(trainable, trainable_values))):
            total, losses = model.objective_of(outputs, targets)
        return total, (losses, non_trainable_values)

    return objective


def jax_runner(model: KerasModel) -> EpochRunner:
    """A jitted stateless step per batch on Keras' jax backend; variables written back per epoch."""
    import jax

    network, optimizer, trainable = model.network.model, model.optimizer, model.trainable_variables
    non_trainable = list(network.non_trainable_variables)
    gradient = jax.value_and_grad(jax_objective(model), has_aux=True)

    @jax.jit
    def step(
        trainable_values: list, non_trainable_values: list, optimizer_values: list, x: Any, targets: list
    ) -> tuple:
        (_, (losses, non_trainable_values)), gradients = gradient(trainable_values, non_trainable_values, x, targets)
        trainable_values, optimizer_values = optimizer.stateless_apply(optimizer_values, gradients, trainable_values)
        return trainable_values, non_trainable_values, optimizer_values, losses

    # the optimizer's learning-rate variable among its variables: a schedule's rate is put there per step
    lr_index = next(i for i, v in enumerate(optimizer.variables) if v is optimizer.learning_rate)
    executables: dict[tuple, Any] = {}  # one per step input shape (a smaller last batch is another shape)

    def compiled(*arguments: Any) -> Any:
        """The step compiled ahead of time for these arguments' shapes; its compile time goes to model.compile_seconds."""
        shapes = tuple(tuple(value.shape) for value in jax.tree_util.tree_leaves(arguments[3:]))
        if shapes not in executables:
            started = time.perf_counter()
            executables[shapes] = step.lower(*arguments).compile()
            model.compile_seconds += time.perf_counter() - started
        return executables[shapes]

    def runner(order: np.ndarray, bounds: np.ndarray, rates: np.ndarray | None) -> np.ndarray:
        trainable_values = [v.value for v in trainable]
        non_trainable_values = [v.value for v in non_trainable]
        optimizer_values = [v.value for v in optimizer.variables]
        x_epoch, targets_epoch = model.training_inputs[order], [target[order] for target in model.training_targets]
        losses = []
        for index in range(len(bounds) - 1):
            start, stop = int(bounds[index]), int(bounds[index + 1])
            if rates is not None:
                optimizer_values[lr_index] = jax.numpy.asarray(rates[index], dtype=optimizer_values[lr_index].dtype)
            arguments = (
                trainable_values,
                non_trainable_values,
                optimizer_values,
                x_epoch[start:stop],
                [t[start:stop] for t in targets_epoch],
            )
            trainable_values, non_trainable_values, optimizer_values, step_losses = compiled(*arguments)(*arguments)
            losses.append(step_losses)
        for variables, values in (
            (trainable, trainable_values),
            (non_trainable, non_trainable_values),
            (optimizer.variables, optimizer_values),
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return np.asarray(jax.device_get(losses))

    return runner


EPOCH_RUNNERS: dict[str, Callable[[KerasModel], EpochRunner]] = {
    "tensorflow": tensorflow_runner,
    "torch": torch_runner,
    "jax": jax_runner,
}


def epoch_runner(model: KerasModel) -> EpochRunner:
    """The epoch runner of the model's Keras backend."""
    return EPOCH_RUNNERS[model.backend](model)


# --- gradients of the objective, per backend: (model, x, targets) -> one gradient per trainable variable ---


def tensorflow_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        objective, _ = model.objective(x, targets)
    return tape.gradient(objective, model.trainable_variables)


def torch_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import torch

    objective, _ = model.objective(x, targets)
    return list(torch.autograd.grad(objective, [v.value for v in model.trainable_variables], allow_unused=True))


def jax_gradients(model: KerasModel, x: Any, targets: list[Any]) -> list[Any]:
    import jax

    non_trainable = [v.value for v in model.network.model.non_trainable_variables]
    gradient = jax.grad(jax_objective(model), has_aux=True)
    values, _ = gradient([v.value for v in model.trainable_variables], non_trainable, x, targets)
    return list(values)


GRADIENTS: dict[str, Callable[[KerasModel, Any, list[Any]], list[Any]]] = {
    "tensorflow": tensorflow_gradients,
    "torch": torch_gradients,
    "jax": jax_gradients,
}


def objective_gradients(model: KerasModel, inputs: Any, targets: list[Any]) -> list[Any]:
    """Gradient of the objective (training mode) per `model.trainable_variables` entry (None: unused), before clipping.
    The caller restores the non-trainable state the pass moved (KerasModel.gradients)."""
    return GRADIENTS[model.backend](model, inputs, targets)
