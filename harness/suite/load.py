"""Load a suite file into a validated `Suite`: one `Trial` per grid cell x backend x seed.

    suite = load_suite("suites/optimizers.yaml", backends=["torch"], seeds=3)
    suite.arms        # ('sgd', 'momentum', 'adagrad', 'rmsprop', 'adam')
    suite.trials[0]   # Trial(suite='optimizers', arm='sgd', cell=(('optimizer', 'sgd'),), spec=TrialSpec(...))

Every cell is resolved completely (dataset, components with defaults filled, model shapes
checked against the data and the loss) before anything runs, so a suite that loads is a
suite whose every trial can be built. Nothing here imports a deep-learning framework.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from harness.data import dataset_info, resolve_dataset
from harness.diagnostics import EXTRAS_KEY, resolve_diagnostics
from harness.errors import HarnessError, SpecError
from harness.spec import Trial, TrialSpec, check_model_against_task, resolve_component, resolve_model
from harness.spec.model import LOSS_TASKS
from harness.spec.types import effective_weight_decay
from harness.suite.grid import AXIS_FIELDS, Cell, apply_cell, expand_grid, normalize_document, parse_grid
from harness.suite.schema import (
    SuiteDocument,
    check_device,
    check_init_mode,
    check_required,
    issue_from_error,
    parse_backends,
    parse_seeds,
    received,
    regularizer_spec,
    training_spec,
    validate_block,
)
from harness.suite.yaml_source import KeyPath, SourceMap, SuiteIssue, display_path, load_yaml, split_path_prefix

DEFAULT_BACKENDS = ("torch",)


@dataclass(frozen=True)
class Suite:
    """A loaded, fully validated suite."""

    name: str  # names the results folder <store>/<name>/
    description: str
    path: Path  # the file it was loaded from, as given
    trials: tuple[Trial, ...]  # cell-major, then backend, then seed
    arms: tuple[str, ...]  # in grid order (first axis slowest); ('base',) without a grid
    axes: tuple[str, ...]  # axis keys in order ("optimizer", "model.mlp.hidden", ...)
    backends: tuple[str, ...]
    seeds: tuple[int, ...]
    report: Mapping[str, Any]  # free-form blocks for later stages, checked to be mappings only
    check: Mapping[str, Any]
    expect: tuple[str, ...]
    document: Mapping[str, Any]  # the YAML as loaded (for the report)


def load_suite(
    path: str | Path,
    *,
    backends: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
) -> Suite:
    """Read, validate and expand a suite file.

    Args:
        path: the suite's YAML file.
        backends: replaces the suite's `backends` (the CLI's --backend).
        seeds: replaces the suite's `seeds`: a count (3 -> 0, 1, 2) or a list (the CLI's --seeds).

    Returns:
        The Suite, with one Trial per (cell, backend, seed).

    Raises:
        HarnessError: SpecError for anything malformed, unknown or inconsistent;
            DatasetError for bad dataset options; BackendError when a backend's framework
            is not installed. Messages start with `<file>:<line>: <key path>: `
            (overrides from arguments start with `--backend: ` or `--seeds: `).
    """
    path = Path(path)
    document, source = load_yaml(path)
    try:
        return _build(path, document, source, backends, seeds)
    except SuiteIssue as issue:
        raise _locate(issue.path, ": " + issue.message, issue.kind, source, (), "") from None


def _build(
    path: Path, document: Any, source: SourceMap, backends: Sequence[str] | None, seeds: int | Sequence[int] | None
) -> Suite:
    if not isinstance(document, dict):
        what = "the file is empty" if document is None else f"got {received(document)}"
        raise SuiteIssue(
            (),
            f"a suite is a YAML mapping of keys (name, dataset, model, loss, optimizer, initializer, training, ...); "
            f"{what}. See suites/smoke.yaml for a complete example.",
        )
    axes = parse_grid(document["grid"] if isinstance(document.get("grid"), Mapping) else None)
    whole_fields = {a.target[0] for axis in axes for a in axis.variants[0].assignments if len(a.target) == 1}
    check_required(document, sorted(whole_fields))
    top = cast(SuiteDocument, validate_block(SuiteDocument, document, ()))
    suite_seeds = _override(parse_seeds, seeds, "--seeds") if seeds is not None else parse_seeds(top.seeds, ("seeds",))
    if backends is not None:
        suite_backends = _override(parse_backends, list(backends), "--backend")
    else:
        suite_backends = parse_backends(
            top.backends if "backends" in document else list(DEFAULT_BACKENDS), ("backends",)
        )
    cells = expand_grid(axes, top.exclude)
    base = normalize_document(document)

    templates: list[TrialSpec] = []
    seen: dict[str, str] = {}
    for cell in cells:
        template = _resolve_cell_located(base, cell, source, suite_backends[0], has_grid=bool(axes))
        if template.hash in seen:
            raise SuiteIssue(
                ("grid",),
                f"cells {seen[template.hash]!r} and {cell.arm!r} resolve to the same trial (after defaults are filled "
                "in, their dataset, model, loss, optimizer, initializer, regularizer, training, init_mode and device "
                "are identical), so they would run one experiment under two names. Remove one, or make them differ.",
            )
        seen[template.hash] = cell.arm
        templates.append(template)

    trials = tuple(
        Trial(top.name, cell.arm, cell.labels, dataclasses.replace(template, seed=seed, backend=backend))
        for cell, template in zip(cells, templates)
        for backend in suite_backends
        for seed in suite_seeds
    )
    return Suite(
        name=top.name,
        description=top.description,
        path=path,
        trials=trials,
        arms=tuple(cell.arm for cell in cells),
        axes=tuple(axis.key for axis in axes),
        backends=suite_backends,
        seeds=suite_seeds,
        report=dict(top.report or {}),
        check=dict(top.check or {}),
        expect=tuple(top.expect or ()),
        document=document,
    )


def _override(parse: Any, value: Any, flag: str) -> Any:
    """Validate a value given as an argument (a CLI flag) rather than in the file."""
    try:
        return parse(value, (flag,))
    except SuiteIssue as issue:
        raise issue.kind(f"{display_path(issue.path)}: {issue.message}") from None


def _resolve_cell_located(
    base: Mapping[str, Any], cell: Cell, source: SourceMap, backend: str, has_grid: bool
) -> TrialSpec:
    """Resolve one cell; locate any error at the line the offending value was written on."""
    note = f" [grid cell {cell.arm!r}]" if has_grid else ""
    provenance: tuple[tuple[KeyPath, KeyPath], ...] = ()
    try:
        document, provenance = apply_cell(base, cell)
        return resolve_cell(document, backend)
    except SuiteIssue as issue:
        raise _locate(issue.path, ": " + issue.message, issue.kind, source, provenance, note) from None
    except HarnessError as error:
        # A resolver's message starts with the key path it was given plus the keys below it.
        path, rest = split_path_prefix(str(error))
        if not path or path[0] not in AXIS_FIELDS:
            path, rest = (), ": " + str(error)
        path = _refine_path(path, rest)
        raise _locate(path, rest, type(error), source, provenance, note) from None


# Resolvers name an unknown key in the text ("optimizer: optimizer 'sgd' has no parameter 'lrr'")
# rather than in the path; pointing at the key itself gives its own line and grid origin.
_UNKNOWN_KEY = re.compile(r"^: [^.]*?(?:has no parameter|has no option|unknown key) '([A-Za-z_][A-Za-z0-9_]*)'")


def _refine_path(path: KeyPath, rest: str) -> KeyPath:
    match = _UNKNOWN_KEY.match(rest)
    if match and path and path[-1] != match.group(1):
        return (*path, match.group(1))
    return path


def _locate(
    path: KeyPath,
    rest: str,
    kind: type[HarnessError],
    source: SourceMap,
    provenance: tuple[tuple[KeyPath, KeyPath], ...],
    note: str,
) -> HarnessError:
    """`<file>:<line>: <path in the file><rest><note>`, mapping a cell-document path to where it was written."""
    written = tuple(path)
    best = -1
    for target, origin in provenance:
        if len(target) > best and written[: len(target)] == target:
            best, mapped = len(target), (*origin, *path[len(target) :])
    if best >= 0:
        written = mapped
    return kind(f"{source.file}:{source.line(written)}: {display_path(written)}{rest}{note}")


def resolve_cell(document: Mapping[str, Any], backend: str) -> TrialSpec:
    """Resolve one cell's document into a TrialSpec (seed 0; the caller sets seed and backend).

    Raises:
        SuiteIssue or HarnessError: with a key path of the cell document (located by the caller).
    """
    regularizer = regularizer_spec(document.get("regularizer"))
    training = training_spec(document.get("training"))
    dataset = resolve_dataset(document.get("dataset"), "dataset")
    info = dataset_info(dataset)
    loss = resolve_component("loss", document.get("loss"), "loss")
    needed = LOSS_TASKS[loss.name]
    if info.task != needed:
        fitting = [name for name, task in LOSS_TASKS.items() if task == info.task]
        classes = f" with {info.num_classes} classes" if info.num_classes else ""
        raise SuiteIssue(
            ("loss",),
            f"loss {loss.name!r} needs a {needed} dataset, but {info.name!r} is a {info.task} dataset{classes}. "
            f"Use loss: {' or '.join(fitting)} with this dataset, or choose a {needed} dataset.",
        )
    optimizer = resolve_component("optimizer", document.get("optimizer"), "optimizer")
    initializer = resolve_component("initializer", document.get("initializer"), "initializer")
    try:
        effective_weight_decay(optimizer, regularizer)
    except SpecError as error:
        raise issue_from_error(error, ("regularizer", "weight_decay")) from None
    model = resolve_model(
        document.get("model"),
        info.num_outputs,
        dropout=regularizer.dropout,
        where="model",
        input_shape=info.input_shape,
    )
    if regularizer.dropout > 0 and model.family is None:
        raise SuiteIssue(
            ("regularizer", "dropout"),
            f"regularizer.dropout ({regularizer.dropout}) inserts dropout after each hidden layer of a family model "
            "(mlp), but this model is an explicit layer list, where it would silently do nothing. Put "
            f"{{dropout: {{rate: {regularizer.dropout}}}}} layers in model.layers and remove regularizer.dropout.",
        )
    check_model_against_task(model, info.input_shape, loss.name, info.task, info.num_outputs, info.target_length)
    try:
        diagnostics = resolve_diagnostics(document.get("diagnostics"), training.epochs)
    except SpecError as error:
        path, rest = split_path_prefix(str(error))
        raise SuiteIssue(path or ("diagnostics",), rest.removeprefix(": ")) from None
    return TrialSpec(
        dataset=dataset,
        model=model,
        loss=loss,
        optimizer=optimizer,
        initializer=initializer,
        regularizer=regularizer,
        training=training,
        seed=0,
        backend=backend,
        init_mode=check_init_mode(document.get("init_mode", "shared")),
        device=check_device(document.get("device", "cpu")),
        # only present when on, so the hashes of specs without diagnostics do not change
        extras=((EXTRAS_KEY, diagnostics.to_dict()),) if diagnostics is not None else (),
    )
