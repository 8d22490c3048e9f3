"""Frozen, framework-free description of ONE trial: a grid cell for one backend and seed.

`TrialSpec.to_dict()` is the canonical JSON form: it travels to workers, is stored in
the results store, and its SHA-256 is the trial's content hash. Labels (suite and arm
names) are NOT part of it, so renaming an arm does not rerun anything.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.spec.components import Component
from harness.spec.graph import GraphSpec, ModelOutput, plan_graph
from harness.spec.layers import LayerPlan, LayerSpec, Shape, plan_layers

HASH_LENGTH = 16  # hex digits of SHA-256 kept: 64 bits, collision-free for any realistic store


@dataclass(frozen=True)
class DatasetSpec:
    """Which data, and how it is cut. Splits are fixed per dataset, never per trial seed."""

    name: str
    validation: float = 0.0  # fraction of the training split held out for validation, fixed per dataset
    train_samples: int | None = None  # keep only the first N training samples (e.g. 300 to provoke overfitting)
    options: tuple[tuple[str, Any], ...] = ()  # dataset-specific (e.g. scale, permute, noise)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "validation": self.validation, "train_samples": self.train_samples, **dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSpec:
        data = dict(data)
        return cls(
            name=data.pop("name"),
            validation=data.pop("validation", 0.0),
            train_samples=data.pop("train_samples", None),
            options=tuple(sorted(data.items())),
        )


@dataclass(frozen=True)
class RegularizerSpec:
    """Every regularizer, explicit. Kernels are the weights of dense/conv layers; biases are never touched.

    l1:           loss += l1 * sum(|kernel|) over every kernel
    l2:           loss += (l2 / 2) * sum(kernel^2) over every kernel   => gradient += l2 * kernel
                  (the coupled "weight decay" of Deep Learning from Scratch; Keras' L2(x) is x*sum(w^2))
    weight_decay: decoupled: kernel -= lr * weight_decay * kernel before each optimizer step
    dropout:      a dropout layer of this rate after each hidden activation of a family model (mlp)
    clip_norm:    if the global L2 norm of all gradients exceeds it, scale them all by clip_norm / norm
    clip_value:   clamp every gradient element to [-clip_value, clip_value] (applied after clip_norm)
    """

    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0
    dropout: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "l1": self.l1, "l2": self.l2, "weight_decay": self.weight_decay, "dropout": self.dropout,
            "clip_norm": self.clip_norm, "clip_value": self.clip_value,
        }


@dataclass(frozen=True)
class TrainingSpec:
    """The training budget and batching."""

    epochs: int
    batch_size: int
    shuffle: bool = True  # False: batches taken in order every epoch (the MNIST-1D recipe)
    drop_last: bool = False  # True: drop the final partial batch of each epoch
    max_seconds: float | None = None  # wall-clock limit of one trial's training; exceeded => status 'timeout'

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
            "drop_last": self.drop_last, "max_seconds": self.max_seconds,
        }


@dataclass(frozen=True)
class ModelSpec:
    """A model: its layers, and (graph form) how they are wired. `family` records the shorthand it
    came from (for display only).

    `graph` None: a plain stack, each layer reads the one before it, one output (the last layer).
    Otherwise `layers` holds one layer per graph node, in node order (harness.spec.graph). The
    JSON form omits `graph` when it is None, so the hashes of plain stacks never move.
    """

    layers: tuple[LayerSpec, ...]
    family: str | None = None
    graph: GraphSpec | None = None

    def plan(self, input_shape: Shape) -> tuple[LayerPlan, ...]:
        if self.graph is not None:
            return plan_graph(self.layers, self.graph, input_shape)
        return plan_layers(self.layers, input_shape)

    def outputs(self) -> tuple[ModelOutput, ...]:
        """The model's outputs: plan index, loss (None: the trial's loss) and weight in the loss mean."""
        if self.graph is not None:
            return self.graph.model_outputs()
        return (ModelOutput("output", len(self.layers) - 1, None, 1.0),)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"family": self.family, "layers": [layer.to_dict() for layer in self.layers]}
        if self.graph is not None:
            data["graph"] = self.graph.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        graph = GraphSpec.from_dict(data["graph"]) if data.get("graph") is not None else None
        return cls(layers=tuple(LayerSpec.from_dict(x) for x in data["layers"]), family=data.get("family"), graph=graph)


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines one trial's result."""

    dataset: DatasetSpec
    model: ModelSpec
    loss: Component
    optimizer: Component
    initializer: Component
    regularizer: RegularizerSpec
    training: TrainingSpec
    seed: int
    backend: str
    init_mode: str = "shared"  # 'shared': numpy draws the initial weights; 'native': the framework's own initializers
    device: str = "cpu"
    extras: tuple[tuple[str, Any], ...] = field(default=())  # room for later issues (diagnostics, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.to_dict(),
            "model": self.model.to_dict(),
            "loss": self.loss.to_dict(),
            "optimizer": self.optimizer.to_dict(),
            "initializer": self.initializer.to_dict(),
            "regularizer": self.regularizer.to_dict(),
            "training": self.training.to_dict(),
            "seed": self.seed,
            "backend": self.backend,
            "init_mode": self.init_mode,
            "device": self.device,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        return cls(
            dataset=DatasetSpec.from_dict(data["dataset"]),
            model=ModelSpec.from_dict(data["model"]),
            loss=Component.from_dict(data["loss"]),
            optimizer=Component.from_dict(data["optimizer"]),
            initializer=Component.from_dict(data["initializer"]),
            regularizer=RegularizerSpec(**data["regularizer"]),
            training=TrainingSpec(**data["training"]),
            seed=data["seed"],
            backend=data["backend"],
            init_mode=data.get("init_mode", "shared"),
            device=data.get("device", "cpu"),
            extras=tuple(sorted(data.get("extras", {}).items())),
        )

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @property
    def hash(self) -> str:
        """Content hash of the fully resolved spec (stable across runs, machines and Python versions)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:HASH_LENGTH]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed and stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Trial:
    """A TrialSpec with its labels: which suite, which arm (grid cell), which variant per axis."""

    suite: str
    arm: str
    cell: tuple[tuple[str, str], ...]  # (axis, variant label) pairs in axis order
    spec: TrialSpec

    @property
    def hash(self) -> str:
        return self.spec.hash
