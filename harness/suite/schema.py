"""The fixed-shape parts of a suite: top-level keys, `training`, `regularizer`, seeds, backends.

pydantic models (strict: no '20' -> 20 coercion, no true -> 1; unknown keys forbidden)
check the blocks whose keys are fixed; their errors are translated into the loader's
format (key path, what was received, what was expected, how to fix it) by raising a
`SuiteIssue`, which the loader locates to a file line. Components, models and datasets
have their own resolvers (harness.spec, harness.data) and are typed `Any` here.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from harness.adapters import check_backend
from harness.errors import HarnessError, did_you_mean
from harness.spec import INITIALIZERS, LOSSES, OPTIMIZERS, RegularizerSpec, TrainingSpec
from harness.spec.params import Parameter
from harness.spec.schedules import resolve_early_stopping, resolve_schedule
from harness.spec.types import INIT_MODES
from harness.suite.yaml_source import KeyPath, SuiteIssue, display_path

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # it names a results folder: no '/', '..', spaces or leading '-'
MAX_SEEDS = 1000  # per suite; a seed reruns every cell, and the shipped suites use at most 5
DEVICE_PATTERN = re.compile(r"^(cpu|auto|cuda|cuda:\d+)$")


class _Block(BaseModel):
    # strict: YAML already gives typed scalars, so '20' or true where a number belongs is a mistake.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SuiteDocument(_Block):
    """Top level of a suite file. Fields typed `Any` are checked per grid cell by their resolvers."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=100,
        description="a name of letters, digits, - and _ (it names the results folder <store>/<name>/, so "
        "no '/', '..' or spaces), e.g. name: optimizers",
    )
    description: str = Field("", description="a line of text, e.g. description: SGD vs Adam on MNIST-1D")
    dataset: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    initializer: Any = None
    regularizer: Any = None
    training: Any = None
    seeds: Any = 1
    backends: Any = None
    init_mode: Any = "shared"
    device: Any = "cpu"
    grid: dict[str, Any] | None = Field(
        None, description="a mapping of axes, e.g. grid: {optimizer: {sgd: sgd, adam: adam}}"
    )
    exclude: list[dict[str, Any]] | None = Field(
        None, description="a list of mappings {axis: label}, e.g. exclude: [{optimizer: sgd, training.batch_size: 32}]"
    )
    report: dict[str, Any] | None = Field(
        None, description="a mapping of report options, e.g. report: {reference: sgd}"
    )
    check: dict[str, Any] | None = Field(None, description="a mapping of per-metric tolerances, e.g. check: {}")
    expect: list[str] | None = Field(None, description="a list of claim strings, e.g. expect: ['adam beats sgd']")
    search: Any = None  # per-arm hyperparameter search; checked by harness.suite.search.parse_search
    diagnostics: Any = None  # per-layer statistics at chosen epochs; checked by harness.diagnostics.resolve_diagnostics


_ANNOTATIONS: dict[str, Any] = {"number": float, "integer": int, "bool": bool, "any": Any}


def block_model(spec_class: type, name: str) -> type[_Block]:
    """A strict pydantic model of a suite block, derived from the Parameters its spec dataclass declares.

    Each field's type, bounds and default come from the declaration; its description (used in
    every message about the key) is `Parameter.explained`: 'an integer > 0 (passes over the
    training split), e.g. epochs: 20'.
    """
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(spec_class):
        declaration: Parameter = field.metadata["parameter"]
        # a choice is a Literal: pydantic refuses any other value (literal_error, translated with a did-you-mean);
        # an 'any' is checked by the block's own resolver
        annotation = Literal[declaration.choices] if declaration.kind == "choice" else _ANNOTATIONS[declaration.kind]
        options: dict[str, Any] = dict(declaration.bounds.pydantic(), description=declaration.explained(field.name))
        if declaration.kind == "number":
            options["allow_inf_nan"] = False
        default = ... if field.default is dataclasses.MISSING else field.default  # ...: required
        fields[field.name] = (annotation | None if declaration.nullable else annotation, Field(default, **options))
    return create_model(
        name, __base__=_Block, __doc__=f"`{name.removesuffix('Block').lower()}:` -> {spec_class.__name__}.", **fields
    )


