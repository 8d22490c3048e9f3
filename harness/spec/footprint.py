"""How big a trial is: its parameter count and an estimate of the memory training it takes, from the spec alone.

    footprint = trial_footprint(spec, info.input_shape)
    footprint.parameters        # trainable values, = sum(p.numel() for p in torch's trainable parameters)
    footprint.total_bytes       # weights + gradients + optimizer state + activations, float32

Everything comes from shape inference (`ModelSpec.plan`): no framework is imported and nothing is
allocated, so a layer of 10^11 units is measured in microseconds. The estimate, in float32 (4 bytes):
    weights           every tensor a layer owns (batch_norm's running statistics included)
    gradients         one per trainable value
    optimizer state   OPTIMIZER_SLOTS values per trainable value (adam: m and v)
    activations       every layer's output at the batch size, kept for the backward pass, plus the input
                      batch (a lower bound: recurrent and attention layers also keep per-step and per-head
                      intermediates, and frameworks add workspace)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.spec.layer_types import Shape
from harness.spec.types import TrialSpec

BYTES_PER_VALUE = 4  # float32, what every adapter trains in
# State the update rule keeps per trainable value (harness.spec.components.OPTIMIZERS, formulas there):
# momentum/nesterov a velocity, adagrad the accumulator G, rmsprop the mean square s, adam/adamw m and v.
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class Footprint:
    """A trial's size: parameter counts and the estimated bytes of training it (float32)."""

    parameters: int  # trainable values
    state: int  # non-trainable values (batch_norm running statistics)
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    batch_size: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes

    def describe(self) -> str:
        """'2,410 parameters, ~41 KB to train at batch size 64'."""
        return f"{self.parameters:,} parameters, ~{format_bytes(self.total_bytes)} to train at batch size {self.batch_size}"

    def breakdown(self) -> str:
        """'weights 400 GB, gradients 400 GB, optimizer state 800 GB, activations 26 MB at batch size 64'."""
        return (
            f"weights {format_bytes(self.weights_bytes)}, gradients {format_bytes(self.gradients_bytes)}, "
            f"optimizer state {format_bytes(self.optimizer_bytes)}, activations {format_bytes(self.activations_bytes)} "
            f"at batch size {self.batch_size}"
        )


def trial_footprint(spec: TrialSpec, input_shape: Shape) -> Footprint:
    """The Footprint of training `spec` on inputs of `input_shape` (one sample, no batch axis)."""
    plans = spec.model.plan(input_shape)
    trainable = state = 0
    for plan in plans:
        for tensor in plan.tensors:
            if tensor.trainable:
                trainable += math.prod(tensor.shape)
            else:
                state += math.prod(tensor.shape)
    batch = spec.training.batch_size
    activations = math.prod(input_shape) + sum(math.prod(plan.output_shape) for plan in plans)
    return Footprint(
        parameters=trainable,
        state=state,
        weights_bytes=(trainable + state) * BYTES_PER_VALUE,
        gradients_bytes=trainable * BYTES_PER_VALUE,
        optimizer_bytes=OPTIMIZER_SLOTS[spec.optimizer.name] * trainable * BYTES_PER_VALUE,
        activations_bytes=batch * activations * BYTES_PER_VALUE,
        batch_size=batch,
    )


def format_bytes(count: int) -> str:
    """1234 -> '1.2 KB', 4e11 -> '400 GB' (decimal units, 2 significant digits at least)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if value >= 10 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
