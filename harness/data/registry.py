"""Every dataset a suite may name: its options, static facts, and the check of a suite's `data:` block.

`resolve_dataset` turns `'mnist1d'` or `{name: digits, validation: 0.2, train_samples: 300,
scale: unit}` into a DatasetSpec with EVERY option explicit, so equal experiments have equal
content hashes. `dataset_info` answers shape and task questions without loading anything.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.data import sources
from harness.data.splits import held_out_count
from harness.data.types import DatasetInfo
from harness.errors import DatasetError, did_you_mean, unknown_name
from harness.spec.types import DatasetSpec

Options = Mapping[str, Any]
TEST_FRACTION = 0.25  # held out (stratified where labelled) by datasets without their own test split
GENERAL_KEYS = ("name", "validation", "train_samples")  # keys of every dataset; the rest are options


@dataclass(frozen=True)
class Option:
    """One dataset option: its default and the values it accepts."""

    default: Any
    kind: str = "choice"  # choice (one of `choices`) | bool | int | float
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # int/float: smallest allowed value
    exclusive: bool = False  # float: the minimum itself is not allowed (value > minimum)
    doc: str = ""

    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = "an integer" if self.kind == "int" else "a number"
        return noun if self.minimum is None else f"{noun} {'>' if self.exclusive else '>='} {self.minimum:g}"

    def check(self, value: Any, where: str) -> Any:
        """Return `value` in canonical form (floats as float), or raise DatasetError naming `where`."""
        if self.kind == "choice":
            valid = isinstance(value, str) and value in self.choices
        elif self.kind == "bool":
            valid = isinstance(value, bool)
        elif self.kind == "int":
            valid = isinstance(value, int) and not isinstance(value, bool)
        else:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if valid else value
        if valid and self.minimum is not None:
            valid = value > self.minimum if self.exclusive else value >= self.minimum
        if not valid:
            hint = did_you_mean(value, self.choices) if self.kind == "choice" else ""
            raise DatasetError(
                f"{where}: expected {self.expected()}, got {value!r} ({type(value).__name__}).{hint} "
                f"Default: {self.default!r}."
            )
        return value


@dataclass(frozen=True)
class DatasetDefinition:
    """A dataset's static facts (as functions of its options) and how to produce its raw arrays."""

    name: str
    task: str  # one of harness.data.types.TASKS
    description: str  # one line, shown by `harness list`
    options: Mapping[str, Option]
    produce: Callable[[Options], sources.Arrays]  # raw float64 x, labels/targets y (+ x_test, y_test if its own split)
    num_rows: Callable[[Options], int]  # rows before the test split; for own-split sets, the training rows
    input_shape: Callable[[Options], tuple[int, ...]]  # one sample, no batch axis
    num_classes: int | Callable[[Options], int] | None = None  # None for regression; sequence: symbols + the blank
    num_targets: Callable[[Options], int] = lambda options: 1  # regression: K outputs
    own_test_split: bool = False  # True: the source ships its test split (mnist1d); else TEST_FRACTION is held out
    unit_range: float | None = None  # raw value range for `scale: unit` (digits: 16)
    target_length: Callable[[Options], int] | None = None  # sequence: the longest label string (y's width)
    check_options: Callable[[Options, str], None] | None = None  # rules between options; raises DatasetError

    def defaults(self) -> dict[str, Any]:
        return {key: option.default for key, option in self.options.items()}

    def num_train(self, options: Options) -> int:
        """Training rows available before train_samples and validation (static, no loading)."""
        rows = self.num_rows(options)
        return rows if self.own_test_split else rows - held_out_count(rows, TEST_FRACTION)

    def info(self, options: Options) -> DatasetInfo:
        classes = self.num_classes(options) if callable(self.num_classes) else self.num_classes
        if self.task == "regression":
            num_outputs = self.num_targets(options)
        else:
            num_outputs = 1 if self.task == "binary" else int(classes or 0)
        return DatasetInfo(
            name=self.name, task=self.task, input_shape=self.input_shape(options),
            num_outputs=num_outputs, num_classes=classes, description=self.description,
            target_length=self.target_length(options) if self.target_length is not None else None,
        )


