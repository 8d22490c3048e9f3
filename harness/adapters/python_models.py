"""Models from the user's Python code: `model: {python: {torch: mod:make_torch, keras: mod:make_keras}, args}`.

Each factory is called as factory(input_shape, output_units, **args) (the input shape of one sample,
channels last, without the batch axis; the output width the loss needs) and returns a torch.nn.Module
or a keras.Model that outputs logits. The adapters wrap it in their Network: one tensor slot per
named parameter (torch) or trainable variable (keras), keyed by its name; tensors of rank >= 2 are
the kernels the l1/l2 penalties and weight decay touch. The suite's loss, optimizer, regularizer,
seeds, batches and metrics apply unchanged.

Unmapped (no `names`), the weights are the framework's own (`init_mode` native): a Python model's
trials are not paired across backends and parity is not checked (PARITY_NOT_CHECKED).

Mapped (`names: {torch_parameter: keras_variable_path}`, or `names: by_shape`, resolved at suite
load by `resolve_names`), the two models share canonical tensors: the key is the torch parameter
name, the layout Keras' (the harness's canonical layout). The torch side converts by the module a
parameter belongs to (TORCH_LAYOUTS): an nn.Linear weight (out, in) is transposed to (in, out), an
nn.Conv1d/Conv2d weight (out, in, k...) is permuted to (k..., in, out); every other parameter keeps
its layout. The rule goes by module type, not by shape, because a square weight (hidden, hidden)
looks the same either way. Then `init_mode: shared` draws every canonical tensor with numpy
(`shared_initial_weights`) and loads the same arrays into both, and `harness parity` checks the
model like a built-in one.

This module is framework-free; the builders import their framework when called.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import SpecError
from harness.spec.types import ModelSpec, TrialSpec

PARITY_NOT_CHECKED = "parity not checked"  # the label of a trial whose model the harness cannot compare across backends

# torch module type -> axes that take its `weight` to Keras' layout (np.transpose); others keep theirs
TORCH_LAYOUTS: dict[str, tuple[int, ...]] = {"Linear": (1, 0), "Conv1d": (2, 1, 0), "Conv2d": (2, 3, 1, 0)}


def factory_key(backend: str) -> str:
    """The factory a backend calls: 'torch', or 'keras' for every Keras backend."""
    return "torch" if backend == "torch" else "keras"


def factory(model: ModelSpec, key: str) -> Callable[..., Any]:
    """The factory function of `model` for framework `key`, imported now (it runs the module's code).

    Raises:
        SpecError: no factory for `key`, the module does not import, or it lacks the function.
    """
    given = dict(model.python)
    if key not in given:
        raise SpecError(f"model.python: no {key!r} factory (given: {', '.join(given)}).")
    reference = given[key]
    module_name, name = reference.split(":")
    if model.import_path:
        from harness.data.user_files import suite_import_path
        from harness.spec.model import module_file

        suite_import_path(Path(model.import_path))
        expected, _ = module_file(module_name, Path(model.import_path))
        loaded = getattr(sys.modules.get(module_name), "__file__", None)
        if loaded and expected and Path(loaded).resolve() != expected.resolve():
            del sys.modules[module_name]  # another suite's module of the same name: import this suite's
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise SpecError(
            f"model.python.{key}: cannot import {module_name!r} ({type(error).__name__}: {error}). Fix the module, "
            "or install its package."
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise SpecError(f"model.python.{key}: module {module_name!r} has no function {name!r}.")
    return function


def call_factory(model: ModelSpec, key: str, input_shape: tuple[int, ...], output_units: int) -> Any:
    """factory(input_shape, output_units, **args), its failures as SpecError naming the factory."""
    function = factory(model, key)
    try:
        return function(tuple(input_shape), int(output_units), **json.loads(model.args))
    except SpecError:
        raise
    except Exception as error:
        raise SpecError(
            f"model.python.{key}: {dict(model.python)[key]}({tuple(input_shape)}, {output_units}, **args) raised "
            f"{type(error).__name__}: {error}."
        ) from None


def expected_output(spec: TrialSpec, info: Any) -> tuple[int, ...] | None:
    """The output shape (no batch axis) the trial's loss needs; None where only the last axis is fixed (ctc)."""
    return None if spec.loss.name == "ctc" else (info.num_outputs,)


def check_python_model(spec: TrialSpec, key: str) -> None:
    """Build the model of `spec` with its `key` factory and run two zero samples through it: its output
    must have the shape the loss needs. Imports the framework and runs the user's code (and says so).

    Raises:
        SpecError: the factory fails, returns something other than the framework's model, or its output
            shape does not fit the loss.
    """
    from harness.data import dataset_info
    from harness.data.user_datasets import note

    info = dataset_info(spec.dataset)
    reference = dict(spec.model.python)[key]
    note(
        f"model.python.{key}: importing {key} and building {reference} to check its output shape (Python code "
        "the suite names)"
    )
    if key == "torch":
        from harness.adapters.torch.python_model import output_shape
    else:
        from harness.adapters.keras.python_model import output_shape
    shape = output_shape(spec.model, info.input_shape, info.num_outputs)
    needed = expected_output(spec, info)
    if (needed is not None and shape != needed) or (needed is None and shape[-1:] != (info.num_outputs,)):
        raise SpecError(
            f"model.python.{key}: {reference} builds a model whose output shape is {shape} (per sample), but loss "
            f"{spec.loss.name!r} on this {info.task} dataset needs {needed or ('T', info.num_outputs)}: the factory "
            f"is given output_units={info.num_outputs}; make its last layer that wide (logits, no softmax)."
        )


def zeros(input_shape: tuple[int, ...]) -> np.ndarray:
    """Two zero samples: the probe batch of check_python_model."""
    return np.zeros((2, *input_shape), dtype=np.float32)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(side) for side in shape) + ("," if len(shape) == 1 else "") + ")"


