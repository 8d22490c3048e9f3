"""Frozen, framework-free description of ONE trial: a grid cell for one backend and seed.

`TrialSpec.to_dict()` is the canonical JSON form: it travels to workers, is stored in
the results store, and its SHA-256, together with SEMANTICS_REVISION, is the trial's content
hash. Labels (suite and arm names) are NOT part of it, so renaming an arm does not rerun anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SpecError
from harness.spec.components import Component
from harness.spec.graph import GraphSpec, ModelOutput, plan_graph
from harness.spec.layers import LayerPlan, LayerSpec, Shape, plan_layers
from harness.spec.params import parameter
from harness.spec.schedules import EarlyStoppingSpec

HASH_LENGTH = 16  # hex digits of SHA-256 kept: 64 bits, collision-free for any realistic store
# What the harness's canonical names MEAN (formulas of optimizers, losses, initializers, regularizers,
# layers): part of every trial hash, so results stored under an older meaning are never reused. Bump it
# (and add a CHANGELOG.md entry) whenever a canonical formula's output changes while specs stay the same;
# tests/test_semantics_revision.py fails until you do. Every stored trial then runs again.
SEMANTICS_REVISION = 2
INIT_MODES = ("shared", "native")
# Dataset options that say WHERE a user's data is, not what it is: left out of the trial hash when the
# spec carries `content` (the digest of the bytes and options, harness.data.user_datasets), so moving a
# data folder reruns nothing while changing one byte of it reruns every trial that read it.
LOCATION_OPTIONS = ("path", "import_path")  # shared: the harness's numpy draw; native: the framework's own initializers


@dataclass(frozen=True)
class DatasetSpec:
    """Which data, and how it is cut. Splits are fixed per dataset unless `resplit` is 'per_seed'."""

    name: str
    validation: float = 0.0  # fraction of the training split held out for validation
    train_samples: int | None = None  # keep only the first N training samples (e.g. 300 to provoke overfitting)
    options: tuple[tuple[str, Any], ...] = ()  # dataset-specific (e.g. scale, permute, noise)
    # 'fixed': one split for every trial; 'per_seed': the trial's seed draws the split (harness.data.splits.RESPLITS)
    resplit: str = "fixed"

    def to_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "validation": self.validation,
            "train_samples": self.train_samples,
            **dict(self.options),
        }
        if self.resplit != "fixed":  # absent when fixed: suites that never set it keep their trial hashes
            data["resplit"] = self.resplit
        return data

    def hashed_dict(self) -> dict[str, Any]:
        """to_dict() without the location options when the content digest identifies the data."""
        data = self.to_dict()
        if "content" in data:
            for key in LOCATION_OPTIONS:
                data.pop(key, None)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSpec:
        data = dict(data)
        return cls(
            name=data.pop("name"),
            validation=data.pop("validation", 0.0),
            train_samples=data.pop("train_samples", None),
            resplit=data.pop("resplit", "fixed"),
            options=tuple(sorted(data.items())),
        )


L2_PENALTY = "loss += (l2 / 2) * sum(kernel^2) over every kernel   => gradient += l2 * kernel"


@dataclass(frozen=True)
class RegularizerSpec:
    """Every regularizer, explicit. Kernels are the weight matrices (harness.spec.layer_types.REGULARIZED_ROLES);
    biases are never touched. Each field's formula is its declaration's `formula` (`harness list components`)."""

    l1: float = parameter("number", 0.0, ">= 0", formula="loss += l1 * sum(|kernel|) over every kernel", example=0.0001)
    l2: float = parameter(
        "number",
        0.0,
        ">= 0",
        formula=L2_PENALTY,
        example=0.1,
        description='the coupled "weight decay" of Deep Learning from Scratch; Keras\' L2(x) is x*sum(w^2)',
    )
    weight_decay: float = parameter(
        "number",
        0.0,
        ">= 0",
        example=0.01,
        formula="decoupled: kernel -= lr * weight_decay * kernel before each optimizer step",
    )
    dropout: float = parameter(
        "number",
        0.0,
        "[0, 1)",
        noun="a rate",
        example=0.2,
        formula="a dropout layer of this rate after each hidden activation of a family model (mlp)",
    )
    clip_norm: float | None = parameter(
        "number",
        None,
        "> 0",
        nullable=True,
        noun="a global gradient norm",
        example=1.0,
        formula="if the global L2 norm of all gradients exceeds it, scale them all by clip_norm / norm",
    )
    clip_value: float | None = parameter(
        "number",
        None,
        "> 0",
        nullable=True,
        noun="a bound",
        example=0.5,
        formula="clamp every gradient element to [-clip_value, clip_value] (applied after clip_norm)",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def effective_weight_decay(optimizer: Component, regularizer: RegularizerSpec) -> float:
    """The decoupled decay of the kernels, `kernel -= lr * decay * kernel` before each step.

    It is adamw's weight_decay or regularizer.weight_decay; a trial sets at most one of them.

    Raises:
        SpecError: both are nonzero (at regularizer.weight_decay).
    """
    own = optimizer["weight_decay"] if optimizer.name == "adamw" else 0.0
    if own > 0 and regularizer.weight_decay > 0:
        raise SpecError(
            f"regularizer.weight_decay: set weight decay once: optimizer 'adamw' already decays the weights (its "
            f"weight_decay is {own}) and regularizer.weight_decay is {regularizer.weight_decay}, so both would "
            "apply. Set regularizer.weight_decay: 0, or set the optimizer's weight_decay: 0 (or use adam)."
        )
    return regularizer.weight_decay + own


SAVE_WEIGHTS = ("none", "final", "best")  # training.save_weights: harness.weights stores them
# TrainingSpec keys that TrainingSpec.to_dict leaves out at these defaults (hashes of older trials stay put)
OMITTED_AT_DEFAULT: dict[str, Any] = {"save_weights": "none", "checkpoint_every": None, "eval_every": 1}
# TrainingSpec keys that never enter a trial's hash: how a trial is executed, not what it computes
UNHASHED_TRAINING_KEYS = ("checkpoint_every",)


@dataclass(frozen=True)
class TrainingSpec:
    """The training budget and batching."""

    epochs: int = parameter("integer", constraint="> 0", description="passes over the training split", example=20)
    batch_size: int = parameter("integer", constraint="> 0", description="samples per optimizer step", example=100)
    shuffle: bool = parameter("bool", True, description="false: the same batch order every epoch, the MNIST-1D recipe")
    drop_last: bool = parameter("bool", False, description="true: drop each epoch's final partial batch")
    max_seconds: float | None = parameter(
        "number",
        None,
        "> 0",
        nullable=True,
        noun="a number of seconds",
        description=(
            "wall-clock limit of one trial's training; null: no limit; a trial over it is recorded as 'timeout'. "
            "Trials trained as one stacked model (--vectorize) share their group's clock"
        ),
    )
    save_weights: str = parameter(
        "choice",
        "none",
        choices=SAVE_WEIGHTS,
        description=(
            "which trained weights the store keeps, as weights/<hash>.safetensors beside harness.sqlite: the last "
            "epoch's (final), the epoch of least validation loss (best; needs dataset.validation), or none"
        ),
        example="final",
    )
    checkpoint_every: int | None = parameter(
        "integer",
        None,
        "> 0",
        nullable=True,
        noun="a number of epochs",
        description=(
            "save a resumable checkpoint every N epochs (a killed trial resumes at the last one); null: "
            "automatic, one at the end of the first epoch that ends 60 s or more after the last checkpoint "
            "(or the trial's start). Not part of the trial's hash: it changes no result"
        ),
        example=1,
    )

    eval_every: int = parameter(
        "integer",
        1,
        "> 0",
        description="evaluate every split after every N-th epoch and after the last one (and after an epoch that "
        "hits max_seconds); 1: after every epoch. Fewer evaluations, less time; curves get fewer points",
        example=5,
    )

    # Both optional and absent from to_dict() when None, so the hashes of trials without them never move.
    lr_schedule: Component | None = parameter(  # noqa: RUF009 - a dataclasses.field, its default None
        "any",
        None,
        nullable=True,
        noun="a schedule",
        description="the learning rate per optimizer step (harness.spec.schedules); null: the optimizer's lr throughout",
        example="{name: cosine, warmup_steps: 100}",
    )
    early_stopping: EarlyStoppingSpec | None = parameter(  # noqa: RUF009 - a dataclasses.field, its default None
        "any",
        None,
        nullable=True,
        noun="a mapping",
        description="stop when a validation metric stops improving (harness.spec.schedules); null: train every epoch",
        example="{metric: validation_loss, patience: 5}",
    )

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON; the keys added after the first stores are left out at their defaults
        (OMITTED_AT_DEFAULT) or when off (OPTIONAL_TRAINING), so the hashes of trials that do not set
        them never move."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        for name, default in OMITTED_AT_DEFAULT.items():
            if data[name] == default:
                del data[name]
        for key in OPTIONAL_TRAINING:
            value = data.pop(key)
            if value is not None:
                data[key] = value.to_dict()
        return data

    def evaluates(self, epoch: int) -> bool:
        """Whether the loop evaluates every split after `epoch` (epochs count from 1; the last always)."""
        return epoch % self.eval_every == 0 or epoch == self.epochs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        data = dict(data)
        schedule, stopping = data.pop("lr_schedule", None), data.pop("early_stopping", None)
        return cls(
            **data,
            lr_schedule=Component.from_dict(schedule) if schedule is not None else None,
            early_stopping=EarlyStoppingSpec(**stopping) if stopping is not None else None,
        )


OPTIONAL_TRAINING = ("lr_schedule", "early_stopping")  # training keys left out of the hashed form when off


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
    # A model from the user's Python code (harness.spec.model.resolve_python_model): backend -> 'module:factory',
    # called as factory(input_shape, output_units, **args); args as canonical JSON; `source` the digest of the
    # factories' module files (part of the hash: editing the model reruns its trials); `import_path` the suite's
    # folder (a location, kept out of the hash). Empty for every built-in model, whose JSON then omits them.
    python: tuple[tuple[str, str], ...] = ()
    args: str = "{}"
    source: str = ""
    import_path: str = ""
    # A Python model's parameter pairing across frameworks (harness.adapters.python_models): (torch parameter
    # name, Keras variable path) in the order given, the torch name being the canonical key; `by_shape` when the
    # harness paired them by shape (resolved at suite load). Empty: unmapped (native init, parity not checked).
    names: tuple[tuple[str, str], ...] = ()
    by_shape: bool = False

    @property
    def paired(self) -> bool:
        """True for a Python model whose torch and Keras parameters are paired: shared init and parity apply."""
        return bool(self.python) and bool(self.names)

    def plan(self, input_shape: Shape) -> tuple[LayerPlan, ...]:
        if self.python:
            return ()  # the harness cannot see inside a Python model: no canonical layers, no shared weights
        if self.graph is not None:
            return plan_graph(self.layers, self.graph, input_shape)
        return plan_layers(self.layers, input_shape)

    def outputs(self) -> tuple[ModelOutput, ...]:
        """The model's outputs: plan index, loss (None: the trial's loss) and weight in the loss mean."""
        if self.graph is not None:
            return self.graph.model_outputs()
        return (ModelOutput("output", max(len(self.layers) - 1, 0), None, 1.0),)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"family": self.family, "layers": [layer.to_dict() for layer in self.layers]}
        if self.graph is not None:
            data["graph"] = self.graph.to_dict()
        if self.python:
            data.update(python=dict(self.python), args=self.args, source=self.source, import_path=self.import_path)
            if self.names or self.by_shape:  # only when given, so unmapped models' hashes never move
                data.update(names=[list(pair) for pair in self.names], by_shape=self.by_shape)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        graph = GraphSpec.from_dict(data["graph"]) if data.get("graph") is not None else None
        return cls(
            layers=tuple(LayerSpec.from_dict(x) for x in data["layers"]),
            family=data.get("family"),
            graph=graph,
            python=tuple(sorted(data.get("python", {}).items())),
            args=data.get("args", "{}"),
            source=data.get("source", ""),
            import_path=data.get("import_path", ""),
            names=tuple((str(a), str(b)) for a, b in data.get("names", [])),
            by_shape=bool(data.get("by_shape", False)),
        )


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
    # optional settings keyed by name (today only harness.diagnostics); an empty tuple leaves the hash unchanged
    extras: tuple[tuple[str, Any], ...] = field(default=())

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
            training=TrainingSpec.from_dict(data["training"]),
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
        """Content hash of the fully resolved spec under the current SEMANTICS_REVISION (stable across
        runs, machines and Python versions; the stored spec JSON itself does not carry the revision)."""
        spec = {**self.to_dict(), "dataset": self.dataset.hashed_dict()}
        for key in UNHASHED_TRAINING_KEYS:
            spec["training"].pop(key, None)
        spec["model"].pop("import_path", None)  # where a Python model's module was found, not what it is
        hashed = canonical_json({"semantics_revision": SEMANTICS_REVISION, "spec": spec})
        return hashlib.sha256(hashed.encode()).hexdigest()[:HASH_LENGTH]


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
