"""A user's own dataset: a table or array file, an image folder or a Python plug-in, as a `Dataset`.

    dataset:
      file: data/housing.csv          # .csv .tsv .parquet .npz .npy, relative to the suite file
      target: price                   # column (tables), array key (npz) or column index (npy)
      features: [rooms, age, income]  # default: every other column
      categorical: [district]         # one-hot, categories fixed on the training rows
      task: regression                # inferred when absent (the inference is printed)
      split: {test: 0.2, validation: 0.1, seed: 0, stratify: true}   # or split_column: split
      standardize: true               # fitted on the training rows only

    dataset: {images: data/flowers/, size: [32, 32], color: rgb}      # one sub-folder per class
    dataset: {python: mypkg.data:load_arrays, args: {n: 100}}          # harness.data.user_files.PLUGIN_PROTOCOL

Resolving reads the data once: a suite that loads is one whose data loads, and the resolved
DatasetSpec carries what `dataset_info` needs (task, input shape, classes) plus `content`, a digest
of the bytes read and of every option, so the trial hash changes exactly when the data or its
preparation does. `path` and `import_path` say where the data is, not what it is: they are kept
out of the hash (harness.spec.types.LOCATION_OPTIONS), so moving a folder reruns nothing. A worker
reads the file again and refuses data whose digest differs from the spec's.

How rows are cut, in order: the test rows (the source's own, `split_column`'s, or `split.test`
of all rows, stratified for labelled tasks), then the validation rows (`split.validation` of all
rows, from the rest); categories and standardization are fitted on the training rows alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import user_files
from harness.data.sources import DATASET_SEED
from harness.data.splits import fit_scaling, held_out_count, stratified_counts
from harness.data.types import Dataset, DatasetInfo
from harness.errors import DatasetError, did_you_mean
from harness.spec.params import reject_unknown_keys
from harness.spec.types import LOCATION_OPTIONS, DatasetSpec

USER_SOURCES = ("file", "images", "python")  # the DatasetSpec.name of a user dataset, by the key that names it
USER_SPLIT_STREAM = 9  # under DATASET_SEED, then split.seed: the test and validation rows of a user dataset
COMMON_KEYS = ("task", "split", "standardize", "standardize_target")
SOURCE_KEYS = {
    "file": ("file", "target", "features", "categorical", "split_column", *COMMON_KEYS),
    "images": ("images", "size", "color", *COMMON_KEYS),
    "python": ("python", "args", *COMMON_KEYS),
}
SPLIT_DEFAULTS: dict[str, Any] = {"test": 0.2, "validation": 0.0, "seed": 0, "stratify": True}
SPLIT_VALUES = ("train", "validation", "test")  # the values a split_column may hold
USER_TASKS = ("classification", "binary", "regression", "sequence")
MAX_INFERRED_CLASSES = 20  # integer targets with more distinct values are inferred as regression
DERIVED = ("content", "input_shape", "num_classes", "num_outputs", "target_length", "label", "rows")

_notes: list[str] = []
_resolved: dict[str, DatasetSpec] = {}  # resolution key (options + file state) -> spec, per process
_prepared: dict[str, Dataset] = {}  # content digest -> the prepared arrays, per process


def note(text: str) -> None:
    """Something loading a suite found worth saying; the CLI prints it (take_notes)."""
    _notes.append(text)


def take_notes() -> list[str]:
    """What resolving user datasets found worth saying (inferred task, memory, plug-in imports), once each."""
    notes = list(dict.fromkeys(_notes))
    _notes.clear()
    return notes


def is_user_dataset(raw: Any) -> bool:
    """A mapping naming a file, image folder or plug-in, or a DatasetSpec resolved from one."""
    if isinstance(raw, DatasetSpec):
        return raw.name in USER_SOURCES
    return isinstance(raw, Mapping) and "name" not in raw and any(key in raw for key in USER_SOURCES)


def resolve_user_dataset(raw: Mapping[str, Any] | DatasetSpec, where: str, base: Path | None) -> DatasetSpec:
    """Check a user dataset's keys, read the data once, and return the spec with everything derived.

    Args:
        raw: the suite's `dataset:` mapping, or an already resolved spec (returned in canonical form).
        where: the key path, for messages.
        base: the suite file's folder; relative paths and plug-in imports start there.

    Raises:
        DatasetError: any bad key, file, column, value or split, naming it and how to fix it.
    """
    if isinstance(raw, DatasetSpec):
        return _canonical(raw)
    kinds = [key for key in USER_SOURCES if key in raw]
    if len(kinds) > 1:
        raise DatasetError(f"{where}: give one of file, images or python, got {' and '.join(kinds)}.")
    kind = kinds[0]
    reject_unknown_keys(
        raw, SOURCE_KEYS[kind], where, f"a dataset from {kind!r}", noun="key", label="Its keys", error=DatasetError
    )
    options = _check_options(kind, raw, where, base or Path.cwd())
    key = json.dumps({"kind": kind, **options, "state": _state(kind, options)}, sort_keys=True, default=str)
    if key not in _resolved:
        _resolved[key] = _resolve(kind, options, where)
    return _resolved[key]


def user_dataset_info(spec: DatasetSpec) -> DatasetInfo:
    """Static facts from a resolved spec, without reading anything."""
    options = dict(spec.options)
    return DatasetInfo(
        name=options["label"],
        task=options["task"],
        input_shape=tuple(options["input_shape"]),
        num_outputs=options["num_outputs"],
        num_classes=options["num_classes"],
        description=f"{spec.name} {options['label']} (content {options['content']})",
        target_length=options["target_length"],
    )


def load_user_dataset(spec: DatasetSpec) -> Dataset:
    """The arrays of a resolved spec: read again (in a worker) and checked against the spec's digest.

    Raises:
        DatasetError: the data changed since the suite was loaded (its digest differs).
    """
    options = dict(spec.options)
    content = options["content"]
    if content not in _prepared:
        given = {key: value for key, value in options.items() if key not in DERIVED}
        given["validation"] = spec.validation
        if spec.name == "python" and options.get("import_path"):
            user_files.suite_import_path(Path(options["import_path"]))
        _resolve(spec.name, given, "dataset")
        take_notes()  # a worker has no one to tell; the driver said it when the suite loaded
        if content not in _prepared:
            raise DatasetError(
                f"dataset: {options['label']} changed since this trial was made (content {content} expected); "
                "its stored results would describe other data. Run the suite again to make trials for the new data."
            )
    return dataclasses.replace(_prepared[content], info=user_dataset_info(spec))


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def _check_options(kind: str, raw: Mapping[str, Any], where: str, base: Path) -> dict[str, Any]:
    """Every option explicit and JSON-able (lists as tuples), validation pulled out of split."""
    options: dict[str, Any] = {}
    if kind == "python":
        reference = raw["python"]
        if not isinstance(reference, str):
            raise DatasetError(f"{where}.python: expected 'package.module:function', got {reference!r}.")
        args = raw.get("args", {})
        if not isinstance(args, Mapping):
            raise DatasetError(f"{where}.args: expected a mapping of keyword arguments, got {args!r}.")
        options.update(python=reference, args=json.dumps(args, sort_keys=True), import_path=str(base.resolve()))
    else:
        location = raw[kind]
        if not isinstance(location, str) or not location:
            raise DatasetError(f"{where}.{kind}: expected a path (relative to the suite file), got {location!r}.")
        path = (base / location).expanduser().resolve()
        options["path"] = str(path)
    if kind == "file":
        suffix = Path(options["path"]).suffix.lower()
        if suffix not in user_files.FILE_FORMATS:
            raise DatasetError(
                f"{where}.file: {raw['file']!r}: unknown format {suffix or '(no suffix)'!r}. Expected one of: "
                f"{', '.join(user_files.FILE_FORMATS)}."
            )
        options["format"] = user_files.FILE_FORMATS[suffix]
        target = raw.get("target")
        if options["format"] == "npy":
            target = -1 if target is None else target
            if isinstance(target, bool) or not isinstance(target, int):
                raise DatasetError(
                    f"{where}.target: a .npy file holds one array; expected the target's column index (e.g. -1 for "
                    f"the last column), got {target!r}."
                )
        elif target is not None and not isinstance(target, str):
            raise DatasetError(f"{where}.target: expected a column name, got {target!r}.")
        options["target"] = target
        options["features"] = _names(raw.get("features"), f"{where}.features", allow_none=True)
        options["categorical"] = _names(raw.get("categorical", []), f"{where}.categorical") or ()
        split_column = raw.get("split_column")
        if split_column is not None and not isinstance(split_column, str):
            raise DatasetError(f"{where}.split_column: expected a column name, got {split_column!r}.")
        if split_column is not None and "split" in raw:
            raise DatasetError(
                f"{where}.split_column: give split (fractions) or split_column (a column of train/validation/test), "
                "not both."
            )
        options["split_column"] = split_column
    if kind == "images":
        size = raw.get("size", [32, 32])
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size)
        ):
            raise DatasetError(f"{where}.size: expected [height, width] in pixels, e.g. [32, 32], got {size!r}.")
        options["size"] = tuple(size)
        color = raw.get("color", "rgb")
        if color not in ("rgb", "grayscale"):
            raise DatasetError(f"{where}.color: expected 'rgb' or 'grayscale', got {color!r}.")
        options["color"] = color
    task = raw.get("task")
    if task is not None and task not in USER_TASKS:
        raise DatasetError(
            f"{where}.task: expected one of {', '.join(USER_TASKS)}, got {task!r}.{did_you_mean(str(task), USER_TASKS)} "
            "Or drop the key to infer it from the targets."
        )
    options["task"] = task
    for flag, default in (("standardize", True), ("standardize_target", True)):
        value = raw.get(flag, default)
        if not isinstance(value, bool):
            raise DatasetError(f"{where}.{flag}: expected true or false, got {value!r}.")
        options[flag] = value
    options.update(_check_split(raw.get("split", {}), f"{where}.split"))
    return options


def _names(value: Any, where: str, allow_none: bool = False) -> tuple[str, ...] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise DatasetError(f"{where}: expected a list of column names, got {value!r}.")
    return tuple(value)


def _check_split(split: Any, where: str) -> dict[str, Any]:
    if not isinstance(split, Mapping):
        raise DatasetError(f"{where}: expected a mapping such as {{test: 0.2, validation: 0.1}}, got {split!r}.")
    reject_unknown_keys(split, list(SPLIT_DEFAULTS), where, "split", noun="key", label="Its keys", error=DatasetError)
    chosen = {**SPLIT_DEFAULTS, **split}
    for name in ("test", "validation"):
        value = chosen[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise DatasetError(f"{where}.{name}: expected a fraction of the rows in [0, 1), got {value!r}.")
        chosen[name] = float(value)
    if chosen["test"] + chosen["validation"] >= 1:
        raise DatasetError(
            f"{where}: test {chosen['test']} + validation {chosen['validation']} = "
            f"{chosen['test'] + chosen['validation']:g} of the rows leaves no training set. Keep their sum below 1 "
            "(e.g. test: 0.2, validation: 0.1)."
        )
    if isinstance(chosen["seed"], bool) or not isinstance(chosen["seed"], int) or chosen["seed"] < 0:
        raise DatasetError(f"{where}.seed: expected an integer >= 0, got {chosen['seed']!r}.")
    if not isinstance(chosen["stratify"], bool):
        raise DatasetError(f"{where}.stratify: expected true or false, got {chosen['stratify']!r}.")
    return chosen


def _state(kind: str, options: Mapping[str, Any]) -> Any:
    """What tells a process that the source changed since it resolved it (cheap: no read)."""
    if kind == "file":
        path = Path(options["path"])
        return [path.stat().st_mtime_ns, path.stat().st_size] if path.is_file() else None
    if kind == "images":
        folder = Path(options["path"])
        if not folder.is_dir():
            return None
        return sorted((str(item), item.stat().st_mtime_ns, item.stat().st_size) for item in folder.rglob("*"))
    return None  # a plug-in is called once per process


def _canonical(spec: DatasetSpec) -> DatasetSpec:
    """Lists (from JSON) back to tuples so the spec hashes and caches like the resolved one."""

    def frozen(value: Any) -> Any:
        return tuple(frozen(item) for item in value) if isinstance(value, list) else value

    return DatasetSpec(
        name=spec.name,
        validation=spec.validation,
        train_samples=spec.train_samples,
        options=tuple(sorted((key, frozen(value)) for key, value in spec.options)),
    )


# ---------------------------------------------------------------------------------------------
# Reading and preparing
# ---------------------------------------------------------------------------------------------


def _resolve(kind: str, options: dict[str, Any], where: str) -> DatasetSpec:
    options = dict(options)
    if kind == "file":
        raw = user_files.read_file(Path(options["path"]), options["format"], options, where)
        label = Path(options["path"]).name
    elif kind == "images":
        raw = user_files.read_image_folder(Path(options["path"]), options["size"], options["color"], where)
        label = Path(options["path"]).name
    else:
        user_files.suite_import_path(Path(options["import_path"]))
        module = options["python"].split(":")[0]
        _notes.append(f"{where}: importing {module} and calling {options['python']} (Python code the suite names)")
        raw = user_files.call_plugin(options["python"], json.loads(options["args"]), where)
        label = options["python"]
    dataset, task = _prepare(raw, options, label, where)
    info = dataset.info
    options["task"] = info.task  # inferred or given, the same experiment (and hash) either way
    hashed = {key: value for key, value in options.items() if key not in LOCATION_OPTIONS}
    content = hashlib.sha256((raw.digest + json.dumps(hashed, sort_keys=True, default=list)).encode()).hexdigest()
    content = content[:16]
    _prepared[content] = dataset
    rows = (len(dataset.y_train), len(dataset.y_validation), len(dataset.y_test))
    arrays = sum(array.nbytes for array in (dataset.x_train, dataset.x_validation, dataset.x_test))
    _notes.append(
        f"{where}: {label}: {task}; {rows[0]} train / {rows[1]} validation / {rows[2]} test rows of shape "
        f"{info.input_shape}; read {user_files.describe_bytes(raw.source_bytes)}, "
        f"{user_files.describe_bytes(arrays)} as float32 in each process that trains on it; content {content}"
    )
    validation = options.pop("validation")
    derived = {
        "content": content,
        "input_shape": info.input_shape,
        "num_classes": info.num_classes,
        "num_outputs": info.num_outputs,
        "target_length": info.target_length,
        "label": label,
        "rows": rows,
    }
    return DatasetSpec(name=kind, validation=validation, options=tuple(sorted({**options, **derived}.items())))


def _prepare(raw: user_files.Raw, options: Mapping[str, Any], label: str, where: str) -> tuple[Dataset, str]:
    """Split, encode and scale; returns the Dataset and a sentence on how its task was decided."""
    columns: list[str] | None = None
    if raw.table is not None:
        x, y, columns, parts = _table_rows(raw.table, options, where)
    else:
        x, y, parts = _array_rows(raw, options, where)
    task, y, num_classes, how, names = _targets(y, options, raw, where)
    labels = y if task in ("classification", "binary") else None
    if parts is None:
        parts = _split(len(y), labels, options, where, names)
    elif raw.x_test is not None and raw.x_validation is None and options["validation"] > 0:
        # the source's own test rows stay; validation is carved from its training rows
        pool = np.flatnonzero(parts == 0)
        inner = _split(len(pool), None if labels is None else labels[pool], {**options, "test": 0.0}, where, names)
        parts[pool[inner == 1]] = 1
    train = parts == 0
    if not train.any():
        raise DatasetError(f"{where}: no training rows: every row is in the validation or test split.")
    if columns is not None:
        x, numeric = _encode_table(x, columns, train, options, where)
    else:
        numeric = None
    x = _standardize(x, train, numeric) if options["standardize"] else x
    if task == "regression":
        y = y.reshape(len(y), -1).astype(np.float64)
        if options["standardize_target"]:
            offset, divisor = fit_scaling(y[train], "standard")
            y = (y - offset) / divisor
        y = y.astype(np.float32)
    else:
        y = y.astype(np.int64)
    x = x.astype(np.float32)
    _notes.append(f"{where}: {label}: task {task} ({how})")
    info = DatasetInfo(
        name=label,
        task=task,
        input_shape=tuple(int(side) for side in x.shape[1:]),
        num_outputs=int(y.shape[1] if task == "regression" else 1 if task == "binary" else num_classes or 0),
        num_classes=None if task == "regression" else num_classes,
        description=f"{label}",
        target_length=int(y.shape[1]) if task == "sequence" else None,
    )

    def part(index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = parts == index
        return _frozen(x[chosen]), _frozen(y[chosen])

    (x_train, y_train), (x_validation, y_validation), (x_test, y_test) = part(0), part(1), part(2)
    return Dataset(info, x_train, y_train, x_validation, y_validation, x_test, y_test), task


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _column(name: str, columns: list[str], where: str, role: str) -> str:
    if name not in columns:
        raise DatasetError(
            f"{where}.{role}: no column {name!r}.{did_you_mean(name, columns)} The file's columns: {', '.join(columns)}."
        )
    return name


def _table_rows(table: Any, options: Mapping[str, Any], where: str) -> tuple[Any, np.ndarray, list[str], Any]:
    """Feature table, target values, feature names and (split_column) the split of each row."""
    table = table.rename(columns=str)
    columns = list(table.columns)
    target = options["target"]
    if target is None:
        raise DatasetError(
            f"{where}.target: required for a table: the column to predict. The file's columns: {', '.join(columns)}."
        )
    _column(target, columns, where, "target")
    split_column = options["split_column"]
    if split_column is not None:
        _column(split_column, columns, where, "split_column")
    features = options["features"] or tuple(name for name in columns if name not in (target, split_column))
    for name in features:
        _column(name, columns, where, "features")
        if name in (target, split_column):
            raise DatasetError(f"{where}.features: {name!r} is the {'target' if name == target else 'split column'}.")
    if not features:
        raise DatasetError(f"{where}.features: no feature columns left besides the target {target!r}.")
    for name in options["categorical"]:
        if name not in features:
            _column(name, columns, where, "categorical")
            raise DatasetError(f"{where}.categorical: {name!r} is not one of the features ({', '.join(features)}).")
    frame = table[list(features)]
    for name in features:
        if name not in options["categorical"] and not _numeric(frame[name]):
            example = frame[name].dropna().iloc[0] if frame[name].notna().any() else None
            raise DatasetError(
                f"{where}.features: column {name!r} is not numeric (e.g. {example!r}). Add it to categorical: to "
                "one-hot encode it, or leave it out of features."
            )
    _check_finite(frame, f"{where}.features", "feature values")
    _check_finite(table[[target]], f"{where}.target", f"targets in {target!r}")
    parts = None
    if split_column is not None:
        values = table[split_column].astype(str)
        unknown = sorted(set(values) - set(SPLIT_VALUES))
        if unknown:
            first = int(np.flatnonzero(~values.isin(SPLIT_VALUES).to_numpy())[0])
            raise DatasetError(
                f"{where}.split_column: column {split_column!r} holds {unknown[:5]} (first at data row {first + 1}); "
                f"expected only {', '.join(SPLIT_VALUES)}."
            )
        parts = values.map({name: index for index, name in enumerate(SPLIT_VALUES)}).to_numpy()
    return frame, table[target].to_numpy(), list(features), parts


def _numeric(series: Any) -> bool:
    return series.dtype.kind in "biuf"


def _check_finite(frame: Any, where: str, what: str) -> None:
    bad = frame.isna().to_numpy().copy()
    numeric = [name for name in frame.columns if _numeric(frame[name])]
    if numeric:
        values = frame[numeric].to_numpy(dtype=np.float64)
        bad[:, [list(frame.columns).index(name) for name in numeric]] |= ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DatasetError(
            f"{where}: {int(bad.sum())} {what} are missing, NaN or infinite; the first at data row {row + 1} "
            f"(column {frame.columns[column]!r}). Fill or drop those rows before running."
        )


def _array_rows(raw: user_files.Raw, options: Mapping[str, Any], where: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """Features, targets and (own split) the split of each row, for array sources."""
    x = np.asarray(raw.x)
    if options.get("format") == "npy":
        if x.ndim != 2 or x.shape[1] < 2:
            raise DatasetError(
                f"{where}.file: a .npy dataset is one 2-D array (rows x columns, the target one of them); got shape "
                f"{x.shape}. Use an .npz with x and y arrays for other shapes."
            )
        column = options["target"]
        if not -x.shape[1] <= column < x.shape[1]:
            raise DatasetError(f"{where}.target: column {column} is out of range for {x.shape[1]} columns.")
        y = x[:, column]
        x = np.delete(x, column % x.shape[1], axis=1)
    else:
        y = np.asarray(raw.y)
    pieces = [(x, y, 0)]
    if raw.x_validation is not None:
        pieces.append((np.asarray(raw.x_validation), np.asarray(raw.y_validation), 1))
    if raw.x_test is not None:
        pieces.append((np.asarray(raw.x_test), np.asarray(raw.y_test), 2))
    for features, targets, _part in pieces:
        if len(features) != len(targets):
            raise DatasetError(
                f"{where}: {len(features)} inputs but {len(targets)} targets; expected one target per row."
            )
        if features.shape[1:] != x.shape[1:]:
            raise DatasetError(f"{where}: train inputs have shape {x.shape[1:]}, test inputs {features.shape[1:]}.")
        if features.dtype.kind not in "biuf":
            raise DatasetError(f"{where}: inputs have dtype {features.dtype}; expected numbers.")
    x_all = np.concatenate([piece[0] for piece in pieces])
    y_all = np.concatenate([piece[1] for piece in pieces])
    if x_all.dtype == np.uint8 and x_all.ndim == 3:  # greyscale images (Keras' mnist.npz): a channel axis for conv2d
        x_all = x_all[..., np.newaxis]
    flat = x_all.reshape(len(x_all), -1)
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        bad = ~np.isfinite(flat).all(axis=1)
        raise DatasetError(
            f"{where}: {int((~np.isfinite(flat)).sum())} input values are NaN or infinite, in {int(bad.sum())} rows; "
            f"the first in row {int(np.flatnonzero(bad)[0]) + 1}. Fix or drop those rows."
        )
    if y_all.dtype.kind == "f" and not np.isfinite(y_all).all():
        bad = ~np.isfinite(y_all.reshape(len(y_all), -1)).all(axis=1)
        raise DatasetError(
            f"{where}.target: {int(bad.sum())} targets are NaN or infinite; the first in row "
            f"{int(np.flatnonzero(bad)[0]) + 1}. Fix or drop those rows."
        )
    parts = None if len(pieces) == 1 else np.concatenate([np.full(len(p[1]), p[2]) for p in pieces])
    return x_all.astype(np.float64), y_all, parts


def _targets(
    y: np.ndarray, options: Mapping[str, Any], raw: user_files.Raw, where: str
) -> tuple[str, np.ndarray, int | None, str, list[Any]]:
    """The task, the encoded targets, the class count, how the task was decided and each class's name."""
    given = options["task"] or raw.declared.get("task")
    kind = y.dtype.kind
    values = y.reshape(len(y), -1)
    if given is not None:
        task, how = given, "as given"
    elif values.shape[1] > 1:
        task, how = "regression", f"the targets have {values.shape[1]} columns; set task: to override"
    elif kind == "b":
        task, how = "binary", "true/false targets"
    elif kind not in "iuf":
        task, how = "classification", "non-numeric targets"
    elif kind == "f" and not np.all(np.mod(y, 1) == 0):
        task, how = "regression", "fractional targets; set task: classification to override"
    else:
        distinct = np.unique(y)
        if len(distinct) == 2 and set(distinct.tolist()) == {0, 1}:
            task, how = "binary", "integer targets 0 and 1; set task: classification for two output units"
        elif len(distinct) <= MAX_INFERRED_CLASSES:
            task, how = "classification", f"{len(distinct)} distinct integer targets; set task: regression to override"
        else:
            task, how = "regression", f"{len(distinct)} distinct integer targets (over {MAX_INFERRED_CLASSES})"
    if task == "regression":
        if kind not in "biuf":
            raise DatasetError(f"{where}.target: non-numeric targets cannot be regressed; use task: classification.")
        return task, y, None, how, []
    if task == "sequence":
        if values.shape[1] < 2 or kind not in "iu" or y.min() < 0:
            raise DatasetError(
                f"{where}.task: sequence needs integer label strings (N, length), padded with 0 (the ctc blank); "
                f"got targets of shape {y.shape} and dtype {y.dtype}."
            )
        return task, y.astype(np.int64), int(raw.declared.get("num_classes") or y.max() + 1), how, []
    if values.shape[1] > 1:
        raise DatasetError(
            f"{where}.task: {task} needs one label per row, got targets of shape {y.shape}. For one-hot labels "
            "save their argmax; for several outputs use task: regression."
        )
    labels = y.reshape(-1)
    classes = np.unique(labels.astype(str) if kind not in "biuf" else labels)
    declared = raw.declared.get("num_classes")
    if kind in "iu" and declared and labels.min() >= 0 and labels.max() < declared:
        codes, count = labels.astype(np.int64), int(declared)
    else:
        codes = np.searchsorted(classes, labels.astype(str) if kind not in "biuf" else labels)
        count = len(classes)
        if raw.class_names is not None:
            codes, count = labels.astype(np.int64), len(raw.class_names)
            classes = np.array(raw.class_names)
    if count < 2:
        raise DatasetError(
            f"{where}.target: only one class ({classes.tolist()[0]!r}) in the targets; a {task} task needs at least 2."
        )
    if task == "binary" and count != 2:
        raise DatasetError(
            f"{where}.task: binary needs exactly 2 classes, the targets have {count} ({', '.join(map(str, classes[:5]))}"
            f"{', ...' if count > 5 else ''}). Use task: classification."
        )
    if not np.array_equal(classes, np.arange(count)) and len(classes) <= 50:
        how += "; classes " + ", ".join(f"{name}={code}" for code, name in enumerate(classes.tolist()))
    return task, codes, count, how, classes.tolist()