def _scale(default: str, *choices: str) -> Option:
    return Option(default, choices=choices, doc="feature scaling fitted on the training split only")


_SCALE_TARGET = Option(True, "bool", doc="standardize targets with training mean and std (metrics then in target std units)")


def _mnist1d(options: Options) -> sources.Arrays:
    arrays = sources.mnist1d_arrays()
    if options["permute"]:
        order = sources.mnist1d_permutation(arrays["x"].shape[1])
        arrays = {**arrays, "x": arrays["x"][:, order], "x_test": arrays["x_test"][:, order]}
    return arrays


def _check_symbol_frames(options: Options, where: str) -> None:
    needed = sources.symbol_sequence_frames(options["max_length"])
    if options["timesteps"] < needed:
        raise DatasetError(
            f"{where}.timesteps: {options['timesteps']} frames cannot hold {options['max_length']} symbols of up to "
            f"{sources.SYMBOL_FRAMES[1]} frames with silence between them; expected at least {needed}. "
            f"Raise timesteps to {needed} or lower max_length."
        )


def _bundled(name: str, task: str, rows: int, features: int, classes: int | None, description: str,
             options: Mapping[str, Option], **extra: Any) -> DatasetDefinition:
    return DatasetDefinition(
        name=name, task=task, description=description, options=options,
        produce=lambda _options: sources.sklearn_arrays(name), num_rows=lambda _options: rows,
        input_shape=extra.pop("input_shape", lambda _options: (features,)), num_classes=classes, **extra,
    )


