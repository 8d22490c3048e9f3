"""Every dataset a suite may name: its options, static facts, and the check of a suite's `data:` block.

`resolve_dataset` turns `'mnist1d'` or `{name: digits, validation: 0.2, train_samples: 300,
scale: unit}` into a DatasetSpec with EVERY option explicit, so equal experiments have equal
content hashes. `dataset_info` answers shape and task questions without loading anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import plugins, sources, user_datasets
from harness.data.splits import RESPLITS, held_out_count
from harness.data.types import DatasetInfo
from harness.errors import DatasetError, SpecError, did_you_mean, unknown_name
from harness.spec.params import Parameter, defaults, reject_unknown_keys, split_named
from harness.spec.types import DatasetSpec

Options = Mapping[str, Any]
TEST_FRACTION = 0.25  # held out (stratified where labelled) by datasets without their own test split
GENERAL_KEYS = ("name", "validation", "train_samples", "resplit")  # keys of every dataset; the rest are options
RESPLIT = Parameter(
    "choice",
    "fixed",
    choices=RESPLITS,
    description="fixed: one split for every trial; per_seed: each trial's seed draws the train/validation split "
    "(and the test split, unless the source ships its own)",
)


@dataclass(frozen=True)
class DatasetDefinition:
    """A dataset's static facts (as functions of its options) and how to produce its raw arrays."""

    name: str
    task: str  # one of harness.data.types.TASKS
    description: str  # one line, shown by `harness list`
    options: Mapping[str, Parameter]
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
        return defaults(self.options)

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
            name=self.name,
            task=self.task,
            input_shape=self.input_shape(options),
            num_outputs=num_outputs,
            num_classes=classes,
            description=self.description,
            target_length=self.target_length(options) if self.target_length is not None else None,
        )


def _scale(default: str, *choices: str) -> Parameter:
    return Parameter(
        "choice", default, choices=choices, description="feature scaling fitted on the training split only"
    )


def _rows(default: int, minimum: int) -> Parameter:
    return Parameter("integer", default, f">= {minimum}", "rows before the 25% test split")


def _noise(default: float, description: str) -> Parameter:
    return Parameter("number", default, ">= 0", description)


def _count(default: int, description: str) -> Parameter:
    return Parameter("integer", default, ">= 1", description)


_SCALE_TARGET = Parameter(
    "bool", True, description="standardize targets with training mean and std (metrics then in target std units)"
)
# Options that choose how the harness prepares the arrays, never passed to a generator.
_PREPARATION = ("scale", "scale_target")


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


def _bundled(
    name: str,
    task: str,
    rows: int,
    features: int,
    classes: int | None,
    description: str,
    options: Mapping[str, Parameter],
    **extra: Any,
) -> DatasetDefinition:
    """A dataset bundled with scikit-learn: always `rows` rows of `features` values (unless `input_shape` says)."""
    return DatasetDefinition(
        name=name,
        task=task,
        description=description,
        options=options,
        produce=lambda _options: sources.sklearn_arrays(name),
        num_rows=lambda _options: rows,
        input_shape=extra.pop("input_shape", lambda _options: (features,)),
        num_classes=classes,
        **extra,
    )


def _synthetic(
    name: str,
    task: str,
    description: str,
    generate: Callable[..., sources.Arrays],
    options: Mapping[str, Parameter],
    **extra: Any,
) -> DatasetDefinition:
    """A dataset made in code: `generate` takes every option but the preparation ones, by name; n_samples rows."""
    return DatasetDefinition(
        name=name,
        task=task,
        description=description,
        options=options,
        produce=lambda chosen: generate(**{key: value for key, value in chosen.items() if key not in _PREPARATION}),
        num_rows=lambda chosen: chosen["n_samples"],
        **extra,
    )


_STANDARD = _scale("standard", "standard", "minmax", "none")