def _split(
    num_rows: int, labels: np.ndarray | None, options: Mapping[str, Any], where: str, names: list[Any]
) -> np.ndarray:
    """Each row's split (0 train, 1 validation, 2 test) from split.{test, validation, seed, stratify};
    `names`: each label code's value in the data, for messages."""
    stratify = labels is not None and options["stratify"]
    rng = np.random.default_rng([DATASET_SEED, USER_SPLIT_STREAM, options["seed"]])
    parts = np.zeros(num_rows, dtype=np.int64)
    counts = [(2, held_out_count(num_rows, options["test"])), (1, held_out_count(num_rows, options["validation"]))]
    if num_rows - sum(count for _part, count in counts) < 1:
        raise DatasetError(
            f"{where}.split: {num_rows} rows, test {options['test']} and validation {options['validation']} leave "
            "no training row. Lower the fractions or use more rows."
        )
    if stratify:
        assert labels is not None
        held_splits = sum(1 for _part, count in counts if count > 0)
        codes, sizes = np.unique(labels, return_counts=True)
        if held_splits and sizes.min() < held_splits + 1:
            code = int(codes[int(np.argmin(sizes))])
            small = names[code] if code < len(names) else code
            raise DatasetError(
                f"{where}.split.stratify: class {small!r} has {int(sizes.min())} row(s); stratifying over train"
                f"{', validation' if counts[1][1] else ''}{', test' if counts[0][1] else ''} needs at least "
                f"{held_splits + 1} per class. Add rows of that class, drop it, or set stratify: false."
            )
    for part, count in counts:
        available = np.flatnonzero(parts == 0)
        if stratify:
            assert labels is not None
            chosen = [
                rng.permutation(available[labels[available] == label])[:quota]
                for label, quota in stratified_counts(labels[available], count).items()
            ]
            held = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
        else:
            held = rng.permutation(available)[:count]
        parts[held] = part
    if labels is not None and stratify and len(set(labels[parts == 0].tolist())) < len(set(labels.tolist())):
        raise DatasetError(f"{where}.split: a class has no training row; lower the held-out fractions.")
    return parts


