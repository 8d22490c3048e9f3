"""Grid expansion: axes, their variants and labels, exclusions, and applying a cell to the base suite.

An axis key is a top-level field (`optimizer`) or a dotted path into one
(`optimizer.lr`, `model.mlp.hidden`, `model.layers[0].dense.units`). Its value is
    a list                 labels derived from the values: 0.1 -> '0.1', [64, 64] -> '[64, 64]',
                           {name: adam, ...} -> 'adam'
    a mapping              named variants, label -> value
    {zip: {path: [...]}}   one axis over several paths of equal-length lists; label
                           'lr=0.1,batch_size=32'
Cells are the cartesian product of the axes (first axis slowest), minus `exclude`.

Applying a value at a path, in a copy of the base document:
- Paths are applied shallowest first, so `optimizer` variants and an `optimizer.lr` axis compose.
- `training` and `regularizer` variants are MERGED over the base block: a variant lists only
  what it changes (`regularizer: {none: {}, l2: {l2: 0.1}}`).
- A component variant (dataset, loss, optimizer, initializer) that is a mapping WITHOUT `name`
  is merged over the base component (`optimizer: {fast: {lr: 0.1}, slow: {lr: 0.01}}`); a name
  or a mapping with `name` replaces it, since another component's parameters would not fit.
- Everything else (model, init_mode, device, deeper paths) is replaced.
Component strings are normalized to `{name: ...}` mappings first, so `optimizer.lr` works on
`optimizer: sgd`. A path's parent must exist; the last key may be new.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from harness.errors import did_you_mean
from harness.suite.yaml_source import KeyPath, SuiteIssue, display_path

AXIS_FIELDS = ("dataset", "model", "loss", "optimizer", "initializer", "regularizer", "training", "init_mode", "device")
COMPONENT_FIELDS = ("dataset", "loss", "optimizer", "initializer")
MERGED_FIELDS = ("regularizer", "training")
SCHEDULE_PATH = ("training", "lr_schedule")  # a component inside a block: a name becomes {name: ...} too
ZIP = "zip"
MAX_CELLS = 1000  # before exclusions; each cell is resolved completely at load (the shipped suites have at most 20)

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|\d+)((?:\[\d+\])*)$")


@dataclass(frozen=True)
class Assignment:
    """One value put at one path of the suite document by a grid cell."""

    target: KeyPath  # where the value goes in the document, e.g. ("optimizer", "lr")
    value: Any
    source: KeyPath  # where it is written in the file (for error lines), e.g. ("grid", "optimizer.lr", 1)
    axis: KeyPath  # where its axis key is written, e.g. ("grid", "optimizer.lr")


@dataclass(frozen=True)
class Variant:
    label: str
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Axis:
    """One grid axis: its key as written, how its labels were made, and its variants in order."""

    key: str
    kind: str  # 'values' (a list, labels derived) | 'variants' (named) | 'zip'
    variants: tuple[Variant, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(variant.label for variant in self.variants)

    def arm_part(self, label: str) -> str:
        """The axis' part of a multi-axis arm name: 'hidden=[32]' for a list axis, the bare label otherwise."""
        if self.kind == "values":
            return f"{self.key.split('.')[-1].split('[')[0]}={label}"
        return label


@dataclass(frozen=True)
class Cell:
    """One grid cell: its arm name, its (axis, label) pairs in axis order, and what it sets."""

    arm: str
    labels: tuple[tuple[str, str], ...]
    assignments: tuple[Assignment, ...]