TrainingBlock = block_model(TrainingSpec, "TrainingBlock")
RegularizerBlock = block_model(RegularizerSpec, "RegularizerBlock")  # every key optional; absent means off


REQUIRED = {
    "name": "the suite's name (letters, digits, - and _), e.g. name: optimizers",
    "dataset": "the data, e.g. dataset: mnist1d or dataset: {name: digits, validation: 0.2} (list them: harness list datasets)",
    "model": "the network, e.g. model: {mlp: {hidden: [100, 100], activation: relu}}",
    "loss": f"the loss, e.g. loss: cross_entropy (one of: {', '.join(LOSSES)})",
    "optimizer": f"the optimizer, e.g. optimizer: {{name: adam, lr: 0.001}} (one of: {', '.join(OPTIMIZERS)})",
    "initializer": f"the weight initializer, e.g. initializer: he_normal (one of: {', '.join(INITIALIZERS)})",
    "training": "the training budget, e.g. training: {epochs: 20, batch_size: 100}",
}


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def received(value: Any) -> str:
    """`'abc' (string)`, `0 (int)`: how a received value is shown in messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({_type_name(value)})"


def validate_block(model: type[_Block], raw: Any, path: KeyPath) -> _Block:
    """Validate one mapping against a pydantic block model.

    Raises:
        SuiteIssue: at the offending key, the first unknown key first (a typo usually
            also shows up as a missing key, and the unknown key is the better clue); every
            other bad key of the block in `also`, but for a missing key an unknown one is a typo of.
    """
    keys = list(model.model_fields)
    if not isinstance(raw, Mapping):
        raise SuiteIssue(path, f"expected a mapping with keys among {', '.join(keys)}, got {received(raw)}.")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as error:
        issues = sorted(error.errors(), key=lambda item: item["type"] != "extra_forbidden")
        unknown = [str(issue["loc"][0]) for issue in issues if issue["type"] == "extra_forbidden"]
        kept = [
            issue
            for issue in issues
            if issue["type"] != "missing" or not difflib.get_close_matches(str(issue["loc"][0]), unknown, n=1)
        ]
        raise SuiteIssue.several([_translate(model, issue, path) for issue in kept]) from None


def _translate(model: type[_Block], issue: Mapping[str, Any], path: KeyPath) -> SuiteIssue:
    location = issue["loc"]
    key = location[0]
    if issue["type"] == "extra_forbidden":
        valid = list(model.model_fields)
        return SuiteIssue(
            (*path, key),
            f"unknown key {key!r}.{did_you_mean(str(key), valid)} Expected keys: {', '.join(valid)}.",
        )
    field = model.model_fields[key]
    if issue["type"] == "missing":
        return SuiteIssue(path, f"missing required key {key!r}: {field.description}.")
    # Keep list indices in the path (expect[2]); drop pydantic's internal tags ('[key]', 'str', ...).
    indices = tuple(part for part in location[1:] if isinstance(part, int))
    hint = ""
    if issue["type"] == "literal_error" and isinstance(issue["input"], str):
        hint = did_you_mean(issue["input"], _choices(field.annotation))
    return SuiteIssue((*path, key, *indices), f"expected {field.description}, got {received(issue['input'])}.{hint}")


def _choices(annotation: Any) -> list[str]:
    """The strings a Literal annotation (possibly inside `X | None`) admits."""
    if get_origin(annotation) is Literal:
        return [str(choice) for choice in get_args(annotation)]
    return [choice for argument in get_args(annotation) for choice in _choices(argument)]


def training_spec(raw: Any, path: KeyPath = ("training",)) -> TrainingSpec:
    """The `training:` block; its lr_schedule and early_stopping by their resolvers (harness.spec.schedules).

    Raises:
        SuiteIssue: a fixed key's problem; SpecError: a schedule's or early stopping's (at its key path).
    """
    values = validate_block(TrainingBlock, raw, path).model_dump()
    where = display_path(path)
    if values["lr_schedule"] is not None:
        values["lr_schedule"] = resolve_schedule(values["lr_schedule"], f"{where}.lr_schedule")
    if values["early_stopping"] is not None:
        values["early_stopping"] = resolve_early_stopping(values["early_stopping"], f"{where}.early_stopping")
    return TrainingSpec(**values)


def regularizer_spec(raw: Any, path: KeyPath = ("regularizer",)) -> RegularizerSpec:
    return RegularizerSpec(**validate_block(RegularizerBlock, {} if raw is None else raw, path).model_dump())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_seeds(raw: Any, path: KeyPath) -> tuple[int, ...]:
    """`3` -> (0, 1, 2); `[0, 5, 7]` -> (0, 5, 7).

    Raises:
        SuiteIssue: not an int > 0 nor a non-empty list of unique ints >= 0.
    """
    expected = "a count > 0 (seeds: 3 means seeds 0, 1, 2) or a list of distinct integers >= 0 (seeds: [0, 1, 2])"
    count = raw if _is_int(raw) else len(raw) if isinstance(raw, (list, tuple)) else 0
    if count > MAX_SEEDS:
        raise SuiteIssue(
            path,
            f"{count} seeds is over the limit of {MAX_SEEDS} (each seed reruns every cell; 3 to 10 are usual). "
            "Use fewer seeds.",
        )
    if _is_int(raw):
        if raw <= 0:
            raise SuiteIssue(path, f"expected {expected}, got {received(raw)}.")
        return tuple(range(raw))
    if isinstance(raw, (list, tuple)) and raw:
        for index, seed in enumerate(raw):
            if not _is_int(seed) or seed < 0:
                raise SuiteIssue((*path, index), f"expected an integer >= 0 as a seed, got {received(seed)}.")
        repeated = sorted({seed for seed in raw if list(raw).count(seed) > 1})
        if repeated:
            raise SuiteIssue(
                path,
                f"seed {repeated[0]} is listed more than once in {list(raw)}; each seed runs once. Remove the repeat.",
            )
        return tuple(raw)
    raise SuiteIssue(path, f"expected {expected}, got {received(raw)}.")


SEED_SETS = ("explore", "confirm")


@dataclasses.dataclass(frozen=True)
class SeedSets:
    """A suite's seeds: all of them run; claims are judged on `confirm` when it is not empty."""

    explore: tuple[int, ...]
    confirm: tuple[int, ...] = ()  # () for `seeds: 3` or `seeds: [0, 1, 2]`: no confirmation seeds

    @property
    def all(self) -> tuple[int, ...]:
        return self.explore + self.confirm