def _encode_table(
    frame: Any, columns: list[str], train: np.ndarray, options: Mapping[str, Any], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns as they are; each categorical column one-hot over the categories of the TRAINING rows
    (a category seen only in validation or test rows encodes as all zeros). Returns x and which columns are numeric."""
    blocks, numeric = [], []
    for name in columns:
        if name in options["categorical"]:
            values = frame[name].astype(str).to_numpy()
            categories = np.unique(values[train])
            blocks.append((values[:, None] == categories[None, :]).astype(np.float64))
            numeric.extend([False] * len(categories))
            unseen = int((~np.isin(values[~train], categories)).sum())
            if unseen:
                _notes.append(
                    f"{where}.categorical: {name!r}: {unseen} validation/test rows have a category not in the "
                    "training rows (encoded as all zeros)"
                )
        else:
            blocks.append(frame[name].to_numpy(dtype=np.float64)[:, None])
            numeric.append(True)
    return np.concatenate(blocks, axis=1), np.array(numeric)


def _standardize(x: np.ndarray, train: np.ndarray, numeric: np.ndarray | None) -> np.ndarray:
    """Standard scaling fitted on the training rows: per feature for vectors and sequences, per channel
    for images (N, H, W, C); one-hot columns of a table are left as 0/1."""
    if x.ndim == 4:
        channels = x.reshape(-1, x.shape[-1])
        rows = np.repeat(train, x.shape[1] * x.shape[2])
        offset, divisor = fit_scaling(channels[rows], "standard")
        return (x - offset) / divisor
    flat = x.reshape(len(x), -1)
    offset, divisor = fit_scaling(flat[train], "standard")
    if numeric is not None:
        offset, divisor = np.where(numeric, offset, 0.0), np.where(numeric, divisor, 1.0)
    return ((flat - offset) / divisor).reshape(x.shape)
