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
from harness.diagnostics import EXTRAS_KEY
from harness.errors import HarnessError, SpecError
from harness.spec import Trial, TrialSpec, check_model_against_task, resolve_component, resolve_model
from harness.suite.consistency import (
    check_depth,
    check_dropout,
    check_loss_task,
    check_save_weights,
    check_training_against_data,
    check_weight_decay,
    suite_diagnostics,
)
from harness.suite.grid import AXIS_FIELDS, Cell, apply_cell, expand_grid, normalize_document, parse_grid
from harness.suite.python_models import check_python_models, python_model_init
from harness.suite.schema import (
    REQUIRED,
    SeedSets,
    SuiteDocument,
    check_device,
    check_init_mode,
    check_required,
    parse_backends,
    parse_seed_sets,
    parse_seeds,
    received,
    regularizer_spec,
    seed_text,
    training_spec,
    validate_block,
)
from harness.suite.search import SearchSpec, parse_search
from harness.suite.yaml_source import KeyPath, SourceMap, SuiteIssue, display_path, load_yaml, split_path_prefix

DEFAULT_BACKENDS = ("torch",)
MAX_TRIALS = 100_000  # cells x backends x seeds; the shipped suites have at most 60


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
    seeds: tuple[int, ...]  # every seed to run: the file's explore + confirm seeds, or --seeds
    report: Mapping[str, Any]  # free-form blocks for later stages, checked to be mappings only
    check: Mapping[str, Any]
    expect: tuple[str, ...]
    document: Mapping[str, Any]  # the YAML as loaded (for the report)
    # The file's `seeds: {explore, confirm}` sets as declared (--seeds does not change them); confirm is ()
    # when the file lists plain seeds. Claims are judged on confirm_seeds when there are any.
    explore_seeds: tuple[int, ...] = ()
    confirm_seeds: tuple[int, ...] = ()

    # With a `search:` block, `trials` are the arms at their written values on the final seeds: the
    # planner (harness.search) replaces them with each arm's chosen configuration once it has searched.
    search: SearchSpec | None = None
    cells: tuple[Cell, ...] = ()  # the grid cells, one per arm, in arm order (the planner applies values to them)

    def seed_roles(self) -> str:
        """'seeds 0-2 explore, 3-7 confirm', or 'seeds 0-2' without confirmation seeds (for headers)."""
        return seed_roles(self.explore_seeds or self.seeds, self.confirm_seeds)


def seed_roles(explore: Sequence[int], confirm: Sequence[int]) -> str:
    """'seeds 0-2 explore, 3-7 confirm' or 'seeds 0-2'."""
    if not confirm:
        return f"seeds {seed_text(explore)}"
    return f"seeds {seed_text(explore)} explore, {seed_text(confirm)} confirm"


PHASES = ("all", "explore", "confirm")