def value_label(value: Any) -> str:
    """The label of a list-axis value: scalars as text, lists as '[64, 64]', components by name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_label(item) for item in value) + "]"
    if isinstance(value, Mapping):
        if isinstance(value.get("name"), str):
            return value["name"]
        return "{" + ", ".join(f"{key}: {value_label(item)}" for key, item in value.items()) + "}"
    return str(value)


def parse_axis_path(text: Any, where: KeyPath) -> KeyPath:
    """'model.layers[0].dense.units' (or 'model.layers.0.dense.units') -> ('model', 'layers', 0, 'dense', 'units').

    Raises:
        SuiteIssue: malformed, or not rooted at a field a grid may vary.
    """
    if not isinstance(text, str) or not text:
        raise SuiteIssue(
            where, f"an axis key must be a field name or a dotted path such as optimizer.lr, got {text!r}."
        )
    parts: list[Any] = []
    for segment in text.split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise SuiteIssue(
                where,
                f"malformed path {text!r}: {segment!r} is not a key or a [index]. "
                "Write keys joined by dots, list items as [0]: model.layers[0].dense.units.",
            )
        name, indices = match.groups()
        parts.append(int(name) if name.isdigit() else name)
        parts.extend(int(index) for index in re.findall(r"\d+", indices))
    if parts[0] not in AXIS_FIELDS:
        raise SuiteIssue(
            where,
            f"{parts[0]!r} cannot be a grid axis.{did_you_mean(str(parts[0]), AXIS_FIELDS)} An axis varies one of "
            f"{', '.join(AXIS_FIELDS)} (whole, or a dotted path into it such as optimizer.lr), "
            "or several paths at once with {zip: {path: [...], ...}}.",
        )
    return tuple(parts)


def parse_grid(raw: Mapping[str, Any] | None) -> tuple[Axis, ...]:
    """Parse the `grid:` mapping into axes, checking labels and that no path is set twice.

    Raises:
        SuiteIssue: empty axis, malformed path, duplicate labels, unequal zip lengths, a path
            set by two axes.
    """
    if not raw:
        return ()
    axes = [_parse_axis(key, value) for key, value in raw.items()]
    owners: dict[KeyPath, str] = {}
    for axis in axes:
        for assignment in axis.variants[0].assignments:
            if assignment.target in owners:
                raise SuiteIssue(
                    ("grid", axis.key),
                    f"axes {owners[assignment.target]!r} and {axis.key!r} both set {display_path(assignment.target)}. "
                    "Keep one of them, or combine them in one axis with {zip: ...} or named variants.",
                )
            owners[assignment.target] = axis.key
    return tuple(axes)


def _parse_axis(key: Any, raw: Any) -> Axis:
    where: KeyPath = ("grid", key)
    if isinstance(raw, Mapping) and set(raw) == {ZIP}:
        return _parse_zip(key, raw[ZIP])
    target = parse_axis_path(key, where)
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise SuiteIssue(where, "the axis is empty: give at least one value, e.g. [0.1, 0.01], or remove the axis.")
        variants = tuple(
            Variant(value_label(value), (Assignment(target, value, (*where, index), where),))
            for index, value in enumerate(raw)
        )
        _check_unique_labels(variants, where, lambda index: (*where, index), "values")
        return Axis(key, "values", variants)
    if isinstance(raw, Mapping):
        if not raw:
            raise SuiteIssue(
                where, "the axis is empty: give at least one named variant, e.g. {sgd: sgd, adam: adam}, or remove it."
            )
        named: list[Variant] = []
        for label, value in raw.items():
            text = value_label(label)
            if not text.strip():
                raise SuiteIssue(
                    (*where, label), "a variant label must not be empty. Name the variant, e.g. sgd: {name: sgd}."
                )
            named.append(Variant(text, (Assignment(target, value, (*where, label), where),)))
        _check_unique_labels(tuple(named), where, lambda index: (*where, list(raw)[index]), "variants")
        return Axis(key, "variants", tuple(named))
    raise SuiteIssue(
        where,
        f"expected a list of values (e.g. [0.1, 0.01]), a mapping of named variants (e.g. {{sgd: sgd, adam: adam}}) "
        f"or {{zip: {{path: [...], ...}}}}, got {raw!r} ({type(raw).__name__}).",
    )


def _parse_zip(key: Any, raw: Any) -> Axis:
    where: KeyPath = ("grid", key, ZIP)
    if not isinstance(key, str) or not key:
        raise SuiteIssue(("grid", key), f"a zip axis needs a name, e.g. lr_batch: {{zip: ...}}, got {key!r}.")
    if not isinstance(raw, Mapping) or not raw:
        raise SuiteIssue(
            where,
            f"expected a mapping of paths to equal-length lists, e.g. {{optimizer.lr: [0.1, 0.01], "
            f"training.batch_size: [32, 128]}}, got {raw!r}.",
        )
    columns: list[tuple[KeyPath, KeyPath, list[Any]]] = []
    for path_text, values in raw.items():
        source = (*where, path_text)
        target = parse_axis_path(path_text, source)
        if not isinstance(values, (list, tuple)) or not values:
            raise SuiteIssue(source, f"expected a non-empty list of values, got {values!r}.")
        columns.append((target, source, list(values)))
    lengths = {display_path(target): len(values) for target, _, values in columns}
    if len(set(lengths.values())) > 1:
        raise SuiteIssue(
            where,
            "the lists of a zip axis must have equal lengths (item i of each list forms variant i), got "
            + ", ".join(f"{path}: {length}" for path, length in lengths.items())
            + ".",
        )
    variants = []
    for index in range(len(columns[0][2])):
        label = ",".join(f"{_last_name(target)}={value_label(values[index])}" for target, _, values in columns)
        assignments = tuple(
            Assignment(target, values[index], (*source, index), source) for target, source, values in columns
        )
        variants.append(Variant(label, assignments))
    _check_unique_labels(tuple(variants), where, lambda index: where, "zip")
    return Axis(key, "zip", tuple(variants))


def _last_name(target: KeyPath) -> str:
    names = [part for part in target if isinstance(part, str)]
    return names[-1] if names else display_path(target)


def _check_unique_labels(variants: tuple[Variant, ...], where: KeyPath, source_of: Any, kind: str) -> None:
    first: dict[str, int] = {}
    for index, variant in enumerate(variants):
        if variant.label in first:
            hint = (
                "Give the axis as a mapping of named variants instead, e.g. {sgd_fast: {name: sgd, lr: 0.1}, "
                "sgd_slow: {name: sgd, lr: 0.01}}."
                if kind == "values"
                else "Make every variant differ."
            )
            raise SuiteIssue(
                source_of(index),
                f"duplicate label {variant.label!r}: variants {first[variant.label]} and {index} of axis "
                f"{display_path(where[1:])} get the same label, so their arms could not be told apart. {hint}",
            )
        first[variant.label] = index


def expand_grid(axes: tuple[Axis, ...], exclude: list[Mapping[str, Any]] | None) -> tuple[Cell, ...]:
    """The cells of the grid, cartesian (first axis slowest), minus the excluded ones.

    No axes -> one cell, arm 'base'.

    Raises:
        SuiteIssue: an exclude entry names an unknown axis or label (did-you-mean), matches no
            cell that is not already excluded, or the entries exclude every cell; arm names collide.
    """
    if not axes:
        if exclude:
            raise SuiteIssue(("exclude",), "there is no grid to exclude cells from. Remove `exclude`, or add a `grid`.")
        return (Cell("base", (), ()),)
    sizes = [len(axis.variants) for axis in axes]
    if math.prod(sizes) > MAX_CELLS:  # checked before the product is built: 6 axes of 100 values are 10^12 cells
        raise SuiteIssue(
            ("grid",),
            f"{' x '.join(map(str, sizes))} = {math.prod(sizes):,} cells, over the limit of {MAX_CELLS} (every cell is "
            "a separate experiment, each run for every seed and backend). Use fewer axes or fewer values per axis, or "
            "split the suite.",
        )
    combinations = [tuple(zip(axes, choice)) for choice in itertools.product(*(axis.variants for axis in axes))]
    labels_of = [{axis.key: variant.label for axis, variant in combination} for combination in combinations]
    keep = [True] * len(combinations)
    for index, entry in enumerate(exclude or []):
        wanted = _parse_exclude_entry(axes, entry, ("exclude", index))
        matches = [
            position
            for position, labels in enumerate(labels_of)
            if all(labels[key] == label for key, label in wanted.items())
        ]
        if not any(keep[position] for position in matches):
            raise SuiteIssue(
                ("exclude", index),
                f"matches no cell that is not already excluded by an earlier entry ({_format_entry(wanted)}). Remove it.",
            )
        for position in matches:
            keep[position] = False
    if not any(keep):
        raise SuiteIssue(("exclude",), "the exclude entries remove every cell of the grid, so nothing would run.")
    cells = []
    arms: dict[str, tuple[tuple[str, str], ...]] = {}
    for combination, kept in zip(combinations, keep):
        if not kept:
            continue
        labels = tuple((axis.key, variant.label) for axis, variant in combination)
        if len(axes) == 1:
            arm = combination[0][1].label
        else:
            arm = ",".join(axis.arm_part(variant.label) for axis, variant in combination)
        if arm in arms:
            raise SuiteIssue(
                ("grid",),
                f"cells {_format_entry(dict(arms[arm]))} and {_format_entry(dict(labels))} get the same arm name {arm!r}. "
                "Rename a variant so that the names differ (labels containing ',' or '=' can collide).",
            )
        arms[arm] = labels
        assignments = tuple(assignment for _, variant in combination for assignment in variant.assignments)
        cells.append(Cell(arm, labels, assignments))
    return tuple(cells)


def _format_entry(entry: Mapping[str, str]) -> str:
    return ", ".join(f"{key}: {label}" for key, label in entry.items())


def _parse_exclude_entry(axes: tuple[Axis, ...], entry: Any, where: KeyPath) -> dict[str, str]:
    by_key = {axis.key: axis for axis in axes}
    if not isinstance(entry, Mapping) or not entry:
        raise SuiteIssue(
            where,
            f"expected a mapping of axis: label naming the cells to skip, e.g. {{{axes[0].key}: {axes[0].labels[0]}}}, got {entry!r}.",
        )
    wanted = {}
    for key, label in entry.items():
        if key not in by_key:
            raise SuiteIssue(
                (*where, key),
                f"unknown axis {key!r}.{did_you_mean(str(key), by_key)} The grid's axes: {', '.join(map(str, by_key))}.",
            )
        text = label if isinstance(label, str) else value_label(label)  # [32] and "[32]" both work
        labels = by_key[key].labels
        if text not in labels:
            raise SuiteIssue(
                (*where, key),
                f"axis {key!r} has no label {text!r}.{did_you_mean(text, labels)} Its labels: {', '.join(labels)}.",
            )
        wanted[key] = text
    return wanted


def normalize_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy with component strings (and training.lr_schedule) as `{name: ...}` and an absent
    regularizer as `{}`."""
    result = copy.deepcopy(dict(document))
    for key in COMPONENT_FIELDS:
        if isinstance(result.get(key), str):
            result[key] = {"name": result[key]}
    if result.get("regularizer") is None:
        result["regularizer"] = {}
    training = result.get("training")
    if isinstance(training, dict) and isinstance(training.get(SCHEDULE_PATH[1]), str):
        training[SCHEDULE_PATH[1]] = {"name": training[SCHEDULE_PATH[1]]}  # so training.lr_schedule.<key> axes work
    return result


