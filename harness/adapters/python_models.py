"""Models from the user's Python code: `model: {python: {torch: mod:make_torch, keras: mod:make_keras}, args}`.

Each factory is called as factory(input_shape, output_units, **args) (the input shape of one sample,
channels last, without the batch axis; the output width the loss needs) and returns a torch.nn.Module
or a keras.Model that outputs logits. The adapters wrap it in their Network: one tensor slot per
named parameter (torch) or trainable variable (keras), keyed by its name; tensors of rank >= 2 are
the kernels the l1/l2 penalties and weight decay touch. The suite's loss, optimizer, regularizer,
seeds, batches and metrics apply unchanged. The weights are the framework's own (`init_mode`
native), so a Python model's trials are not paired across backends and parity is not checked.

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