def select_phase(suite: Suite, phase: str) -> Suite:
    """The suite with only the trials of one seed set: 'explore', 'confirm', or 'all' (unchanged).

    Raises:
        SpecError: 'explore' or 'confirm' on a suite without confirmation seeds, or an unknown phase.
    """
    if phase == "all":
        return suite
    if phase not in PHASES:
        raise SpecError(f"--phase: expected one of {', '.join(PHASES)}, got {phase!r}.")
    if not suite.confirm_seeds:
        raise SpecError(
            f"--phase {phase}: suite {suite.name!r} ({suite.path}) has no confirmation seeds, so it has no "
            f"{phase} set. Declare them as seeds: {{explore: [0, 1, 2], confirm: [3, 4, 5]}}, or leave --phase out."
        )
    chosen = suite.confirm_seeds if phase == "confirm" else suite.explore_seeds
    keep = set(chosen)
    return dataclasses.replace(
        suite,
        trials=tuple(trial for trial in suite.trials if trial.spec.seed in keep),
        seeds=tuple(seed for seed in suite.seeds if seed in keep),
    )


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
        seeds: replaces the seeds to run: a count (3 -> 0, 1, 2) or a list (the CLI's --seeds). The file's
            explore/confirm sets stay as declared (`Suite.confirm_seeds`): claims are still judged on them.

    Returns:
        The Suite, with one Trial per (cell, backend, seed).

    Raises:
        HarnessError: SpecError for anything malformed, unknown or inconsistent;
            DatasetError for bad dataset options; BackendError when a backend's framework
            is not installed. Messages start with `<file>:<line>: <key path>: `
            (overrides from arguments start with `--backend: ` or `--seeds: `).
            Independent problems (in different keys, blocks or grid cells) are found in one pass:
            one is raised as itself, several as a SuiteErrors listing each.
    """
    path = Path(path)
    document, source = load_yaml(path)
    errors = _Errors(source)
    try:
        suite = _build(path, document, source, backends, seeds, errors)
    except SuiteIssue as issue:
        errors.add_issue(issue)
        suite = None
    errors.raise_any()
    assert suite is not None  # _build returns None only after recording an error
    return suite


MAX_LISTED_ERRORS = 20


class SuiteErrors(SpecError):
    """Several independent errors of one suite file, each located (`errors`); the message lists them all."""

    def __init__(self, file: Path, errors: Sequence[HarnessError]) -> None:
        self.errors = tuple(errors)
        listed = "\n".join(f"  {error}" for error in self.errors[:MAX_LISTED_ERRORS])
        more = len(self.errors) - MAX_LISTED_ERRORS
        super().__init__(
            f"{file}: {len(self.errors)} errors, each to fix:\n{listed}"
            + (f"\n  ... and {more} more." if more > 0 else "")
        )


class _Errors:
    """The located errors found so far in one suite, each once (a base-document problem recurs in every cell)."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.found: list[HarnessError] = []
        self.seen: set[str] = set()

    def add(self, error: HarnessError, note: str = "") -> None:
        key = str(error).removesuffix(note)  # one problem, whichever cell found it first
        if key not in self.seen:
            self.seen.add(key)
            self.found.append(error)

    def add_issue(self, issue: SuiteIssue) -> None:
        for one in issue.every():
            self.add(_locate(one.path, ": " + one.message, one.kind, self.source, (), ""))

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise SuiteErrors(self.source.file, sorted(self.found, key=self._line))

    def _line(self, error: HarnessError) -> int:
        match = re.match(rf"{re.escape(str(self.source.file))}:(\d+):", str(error))
        return int(match.group(1)) if match else 0


def _build(
    path: Path,
    document: Any,
    source: SourceMap,
    backends: Sequence[str] | None,
    seeds: int | Sequence[int] | None,
    errors: _Errors,
) -> Suite | None:
    """The Suite, or None when `errors` holds what is wrong. A SuiteIssue raised is a problem that stops the
    pass (no mapping, a bad grid): nothing after it could be checked."""
    if not isinstance(document, dict):
        what = "the file is empty" if document is None else f"got {received(document)}"
        raise SuiteIssue(
            (),
            f"a suite is a YAML mapping of keys (name, dataset, model, loss, optimizer, initializer, training, ...); "
            f"{what}. See suites/smoke.yaml for a complete example.",
        )
    axes = parse_grid(document["grid"] if isinstance(document.get("grid"), Mapping) else None)
    whole_fields = {a.target[0] for axis in axes for a in axis.variants[0].assignments if len(a.target) == 1}
    try:
        check_required(document, sorted(whole_fields))
    except SuiteIssue as issue:
        errors.add_issue(issue)
    top: SuiteDocument | None = None
    try:
        top = cast(SuiteDocument, validate_block(SuiteDocument, document, ()))
    except SuiteIssue as issue:
        errors.add_issue(issue)
        if any(one.path[:1] == ("exclude",) for one in issue.every()):
            return None  # the cells depend on it
    suite_seeds = suite_backends = None
    seed_sets = SeedSets(())
    try:
        seed_sets = parse_seed_sets(document.get("seeds", 1), ("seeds",))
        suite_seeds = _override(parse_seeds, seeds, "--seeds") if seeds is not None else seed_sets.all
    except SuiteIssue as issue:
        errors.add_issue(issue)
    except HarnessError as error:
        errors.add(error)
    try:
        if backends is not None:
            suite_backends = _override(parse_backends, list(backends), "--backend")
        else:
            suite_backends = parse_backends(document.get("backends", list(DEFAULT_BACKENDS)), ("backends",))
    except SuiteIssue as issue:
        errors.add_issue(issue)
    except HarnessError as error:
        errors.add(error)
    exclude = top.exclude if top is not None else document.get("exclude")  # valid: no error under `exclude`
    cells = expand_grid(axes, cast("list[Mapping[str, Any]] | None", exclude))
    base = normalize_document(document)

    missing = frozenset(key for key in REQUIRED if key not in document and key not in whole_fields)  # reported above
    backend = suite_backends[0] if suite_backends else DEFAULT_BACKENDS[0]
    templates = [
        _resolve_cell_located(base, cell, source, backend, bool(axes), errors, missing, path.parent) for cell in cells
    ]
    seen: dict[str, str] = {}
    for cell, template in zip(cells, templates):
        if template is None:
            continue
        if template.hash in seen:
            raise SuiteIssue(
                ("grid",),
                f"cells {seen[template.hash]!r} and {cell.arm!r} resolve to the same trial (after defaults are filled "
                "in, their dataset, model, loss, optimizer, initializer, regularizer, training, init_mode and device "
                "are identical), so they would run one experiment under two names. Remove one, or make them differ.",
            )
        seen[template.hash] = cell.arm
    if errors.found or top is None or suite_seeds is None or suite_backends is None:
        return None
    check_python_models(templates, suite_backends)
    count = len(cells) * len(suite_backends) * len(suite_seeds)
    if count > MAX_TRIALS:
        raise SuiteIssue(
            ("grid",) if axes else ("seeds",),
            f"{len(cells)} cells x {len(suite_backends)} backends x {len(suite_seeds)} seeds = {count:,} trials, over "
            f"the limit of {MAX_TRIALS:,} for one suite. Use fewer seeds or grid values, or split the suite.",
        )

    search = None
    if document.get("search") is not None:
        search = _check_search(document["search"], axes, cells, templates, suite_seeds, base, source, backend, errors)
        if search is None:
            return None

    trials = tuple(
        Trial(top.name, cell.arm, cell.labels, dataclasses.replace(template, seed=seed, backend=backend))
        for cell, template in zip(cells, templates)
        if template is not None
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
        explore_seeds=seed_sets.explore,
        confirm_seeds=seed_sets.confirm,
        search=search,
        cells=tuple(cells),
    )


def _check_search(
    raw: Any,
    axes: Sequence[Any],
    cells: Sequence[Cell],
    templates: Sequence[TrialSpec | None],
    final_seeds: Sequence[int],
    base: Mapping[str, Any],
    source: SourceMap,
    backend: str,
    errors: _Errors,
) -> SearchSpec | None:
    """The search block parsed, and every arm resolved at both ends of each range it searches (so a path
    that does not exist, or a bound a parameter refuses, is an error now, at the search block's line)."""
    specs = [template for template in templates if template is not None]
    grid_targets = {a.target: axis.key for axis in axes for variant in axis.variants for a in variant.assignments}
    try:
        search = parse_search(
            raw,
            arms=[cell.arm for cell in cells],
            grid_targets=grid_targets,
            final_seeds=final_seeds,
            tasks=sorted({dataset_info(spec.dataset).task for spec in specs}),
            validations=[_validation_share(spec.dataset) for spec in specs],
        )
    except SuiteIssue as issue:
        errors.add_issue(issue)
        return None
    for cell in cells:
        dimensions = search.dimensions(cell.arm)
        corners = [{d.path: d.ends()[0] for d in dimensions}, {d.path: d.ends()[-1] for d in dimensions}]
        for dimension in dimensions:  # each choice value once, the others at their low end
            corners.extend({**corners[0], dimension.path: value} for value in dimension.choices[1:-1])
        for values in corners:
            searched = Cell(cell.arm, cell.labels, (*cell.assignments, *search.assignments(cell.arm, values)))
            _resolve_cell_located(base, searched, source, backend, True, errors)
    return None if errors.found else search


def _validation_share(dataset: Any) -> float:
    """The validation fraction of a dataset, > 0 when it has validation rows (a user dataset cut by a
    split column has them without a fraction: its resolved row counts say)."""
    rows = dict(dataset.options).get("rows")
    if isinstance(rows, (list, tuple)) and len(rows) == 3 and sum(rows) > 0:
        return float(rows[1]) / float(sum(rows))
    return float(dataset.validation)


def _override(parse: Any, value: Any, flag: str) -> Any:
    """Validate a value given as an argument (a CLI flag) rather than in the file."""
    try:
        return parse(value, (flag,))
    except SuiteIssue as issue:
        raise issue.kind(f"{display_path(issue.path)}: {issue.message}") from None


def _resolve_cell_located(
    base: Mapping[str, Any],
    cell: Cell,
    source: SourceMap,
    backend: str,
    has_grid: bool,
    errors: _Errors,
    skipped: frozenset[str] = frozenset(),
    folder: Path | None = None,
) -> TrialSpec | None:
    """Resolve one cell (`folder`: the suite file's, where a user dataset's paths start); locate each error at the line the offending value was written on, into `errors`."""
    note = f" [grid cell {cell.arm!r}]" if has_grid else ""
    try:
        document, provenance = apply_cell(base, cell)
    except SuiteIssue as issue:
        for one in issue.every():
            errors.add(_locate(one.path, ": " + one.message, one.kind, source, (), note), note)
        return None
    failures: list[Exception] = []
    spec = _resolve_parts(document, backend, failures, skipped, folder)
    for failure in failures:
        for error in _cell_errors(failure, source, provenance, note):
            errors.add(error, note)
    return spec


def _cell_errors(
    failure: Exception, source: SourceMap, provenance: tuple[tuple[KeyPath, KeyPath], ...], note: str
) -> list[HarnessError]:
    if isinstance(failure, SuiteIssue):
        return [_locate(one.path, ": " + one.message, one.kind, source, provenance, note) for one in failure.every()]
    assert isinstance(failure, HarnessError)
    # A resolver's message starts with the key path it was given plus the keys below it.
    path, rest = split_path_prefix(str(failure))
    if not path or path[0] not in AXIS_FIELDS:
        path, rest = (), ": " + str(failure)
    path = _refine_path(path, rest)
    return [_locate(path, rest, type(failure), source, provenance, note)]


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
        SuiteIssue or HarnessError: with a key path of the cell document (located by the caller);
            the first problem found.
    """
    failures: list[Exception] = []
    spec = _resolve_parts(document, backend, failures)
    if spec is None:
        raise failures[0]
    return spec


class _Attempt:
    """Runs each independent part of a cell's resolution, recording its failure and going on."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures

    def __call__(self, function: Any, *arguments: Any, **options: Any) -> Any:
        try:
            return function(*arguments, **options)
        except (SuiteIssue, HarnessError) as failure:
            self.failures.append(failure)
            return None


def _resolve_parts(
    document: Mapping[str, Any],
    backend: str,
    failures: list[Exception],
    skipped: frozenset[str] = frozenset(),
    folder: Path | None = None,
) -> TrialSpec | None:
    """The TrialSpec, or None with every independent problem in `failures`. A part that needs another
    (the loss's task needs the dataset; the model needs the dataset and the regularizer's dropout) is
    checked only when that other part resolved. `skipped`: fields already reported missing."""
    attempt = _Attempt(failures)
    regularizer = attempt(regularizer_spec, document.get("regularizer"))
    training = attempt(training_spec, document.get("training")) if "training" not in skipped else None
    dataset = attempt(resolve_dataset, document.get("dataset"), "dataset", folder) if "dataset" not in skipped else None
    info = attempt(dataset_info, dataset) if dataset is not None else None
    loss = attempt(resolve_component, "loss", document.get("loss"), "loss") if "loss" not in skipped else None
    if loss is not None and info is not None:
        attempt(check_loss_task, loss.name, info)
    optimizer = None
    if "optimizer" not in skipped:
        optimizer = attempt(resolve_component, "optimizer", document.get("optimizer"), "optimizer")
    initializer = None
    if "initializer" not in skipped:
        initializer = attempt(resolve_component, "initializer", document.get("initializer"), "initializer")
    if optimizer is not None and regularizer is not None:
        attempt(check_weight_decay, optimizer, regularizer)
    model = None
    if info is not None and regularizer is not None and "model" not in skipped and attempt(check_depth, document):
        model = attempt(
            resolve_model,
            document.get("model"),
            info.num_outputs,
            dropout=regularizer.dropout,
            where="model",
            input_shape=info.input_shape,
            folder=folder,
        )
    if model is not None and regularizer is not None:
        attempt(check_dropout, model, regularizer)
    if model is not None and info is not None and loss is not None:
        attempt(
            check_model_against_task,
            model,
            info.input_shape,
            loss.name,
            info.task,
            info.num_outputs,
            info.target_length,
        )
    if training is not None and dataset is not None:
        attempt(check_save_weights, training, dataset)
    if training is not None and dataset is not None and info is not None:
        attempt(check_training_against_data, training, dataset, info)
    diagnostics = (
        attempt(suite_diagnostics, document.get("diagnostics"), training.epochs) if training is not None else None
    )
    init_mode = attempt(check_init_mode, document.get("init_mode", "shared"))
    if model is not None and model.python:
        init_mode = attempt(python_model_init, document, diagnostics, model.paired or model.by_shape)
    device = attempt(check_device, document.get("device", "cpu"))
    if (
        failures  # or a part skipped for a missing field, or not reached
        or dataset is None
        or model is None
        or loss is None
        or optimizer is None
        or initializer is None
        or regularizer is None
        or training is None
    ):
        return None
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
        init_mode=init_mode,
        device=device,
        # only present when on, so the hashes of specs without diagnostics do not change
        extras=((EXTRAS_KEY, diagnostics.to_dict()),) if diagnostics is not None else (),
    )