def apply_cell(base: Mapping[str, Any], cell: Cell) -> tuple[dict[str, Any], tuple[tuple[KeyPath, KeyPath], ...]]:
    """Put a cell's values into a copy of the (normalized) base document.

    Returns:
        The cell's document and its provenance: (document path, file path) pairs, so an
        error in a value that came from the grid is reported at the grid's line.

    Raises:
        SuiteIssue: a path whose parent does not exist (naming the keys that do).
    """
    document = copy.deepcopy(dict(base))
    provenance: list[tuple[KeyPath, KeyPath]] = []
    for assignment in sorted(cell.assignments, key=lambda item: len(item.target)):  # stable: grid order within a depth
        target, value, source = assignment.target, copy.deepcopy(assignment.value), assignment.source
        parent = _parent(document, assignment)
        last = target[-1]
        current = parent.get(last) if isinstance(parent, dict) else None
        if len(target) == 1 and _merges(current, last, value):
            parent[last] = {**current, **value}
            provenance.extend(((last, key), (*source, key)) for key in value)
            continue
        if isinstance(parent, list):
            parent[last] = value
        elif target == SCHEDULE_PATH and isinstance(value, str):
            parent[last] = {"name": value}  # so a deeper training.lr_schedule.<key> axis applies over it
        else:
            parent[last] = (
                {"name": value} if len(target) == 1 and last in COMPONENT_FIELDS and isinstance(value, str) else value
            )
        provenance.append((target, source))
    return document, tuple(provenance)


