"""A torch model from the user's factory (harness.adapters.python_models), wrapped as a Network."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.adapters.python_models import TORCH_LAYOUTS, call_factory, zeros
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


def layouts(module: nn.Module) -> dict[str, tuple[tuple[int, ...] | None, nn.Parameter]]:
    """Every trainable parameter by name, with the axes that take it to canonical (Keras) layout
    (harness.adapters.python_models.TORCH_LAYOUTS by the type of the module that owns it; None: as is)."""
    found = {}
    for prefix, owner in module.named_modules():
        for name, parameter in owner.named_parameters(recurse=False):
            if parameter.requires_grad:
                axes = TORCH_LAYOUTS.get(type(owner).__name__) if name == "weight" else None
                found[f"{prefix}.{name}" if prefix else name] = (axes, parameter)
    ordered = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
    return {name: found[name] for name in ordered}


def canonical_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter name -> its shape in canonical (Keras) layout, in registration order."""
    return {
        name: tuple(int(p.shape[axis]) for axis in axes) if axes else tuple(int(side) for side in p.shape)
        for name, (axes, p) in layouts(module).items()
    }


def _slot(key: str, axes: tuple[int, ...] | None, parameter: nn.Parameter) -> TensorSlot:
    """One parameter as a slot: as torch holds it (axes None), or transposed to canonical layout by `axes`."""
    shape = tuple(int(side) for side in parameter.shape)
    order = axes if axes is not None else tuple(range(len(shape)))
    back = tuple(int(axis) for axis in np.argsort(order))

    def to_torch(array: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.ascontiguousarray(np.transpose(array, back)),)

    def to_canonical(arrays: list[np.ndarray]) -> np.ndarray:
        return np.transpose(arrays[0], order)

    canonical = tuple(shape[axis] for axis in order)
    role = "kernel" if parameter.ndim >= 2 else "bias"
    return TensorSlot(key, TensorSpec(key, canonical, role), (parameter,), to_torch, to_canonical)


def python_network(model: ModelSpec, input_shape: tuple[int, ...], output_units: int) -> Network:
    """The factory's module with one slot per named parameter (rank >= 2: a kernel). Unpaired, each slot is
    the parameter as torch holds it; paired (model.names), each is in canonical (Keras) layout, in the
    pairing's order (harness.adapters.python_models)."""
    module = build_module(model, input_shape, output_units)
    found = layouts(module)
    if model.paired:
        slots = tuple(_slot(name, *found[name]) for name, _ in model.names)
    else:
        slots = tuple(_slot(name, None, parameter) for name, (_, parameter) in found.items())
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