def parse_seed_sets(raw: Any, path: KeyPath) -> SeedSets:
    """`3` or `[0, 5, 7]` (no confirmation seeds), or `{explore: ..., confirm: ...}`.

    In the mapping each set is a count or a list like `seeds` itself. A count for `explore` means
    0 .. n-1; a count for `confirm` means the n seeds after the largest explore seed (`{explore: 3,
    confirm: 5}` is explore 0-2, confirm 3-7), so the two never overlap by accident.

    Raises:
        SuiteIssue: a set that `parse_seeds` refuses, an unknown or missing key, sets that share a
            seed, or more than MAX_SEEDS seeds in all.
    """
    if not isinstance(raw, Mapping):
        return SeedSets(parse_seeds(raw, path))
    unknown = [key for key in raw if key not in SEED_SETS]
    if unknown:
        hint = did_you_mean(str(unknown[0]), SEED_SETS)
        raise SuiteIssue(
            (*path, str(unknown[0])),
            f"unknown key {unknown[0]!r}.{hint} Seeds as a mapping takes explore (the seeds the claims were written "
            "on) and confirm (fresh seeds that judge them), e.g. seeds: {explore: [0, 1, 2], confirm: [3, 4, 5]}.",
        )
    missing = [key for key in SEED_SETS if key not in raw]
    if missing:
        raise SuiteIssue(
            path,
            f"missing key {missing[0]!r}: seeds as a mapping needs both explore and confirm, e.g. seeds: "
            "{explore: [0, 1, 2], confirm: [3, 4, 5]}. Without confirmation seeds write seeds: [0, 1, 2].",
        )
    explore = parse_seeds(raw["explore"], (*path, "explore"))
    confirm_raw = raw["confirm"]
    if _is_int(confirm_raw) and 0 < confirm_raw <= MAX_SEEDS:
        start = max(explore) + 1
        confirm = tuple(range(start, start + confirm_raw))
    else:
        confirm = parse_seeds(confirm_raw, (*path, "confirm"))
    shared = sorted(set(explore) & set(confirm))
    if shared:
        raise SuiteIssue(
            (*path, "confirm"),
            f"seed {shared[0]} is both an explore and a confirm seed ({seed_text(shared)} in both); a confirmation "
            "seed must be one the claims were not written on. Use seeds the explore set does not list.",
        )
    if len(explore) + len(confirm) > MAX_SEEDS:
        raise SuiteIssue(
            path, f"{len(explore) + len(confirm)} seeds in all is over the limit of {MAX_SEEDS}. Use fewer seeds."
        )
    return SeedSets(explore, confirm)