_DEFINITIONS = [
    DatasetDefinition(
        name="mnist1d",
        task="classification",
        description="MNIST-1D (Greydanus & Kobak 2024): 10 digit templates as 40-point signals, 4000 train / 1000 test",
        options={
            "shape": Parameter(
                "choice",
                "vector",
                choices=("vector", "sequence"),
                description="vector (40,) or sequence (40, 1) for conv/RNN",
            ),
            "permute": Parameter(
                "bool", False, description="one fixed permutation of the 40 positions (spatial-prior ablation)"
            ),
            "scale": _scale("none", "none", "standard"),  # already standardized by the generator
        },
        produce=_mnist1d,
        num_rows=lambda _options: 4000,
        input_shape=lambda options: (40,) if options["shape"] == "vector" else (40, 1),
        num_classes=10,
        own_test_split=True,
    ),
    _bundled(
        "digits",
        "classification",
        1797,
        64,
        10,
        "scikit-learn digits: 8x8 grey-level (0-16) handwritten digits, 1347 train / 450 test",
        {
            "scale": _scale(
                "standard", "standard", "unit", "minmax", "none"
            ),  # unit: X/16 (Deep Learning from Scratch)
            "shape": Parameter(
                "choice",
                "vector",
                choices=("vector", "image"),
                description="vector (64,) or image (8, 8, 1), channels last",
            ),
        },
        input_shape=lambda options: (64,) if options["shape"] == "vector" else (8, 8, 1),
        unit_range=16.0,
    ),
    _bundled(
        "breast_cancer",
        "binary",
        569,
        30,
        2,
        "scikit-learn Wisconsin breast cancer: 30 cell-nucleus features, malignant 0 / benign 1, 426 train / 143 test",
        {"scale": _STANDARD},
    ),
    _bundled(
        "iris",
        "classification",
        150,
        4,
        3,
        "scikit-learn iris: 4 flower measurements, 3 species, 112 train / 38 test",
        {"scale": _STANDARD},
    ),
    _bundled(
        "wine",
        "classification",
        178,
        13,
        3,
        "scikit-learn wine: 13 chemical measurements, 3 cultivars, 133 train / 45 test",
        {"scale": _STANDARD},
    ),
    _bundled(
        "diabetes",
        "regression",
        442,
        10,
        None,
        "scikit-learn diabetes: 10 patient features -> disease progression after one year, 331 train / 111 test",
        {"scale": _STANDARD, "scale_target": _SCALE_TARGET},
    ),
    _synthetic(
        "spirals",
        "binary",
        "two interleaved spirals in 2-D (synthetic, fixed seed): a classic nonlinear benchmark",
        sources.make_spirals,
        {
            "n_samples": _rows(1000, minimum=8),
            "noise": _noise(0.2, "Gaussian jitter std; adjacent arms are 1 apart"),
            "turns": Parameter("number", 1.5, "> 0", "turns of each spiral"),
            "scale": _STANDARD,
        },
        input_shape=lambda _options: (2,),
        num_classes=2,
    ),
    _synthetic(
        "teacher_student",
        "regression",
        "Gaussian inputs through a fixed random tanh teacher MLP plus noise (synthetic regression)",
        sources.make_teacher_student,
        {
            "n_samples": _rows(1000, minimum=4),
            "n_features": _count(10, "input dimension"),
            "teacher_hidden": _count(32, "hidden units of the teacher"),
            "n_targets": _count(1, "outputs of the teacher"),
            "noise": _noise(0.1, "std of the noise added to the targets"),
            "scale": _STANDARD,
            "scale_target": _SCALE_TARGET,
        },
        input_shape=lambda options: (options["n_features"],),
        num_targets=lambda options: options["n_targets"],
    ),
    _synthetic(
        "symbol_sequences",
        "sequence",
        "noisy frames of a short symbol string, unaligned -> the string (synthetic sequence labelling, for ctc)",
        sources.make_symbol_sequences,
        {
            "n_samples": _rows(2000, minimum=8),
            "num_symbols": _count(8, "alphabet size; the model outputs num_symbols + 1 classes (0: blank)"),
            "max_length": _count(5, "longest string; lengths are uniform in 1..max_length"),
            "timesteps": _count(32, "frames per sample, at least 5*max_length - 1"),
            "features": _count(8, "values per frame"),
            "noise": _noise(0.75, "std of the Gaussian noise on every value; prototypes are N(0, 1)"),
            "scale": _scale("none", "none", "standard"),
        },
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
        raise unknown_name("dataset", str(name), [*DATASETS, *plugins.entry_points("harness.datasets")], where)
    return DATASETS[name]


def resolve_dataset(
    raw: str | Mapping[str, Any] | DatasetSpec, where: str = "dataset", base: Path | None = None
) -> DatasetSpec:
    """Validate a suite's dataset entry and return it with every option's default filled in.

    Args:
        raw: a name ('mnist1d'), a mapping ({name: digits, validation: 0.1, train_samples: 300,
            scale: unit}), or a DatasetSpec (re-validated, defaults filled); or a user dataset
            ({file: ...}, {images: ...}, {python: ...}: harness.data.user_datasets), or the name of
            a dataset a package registers (entry point group `harness.datasets`).
        where: key path of the entry in the suite, used in error messages.
        base: the suite file's folder: a user dataset's relative paths start there.

    Returns:
        A canonical DatasetSpec: validation as float, options sorted and complete.

    Raises:
        SpecError: unknown dataset name (with did-you-mean and the valid names).
        DatasetError: not a name or mapping, unknown option, bad option value, validation not in
            [0, 1), train_samples not an integer in 1..available, or no training rows left.
    """
    if user_datasets.is_user_dataset(raw):
        if isinstance(raw, Mapping) and "resplit" in raw:
            raise DatasetError(
                f"{where}.resplit: a dataset from a file, image folder or plug-in is cut by its split.seed, not per "
                "trial seed; resplit applies to the built-in datasets. Drop resplit (run the suite once per "
                "split.seed to see split variance)."
            )
        return user_datasets.resolve_user_dataset(raw, where, base)  # type: ignore[arg-type]
    if isinstance(raw, DatasetSpec):
        raw = raw.to_dict()
    plugin = plugins.registered_dataset(raw, DATASETS)
    if plugin is not None:
        return user_datasets.resolve_user_dataset(plugin, where, base)
    name, given = split_named(raw, where, "dataset", "name: mnist1d, validation: 0.1", DatasetError)
    definition = definition_of(name, f"{where}.name" if isinstance(raw, Mapping) else where)
    validation = _check_validation(given.pop("validation", 0.0), f"{where}.validation")
    train_samples = given.pop("train_samples", None)
    resplit = _check_option(RESPLIT, given.pop("resplit", RESPLIT.default), f"{where}.resplit")

    options = definition.defaults()
    valid = [*GENERAL_KEYS[1:], *definition.options]
    reject_unknown_keys(given, valid, where, f"dataset {name!r}", noun="option", label="Its keys", error=DatasetError)
    for key, value in given.items():
        options[key] = _check_option(definition.options[key], value, f"{where}.{key}")
    if definition.check_options is not None:
        definition.check_options(options, where)

    available = definition.num_train(options)
    if train_samples is not None and (
        isinstance(train_samples, bool) or not isinstance(train_samples, int) or not 1 <= train_samples <= available
    ):
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
    if resplit != "fixed" and definition.own_test_split and validation == 0 and train_samples is None:
        raise DatasetError(
            f"{where}.resplit: {resplit!r} would redraw nothing: {name!r} keeps its source's own test split, and "
            "with no validation and no train_samples every training row is used by every seed. Set validation "
            "(e.g. 0.2) or train_samples, or drop resplit."
        )
    return DatasetSpec(
        name=name,
        validation=validation,
        train_samples=train_samples,
        options=tuple(sorted(options.items())),
        resplit=resplit,
    )


def _check_option(option: Parameter, value: Any, where: str) -> Any:
    """The option's check, reworded as a dataset error: what was received (and its type), and the default."""
    try:
        return option.check(value, where)
    except SpecError:
        hint = did_you_mean(value, option.choices) if option.kind == "choice" else ""
        raise DatasetError(
            f"{where}: expected {option.expected()}, got {value!r} ({type(value).__name__}).{hint} "
            f"Default: {option.default!r}."
        ) from None


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
    if spec.name in user_datasets.USER_SOURCES:
        return user_datasets.user_dataset_info(spec)
    definition = definition_of(spec.name)
    return definition.info({**definition.defaults(), **dict(spec.options)})


def training_rows(spec: DatasetSpec) -> int:
    """Rows of the training split a trial steps over (after train_samples and validation), without loading."""
    if spec.name in user_datasets.USER_SOURCES:  # resolved when the suite loaded: its split sizes are known
        return int(dict(spec.options)["rows"][0])
    definition = definition_of(spec.name)
    available = definition.num_train({**definition.defaults(), **dict(spec.options)})
    kept = spec.train_samples if spec.train_samples is not None else available
    return kept - held_out_count(kept, spec.validation)


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset with its default options, in registry order (for `harness list`)."""
    return [definition.info(definition.defaults()) for definition in DATASETS.values()]