_DEFINITIONS = [
    DatasetDefinition(
        name="mnist1d",
        task="classification",
        description="MNIST-1D (Greydanus & Kobak 2024): 10 digit templates as 40-point signals, 4000 train / 1000 test",
        options={
            "shape": Option("vector", choices=("vector", "sequence"), doc="vector (40,) or sequence (40, 1) for conv/RNN"),
            "permute": Option(False, "bool", doc="one fixed permutation of the 40 positions (spatial-prior ablation)"),
            "scale": _scale("none", "none", "standard"),  # already standardized by the generator
        },
        produce=_mnist1d,
        num_rows=lambda _options: 4000,
        input_shape=lambda options: (40,) if options["shape"] == "vector" else (40, 1),
        num_classes=10,
        own_test_split=True,
    ),
    _bundled(
        "digits", "classification", 1797, 64, 10,
        "scikit-learn digits: 8x8 grey-level (0-16) handwritten digits, 1347 train / 450 test",
        {
            "scale": _scale("standard", "standard", "unit", "minmax", "none"),  # unit: X/16 (Deep Learning from Scratch)
            "shape": Option("vector", choices=("vector", "image"), doc="vector (64,) or image (8, 8, 1), channels last"),
        },
        input_shape=lambda options: (64,) if options["shape"] == "vector" else (8, 8, 1),
        unit_range=16.0,
    ),
    _bundled(
        "breast_cancer", "binary", 569, 30, 2,
        "scikit-learn Wisconsin breast cancer: 30 cell-nucleus features, malignant 0 / benign 1, 426 train / 143 test",
        {"scale": _scale("standard", "standard", "minmax", "none")},
    ),
    _bundled(
        "iris", "classification", 150, 4, 3,
        "scikit-learn iris: 4 flower measurements, 3 species, 112 train / 38 test",
        {"scale": _scale("standard", "standard", "minmax", "none")},
    ),
    _bundled(
        "wine", "classification", 178, 13, 3,
        "scikit-learn wine: 13 chemical measurements, 3 cultivars, 133 train / 45 test",
        {"scale": _scale("standard", "standard", "minmax", "none")},
    ),
    _bundled(
        "diabetes", "regression", 442, 10, None,
        "scikit-learn diabetes: 10 patient features -> disease progression after one year, 331 train / 111 test",
        {"scale": _scale("standard", "standard", "minmax", "none"), "scale_target": _SCALE_TARGET},
    ),
    DatasetDefinition(
        name="spirals",
        task="binary",
        description="two interleaved spirals in 2-D (synthetic, fixed seed): a classic nonlinear benchmark",
        options={
            "n_samples": Option(1000, "int", minimum=8, doc="rows before the 25% test split"),
            "noise": Option(0.2, "float", minimum=0.0, doc="Gaussian jitter std; adjacent arms are 1 apart"),
            "turns": Option(1.5, "float", minimum=0.0, exclusive=True, doc="turns of each spiral"),
            "scale": _scale("standard", "standard", "minmax", "none"),
        },
        produce=lambda options: sources.make_spirals(options["n_samples"], options["noise"], options["turns"]),
        num_rows=lambda options: options["n_samples"],
        input_shape=lambda _options: (2,),
        num_classes=2,
    ),
    DatasetDefinition(
        name="teacher_student",
        task="regression",
        description="Gaussian inputs through a fixed random tanh teacher MLP plus noise (synthetic regression)",
        options={
            "n_samples": Option(1000, "int", minimum=4, doc="rows before the 25% test split"),
            "n_features": Option(10, "int", minimum=1, doc="input dimension"),
            "teacher_hidden": Option(32, "int", minimum=1, doc="hidden units of the teacher"),
            "n_targets": Option(1, "int", minimum=1, doc="outputs of the teacher"),
            "noise": Option(0.1, "float", minimum=0.0, doc="std of the noise added to the targets"),
            "scale": _scale("standard", "standard", "minmax", "none"),
            "scale_target": _SCALE_TARGET,
        },
        produce=lambda options: sources.make_teacher_student(
            options["n_samples"], options["n_features"], options["teacher_hidden"], options["n_targets"], options["noise"]
        ),
        num_rows=lambda options: options["n_samples"],
        input_shape=lambda options: (options["n_features"],),
        num_targets=lambda options: options["n_targets"],
    ),
    DatasetDefinition(
        name="symbol_sequences",
        task="sequence",
        description="noisy frames of a short symbol string, unaligned -> the string (synthetic sequence labelling, for ctc)",
        options={
            "n_samples": Option(2000, "int", minimum=8, doc="rows before the 25% test split"),
            "num_symbols": Option(8, "int", minimum=1, doc="alphabet size; the model outputs num_symbols + 1 classes (0: blank)"),
            "max_length": Option(5, "int", minimum=1, doc="longest string; lengths are uniform in 1..max_length"),
            "timesteps": Option(32, "int", minimum=1, doc="frames per sample, at least 5*max_length - 1"),
            "features": Option(8, "int", minimum=1, doc="values per frame"),
            "noise": Option(0.75, "float", minimum=0.0, doc="std of the Gaussian noise on every value; prototypes are N(0, 1)"),
            "scale": _scale("none", "none", "standard"),
        },
        produce=lambda options: sources.make_symbol_sequences(
            options["n_samples"], options["num_symbols"], options["max_length"], options["timesteps"],
            options["features"], options["noise"],
        ),
        num_rows=lambda options: options["n_samples"],
        input_shape=lambda options: (options["timesteps"], options["features"]),
        num_classes=lambda options: options["num_symbols"] + 1,
        target_length=lambda options: options["max_length"],
        check_options=_check_symbol_frames,
    ),
]

DATASETS: dict[str, DatasetDefinition] = {definition.name: definition for definition in _DEFINITIONS}