def seed_text(seeds: Sequence[int]) -> str:
    """`0-2, 5, 7-9`: seeds as short runs (for messages and report headers)."""
    ordered = sorted(seeds)
    runs: list[list[int]] = []
    for seed in ordered:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def parse_backends(raw: Any, path: KeyPath) -> tuple[str, ...]:
    """Validate backend names and that their frameworks are installed (imports none of them).

    Raises:
        SuiteIssue: not a non-empty list of distinct names, an unknown name (did-you-mean),
            or a backend whose packages are missing (kind BackendError, names the pip extra).
    """
    if isinstance(raw, str):
        raw = [raw]  # `backends: torch` means [torch]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SuiteIssue(
            path, f"expected a non-empty list of backend names such as [torch, keras], got {received(raw)}."
        )
    names: list[str] = []
    for index, name in enumerate(raw):
        where = (*path, index)
        if not isinstance(name, str):
            raise SuiteIssue(where, f"expected a backend name such as torch, got {received(name)}.")
        if name in names:
            raise SuiteIssue(where, f"backend {name!r} is listed twice. Remove the repeat.")
        try:
            check_backend(name, display_path(where))
        except HarnessError as error:
            raise issue_from_error(error, where) from None
        names.append(name)
    return tuple(names)


def issue_from_error(error: HarnessError, path: KeyPath) -> SuiteIssue:
    """Re-home a resolver's error (whose message starts with `<where>: `) at `path`."""
    message = str(error)
    prefix = f"{display_path(path)}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    return SuiteIssue(path, message, type(error))


def check_init_mode(raw: Any, path: KeyPath = ("init_mode",)) -> str:
    if raw not in INIT_MODES:
        raise SuiteIssue(
            path,
            f"expected one of {', '.join(INIT_MODES)}, got {received(raw)}.{did_you_mean(str(raw), INIT_MODES)} "
            "shared: numpy draws the initial weights once per seed, so every backend starts from the same point; "
            "native: each framework draws its own.",
        )
    return raw


def check_device(raw: Any, path: KeyPath = ("device",)) -> str:
    if not isinstance(raw, str) or not DEVICE_PATTERN.match(raw):
        raise SuiteIssue(
            path,
            f"expected cpu, auto (a GPU if one is visible, else cpu), cuda or cuda:N (N a GPU index), got {received(raw)}.",
        )
    return raw


def check_required(document: Mapping[str, Any], provided_by_grid: Sequence[str]) -> None:
    """Every required top-level key is present (or a grid axis replaces it whole in every cell).

    Raises:
        SuiteIssue: the first missing key, the others in `also`.
    """
    missing = [
        SuiteIssue((key,), f"missing required key {key!r}: {description}. There is no default for it.")
        for key, description in REQUIRED.items()
        if key not in document and key not in provided_by_grid
    ]
    if missing:
        raise SuiteIssue.several(missing)
