"""A Keras model from the user's factory (harness.adapters.python_models), wrapped as a Network."""

from __future__ import annotations

import keras

from harness.adapters.keras.network import Network
from harness.adapters.python_models import call_factory, zeros
from harness.errors import SpecError
from harness.spec.types import ModelSpec


def build_model(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> keras.Model:
    """The factory's model as a functional keras.Model on an Input of `input_shape` (a subclassed model is
    called on the Input, so the training loop can read its input shape like any built model's)."""
    built = call_factory(model, "keras", input_shape, output_units)
    if not isinstance(built, keras.Model):
        raise SpecError(
            f"model.python.keras: {dict(model.python)['keras']} returned {type(built).__name__}; expected a "
            "keras.Model that outputs logits."
        )
    if getattr(built, "inputs", None):
        return built
    model_input = keras.Input(shape=tuple(input_shape))
    return keras.Model(model_input, built(model_input))


def python_network(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> Network:
    """The factory's model; every trainable variable by its path (rank >= 2: a kernel), the others state.
    Paired (model.names), each variable is keyed by the torch parameter it is paired with."""
    built = build_model(model, input_shape, output_units)
    variables = {variable.path: variable for variable in built.trainable_variables}
    if model.paired:  # canonical keys: the torch names, in the pairing's order (Keras' layout is canonical)
        variables = {torch_name: variables[keras_name] for torch_name, keras_name in model.names}
    kernels = [variable for variable in built.trainable_variables if len(variable.shape) >= 2]
    biases = [variable for variable in built.trainable_variables if len(variable.shape) < 2]
    return Network(
        built,
        variables,
        kernels,
        biases,
        built,  # no per-layer view: diagnostics are refused for Python models
        outputs=model.outputs(),
        state=list(built.non_trainable_variables),
    )


def output_shape(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> tuple[int, ...]:
    built = build_model(model, input_shape, output_units)
    output = built(zeros(input_shape), training=False)
    if isinstance(output, (list, tuple)):
        raise SpecError("model.python.keras: the model returns several outputs; expected one tensor of logits.")
    return tuple(int(side) for side in output.shape[1:])


def variable_shapes(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> dict[str, tuple[int, ...]]:
    """Every trainable variable's path -> shape, in the model's order (to pair with the torch parameters)."""
    built = build_model(model, input_shape, output_units)
    return {variable.path: tuple(int(side) for side in variable.shape) for variable in built.trainable_variables}
