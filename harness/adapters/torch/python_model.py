"""A torch model from the user's factory (harness.adapters.python_models), wrapped as a Network."""

from __future__ import annotations

import torch
from torch import nn

from harness.adapters.python_models import call_factory, zeros
from harness.adapters.torch.network import Network
from harness.adapters.torch.realize import TensorSlot
from harness.errors import SpecError
from harness.spec.layer_types import TensorSpec
from harness.spec.types import ModelSpec


def build_module(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> nn.Module:
    module = call_factory(model, "torch", input_shape, output_units)
    if not isinstance(module, nn.Module):
        raise SpecError(
            f"model.python.torch: {dict(model.python)['torch']} returned {type(module).__name__}; expected a "
            "torch.nn.Module that outputs logits."
        )
    return module.to(torch.float32)


def python_network(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> Network:
    """The factory's module with one identity slot per named parameter (rank >= 2: a kernel)."""
    module = build_module(model, input_shape, output_units)
    slots = tuple(
        TensorSlot(
            name,
            TensorSpec(name, tuple(parameter.shape), "kernel" if parameter.ndim >= 2 else "bias"),
            (parameter,),
            lambda array: (array,),
            lambda arrays: arrays[0],
        )
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    )
    return Network(module, slots, model.outputs())  # type: ignore[arg-type]


def output_shape(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> tuple[int, ...]:
    module = build_module(model, input_shape, output_units)
    module.eval()
    with torch.no_grad():
        output = module(torch.from_numpy(zeros(input_shape)))
    if not isinstance(output, torch.Tensor):
        raise SpecError(
            f"model.python.torch: the module returned {type(output).__name__}; expected one tensor of logits."
        )
    return tuple(int(side) for side in output.shape[1:])