def definition_of(name: str, where: str = "dataset") -> DatasetDefinition:
    """The registered definition, or the standard unknown-name SpecError with did-you-mean."""
    if not isinstance(name, str) or name not in DATASETS:
        raise unknown_name("dataset", str(name), DATASETS, where)
    return DATASETS[name]


def resolve_dataset(raw: str | Mapping[str, Any] | DatasetSpec, where: str = "dataset") -> DatasetSpec:
    """Validate a suite's dataset entry and return it with every option's default filled in.

    Args:
        raw: a name ('mnist1d'), a mapping ({name: digits, validation: 0.1, train_samples: 300,
            scale: unit}), or a DatasetSpec (re-validated, defaults filled).
        where: key path of the entry in the suite, used in error messages.

    Returns:
        A canonical DatasetSpec: validation as float, options sorted and complete.

    Raises:
        SpecError: unknown dataset name (with did-you-mean and the valid names).
        DatasetError: not a name or mapping, unknown option, bad option value, validation not in
            [0, 1), train_samples not an integer in 1..available, or no training rows left.
    """
    if isinstance(raw, DatasetSpec):
        raw = raw.to_dict()
    if isinstance(raw, str):
        given: dict[str, Any] = {"name": raw}
    elif isinstance(raw, Mapping):
        if "name" not in raw:
            raise DatasetError(
                f"{where}: a dataset mapping needs a 'name' key, got keys {sorted(map(str, raw))}. "
                f"Write e.g. {{name: mnist1d, validation: 0.1}} or just the name as a string."
            )
        given = dict(raw)
    else:
        raise DatasetError(
            f"{where}: expected a dataset name (string) or a mapping with 'name', got {raw!r} ({type(raw).__name__})."
        )
    name = given.pop("name")
    definition = definition_of(name, f"{where}.name" if isinstance(raw, Mapping) else where)
    validation = _check_validation(given.pop("validation", 0.0), f"{where}.validation")
    train_samples = given.pop("train_samples", None)

    options = definition.defaults()
    for key, value in given.items():
        if key not in definition.options:
            valid = [*GENERAL_KEYS[1:], *definition.options]
            raise DatasetError(
                f"{where}.{key}: dataset {name!r} has no option {key!r}.{did_you_mean(key, valid)} "
                f"Its keys: {', '.join(valid)}."
            )
        options[key] = definition.options[key].check(value, f"{where}.{key}")
    if definition.check_options is not None:
        definition.check_options(options, where)

    available = definition.num_train(options)
    if train_samples is not None:
        if isinstance(train_samples, bool) or not isinstance(train_samples, int) or not 1 <= train_samples <= available:
            raise DatasetError(
                f"{where}.train_samples: expected an integer from 1 to {available} (the training rows of {name!r} "
                f"with these options), got {train_samples!r}. Lower it, or drop the key to use all {available}."
            )
    kept = train_samples if train_samples is not None else available
    if kept - held_out_count(kept, validation) < 1:
        raise DatasetError(
            f"{where}.validation: {validation} of {kept} training rows leaves no row to train on. "
            f"Lower validation or raise train_samples."
        )
    return DatasetSpec(name=name, validation=validation, train_samples=train_samples, options=tuple(sorted(options.items())))


def _check_validation(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DatasetError(
            f"{where}: expected the fraction of training rows held out for validation, a number in [0, 1), "
            f"got {value!r}. Use e.g. 0.1, or 0 for no validation split."
        )
    return float(value)


def dataset_info(spec: DatasetSpec) -> DatasetInfo:
    """Static facts (task, input shape, outputs) of a dataset spec, without generating or loading data.

    Options missing from `spec` take their defaults, so an unresolved DatasetSpec('digits') works.

    Raises:
        SpecError: unknown dataset name.
    """
    definition = definition_of(spec.name)
    return definition.info({**definition.defaults(), **dict(spec.options)})


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset with its default options, in registry order (for `harness list`)."""
    return [definition.info(definition.defaults()) for definition in DATASETS.values()]