def _merges(current: Any, field: Any, value: Any) -> TypeGuard[Mapping[str, Any]]:
    """Whether `value` is merged into the mapping `current` (a TypeGuard: when true, `current` is a mapping)."""
    if not isinstance(current, Mapping) or not isinstance(value, Mapping):
        return False
    return field in MERGED_FIELDS or (field in COMPONENT_FIELDS and "name" not in value)


def _parent(document: dict[str, Any], assignment: Assignment) -> dict[str, Any] | list[Any]:
    """The container that holds the assignment's last key; every key above it must exist."""
    target = assignment.target
    node: Any = document
    for depth, part in enumerate(target[:-1]):
        node = _child(node, part, target[:depth], assignment)
    _child(node, target[-1], target[:-1], assignment, must_exist=False)
    return node


def _child(node: Any, part: Any, above: KeyPath, assignment: Assignment, must_exist: bool = True) -> Any:
    missing = f"the path {display_path(assignment.target)} does not exist in the suite: {_where(above)}"
    if isinstance(node, dict):
        if part in node or not must_exist:
            return node.get(part)
        keys = ", ".join(map(str, node)) or "(none)"
        raise SuiteIssue(
            assignment.axis,
            f"{missing} has no key {part!r}.{did_you_mean(str(part), [str(key) for key in node])} Its keys: {keys}.",
        )
    if isinstance(node, list):
        if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(node):
            return node[part]
        indices = f"0 to {len(node) - 1}" if node else "it is empty"
        raise SuiteIssue(
            assignment.axis,
            f"{missing} is a list of {len(node)} items, so {part!r} is not one of its indices ({indices}).",
        )
    raise SuiteIssue(assignment.axis, f"{missing} is {node!r}, not a mapping or a list to look into.")


def _where(path: KeyPath) -> str:
    return display_path(path) if path else "the suite's top level"
