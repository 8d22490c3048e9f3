"""Suite YAML texts for the tests of suite loading, grids, the CLI and the runner, and writing them to files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.suite import Suite, load_suite

# The smallest complete suite, lines 1-8 (tests append from line 9 or replace a line in place, and
# some assert the line numbers of errors).
BASE_SUITE = """\
name: t
dataset: mnist1d
model:
  mlp: {hidden: [8]}
loss: cross_entropy
optimizer: {name: sgd, lr: 0.1}
initializer: he_normal
training: {epochs: 2, batch_size: 16}
"""


def optimizer_grid_suite(
    name: str,
    description: str,
    *,
    dataset: str,
    model: str,
    training: str,
    seeds: int,
    arms: Mapping[str, str],
) -> str:
    """A suite comparing optimizers on torch: one `arms` label per optimizer (YAML flow mappings as text).

    The suite-level optimizer is the first arm's; loss cross_entropy, initializer he_normal. Example:
    optimizer_grid_suite("tiny", "SGD vs Adam.", dataset="iris", model="{mlp: {hidden: [8]}}",
    training="{epochs: 2, batch_size: 16}", seeds=2, arms={"sgd": "{name: sgd, lr: 0.1}", ...}).
    The grid's arm lines come last (line 13 on), one per arm, in order.
    """
    lines = [
        f"name: {name}",
        f"description: {description}",
        f"dataset: {dataset}",
        f"model: {model}",
        "loss: cross_entropy",
        f"optimizer: {next(iter(arms.values()))}",
        "initializer: he_normal",
        f"training: {training}",
        f"seeds: {seeds}",
        "backends: [torch]",
        "grid:",
        "  optimizer:",
        *(f"    {label}: {optimizer}" for label, optimizer in arms.items()),
    ]
    return "\n".join(lines) + "\n"


def write_suite(folder: Path, text: str, name: str = "suite.yaml") -> Path:
    """`text` written to folder/name; returns the path."""
    path = folder / name
    path.write_text(text)
    return path


def load_suite_text(folder: Path, text: str, **overrides: object) -> Suite:
    """The Suite of `text`, written to folder/suite.yaml first (errors name that file)."""
    return load_suite(write_suite(folder, text), **overrides)