def resolve_names(
    model: ModelSpec, torch_shapes: dict[str, tuple[int, ...]], keras_shapes: dict[str, tuple[int, ...]]
) -> tuple[tuple[str, str], ...]:
    """Check (given `names`) or find (`by_shape`) the pairing of a Python model's torch parameters with its
    Keras variables: every trainable tensor of each paired exactly once, with the same shape in canonical layout.

    Args:
        torch_shapes: torch parameter name -> shape in canonical (Keras) layout, in registration order.
        keras_shapes: Keras variable path -> shape, in the model's order.

    Raises:
        SpecError: a name that is not a parameter/variable (did-you-mean), a tensor left unpaired, shapes that
            differ, or (by_shape) tensors whose shape several share, named, so the pairing is ambiguous.
    """
    from harness.errors import unknown_name

    where = "model.names"
    if model.by_shape:
        groups: dict[tuple[int, ...], tuple[list[str], list[str]]] = {}
        for name, shape in torch_shapes.items():
            groups.setdefault(shape, ([], []))[0].append(name)
        for name, shape in keras_shapes.items():
            groups.setdefault(shape, ([], []))[1].append(name)
        ambiguous = [(shape, a, b) for shape, (a, b) in groups.items() if len(a) > 1 or len(b) > 1]
        if ambiguous:
            listed = "; ".join(
                f"{_shape_text(shape)}: torch {', '.join(a) or '-'} / keras {', '.join(b) or '-'}"
                for shape, a, b in ambiguous
            )
            raise SpecError(
                f"{where}: by_shape cannot pair these tensors, several share a shape (canonical layout): {listed}. "
                "Registration order is no evidence of which is which: give the pairs, "
                "names: {torch_parameter: keras_variable_path, ...}."
            )
        pairs = tuple((a[0], b[0]) for a, b in groups.values() if a and b)
    else:
        pairs = model.names
    for torch_name, keras_name in pairs:
        if torch_name not in torch_shapes:
            raise unknown_name("torch parameter", torch_name, list(torch_shapes), where)
        if keras_name not in keras_shapes:
            raise unknown_name("Keras variable", keras_name, list(keras_shapes), where)
        if torch_shapes[torch_name] != keras_shapes[keras_name]:
            raise SpecError(
                f"{where}: torch {torch_name} has shape {_shape_text(torch_shapes[torch_name])} in canonical layout "
                f"(Keras' layout: nn.Linear weights transposed, convolution weights permuted), Keras {keras_name} has "
                f"{_shape_text(keras_shapes[keras_name])}: they cannot be the same tensor. Pair it with a tensor of "
                "that shape, or make the two models the same architecture."
            )
    paired_torch = {a for a, _ in pairs}
    paired_keras = {b for _, b in pairs}
    left = [f"torch {n}" for n in torch_shapes if n not in paired_torch]
    left += [f"keras {n}" for n in keras_shapes if n not in paired_keras]
    if left:
        raise SpecError(
            f"{where}: {', '.join(left)} {'is' if len(left) == 1 else 'are'} not paired; every trainable tensor of "
            "both models must be, so both start from the same weights. Add the pairs (torch parameters: "
            f"{', '.join(torch_shapes)}; Keras variables: {', '.join(keras_shapes)})."
        )
    return tuple(pairs)


def shared_initial_weights(shapes: dict[str, tuple[int, ...]], initializer: Any, seed: int) -> dict[str, np.ndarray]:
    """A paired Python model's initial weights, drawn by numpy for `init_mode: shared`: the same arrays in
    every backend. `shapes`: canonical key -> canonical (Keras-layout) shape, in the pairing's order.

    Tensor i draws from `default_rng([seed, INIT_STREAM, i])`: a tensor of rank >= 2 is a kernel drawn by
    the suite's initializer with the canonical fans (harness.spec.init.draw_kernel); a lower-rank one is a
    bias (zeros; under fan_in_uniform U(+-1/sqrt(fan_in)) with the fan_in of the kernel of the same module,
    the torch name up to its last dot, else 1).
    """
    from harness.spec.init import INIT_STREAM, draw_bias, draw_kernel
    from harness.spec.layer_types import fans

    fan_ins = {key.rpartition(".")[0]: fans(shape)[0] for key, shape in shapes.items() if len(shape) >= 2}
    weights = {}
    for index, (key, shape) in enumerate(shapes.items()):
        rng = np.random.default_rng([seed, INIT_STREAM, index])
        if len(shape) >= 2:
            value = draw_kernel(initializer, shape, rng)
        else:
            value = draw_bias(initializer, shape, fan_ins.get(key.rpartition(".")[0], 1), rng)
        weights[key] = np.asarray(value, dtype=np.float32)
    return weights
