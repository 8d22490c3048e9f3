"""Where a user's own data comes from: table files, array files, image folders and Python plug-ins.

Each reader returns `Raw`: the rows as read (a table, or feature and target arrays), the test rows
when the source ships its own split (Keras' npz layout, a plug-in's x_test), and a digest of the
bytes read. Nothing here splits, encodes or scales; `harness.data.user_datasets` does, with the
options that join the digest. Readers raise DatasetError (exit 2) naming the file, what was found
and how to fix it.

Every reader states the memory it needs BEFORE it reads: a source bigger than the memory this
machine has available is refused with its size, not loaded until the operating system kills it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import sources
from harness.errors import DatasetError

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
ARRAY_FORMATS = {".npz": "npz", ".npy": "npy"}
FILE_FORMATS = {**TABLE_FORMATS, **ARRAY_FORMATS}
KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")  # the layout of Keras' cached dataset files (mnist.npz)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_CACHE_FORMAT = 1  # bump when the cached image arrays' layout changes
MEMINFO = Path("/proc/meminfo")
_CHUNK = 1 << 20


@dataclass
class Raw:
    """A source as read: `table` (a pandas DataFrame) for table files, else `x` and `y` arrays.

    `x_test`/`y_test`: the source's own test rows, when it has them. `class_names`: labels of an
    image folder's classes, in label order. `digest`: SHA-256 of the bytes (files) or arrays (plug-ins).
    """

    digest: str
    source_bytes: int  # what reading it takes in memory, before encoding (stated to the user)
    table: Any = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_validation: np.ndarray | None = None
    y_validation: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    declared: dict[str, Any] = field(default_factory=dict)  # a plug-in's own task / num_classes


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable in /proc/meminfo), None where unknown."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def describe_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover - the loop returns


def check_memory(needed: int, what: str, where: str) -> None:
    """Refuse a source that needs more memory than is available, before reading it."""
    available = available_memory()
    if available is not None and needed > available:
        raise DatasetError(
            f"{where}: {what} needs about {describe_bytes(needed)} in memory, more than the "
            f"{describe_bytes(available)} available on this machine; it was not loaded. Use a smaller file "
            "(a sample of its rows), or run on a machine with more memory."
        )


def file_digest(path: Path, digest: Any = None) -> Any:
    """SHA-256 of a file's bytes, streamed (a large file is never held twice)."""
    digest = digest if digest is not None else hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest


def array_digest(arrays: Mapping[str, np.ndarray | None]) -> str:
    """SHA-256 of arrays: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def read_file(path: Path, file_format: str, options: Mapping[str, Any], where: str) -> Raw:
    """Read a table or array file; `options` holds target/features for npz and npy."""
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise DatasetError(
            f"{where}.file: {path}: {what}. Give the path of a {', '.join(FILE_FORMATS)} file, relative to the "
            "suite file or absolute."
        )
    size = path.stat().st_size
    needed = _npz_unpacked_size(path, where) if file_format == "npz" else size
    if file_format == "parquet":
        needed = max(size, _parquet_unpacked_size(path, where))
    check_memory(needed, f"{path.name} ({describe_bytes(size)} on disk)", f"{where}.file")
    digest = file_digest(path).hexdigest()
    try:
        if file_format in TABLE_FORMATS.values():
            return Raw(digest, needed, table=_read_table(path, file_format))
        if file_format == "npy":
            return Raw(digest, needed, x=np.load(path, allow_pickle=False))
        return _read_npz(path, digest, needed, options, where)
    except DatasetError:
        raise
    except Exception as error:  # a parser's own exception: the file is not what its suffix says
        raise DatasetError(
            f"{where}.file: cannot read {path} as {file_format}: {type(error).__name__}: {error}. "
            f"Check that it is a valid {file_format} file (or rename it to its real format's suffix)."
        ) from None


def _read_table(path: Path, file_format: str) -> Any:
    import pandas as pd  # lazy: reading results need not import pandas through harness.data

    if file_format == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if file_format == "tsv" else ",")


def _npz_unpacked_size(path: Path, where: str) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(
            f"{where}.file: cannot read {path} as npz ({error}). Save it with numpy.savez or numpy.savez_compressed."
        ) from None


def _parquet_unpacked_size(path: Path, where: str) -> int:
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        return sum(meta.row_group(index).total_byte_size for index in range(meta.num_row_groups))
    except ImportError:
        return 0
    except Exception as error:
        raise DatasetError(f"{where}.file: cannot read {path} as parquet: {error}.") from None


def _read_npz(path: Path, digest: str, needed: int, options: Mapping[str, Any], where: str) -> Raw:
    with np.load(path, allow_pickle=False) as stored:
        names = list(stored.files)
        if all(key in names for key in KERAS_KEYS):
            arrays = {key: stored[key] for key in KERAS_KEYS}
            return Raw(
                digest,
                needed,
                x=arrays["x_train"],
                y=arrays["y_train"],
                x_test=arrays["x_test"],
                y_test=arrays["y_test"],
            )
        x_key = (options.get("features") or ["x"])[0]
        y_key = options.get("target") or "y"
        for key, role in ((x_key, "features"), (y_key, "target")):
            if key not in names:
                from harness.errors import did_you_mean

                raise DatasetError(
                    f"{where}.{role}: {path.name} has no array {key!r}.{did_you_mean(key, names)} It holds: "
                    f"{', '.join(names)}. Name its arrays with target: and features: [...], or save it in Keras' "
                    f"layout ({', '.join(KERAS_KEYS)})."
                )
        return Raw(digest, needed, x=stored[x_key], y=stored[y_key])


def read_image_folder(folder: Path, size: tuple[int, int], color: str, where: str) -> Raw:
    """An image folder in torchvision's ImageFolder convention: one sub-folder per class.

    Every image is converted to `color` ('rgb' or 'grayscale') and resized to `size` (H, W) with
    Pillow's bilinear filter. The decoded uint8 arrays (N, H, W, C) are cached on disk under the
    digest of every file's relative path and bytes plus the options, so only the first read decodes.
    """
    if not folder.is_dir():
        raise DatasetError(
            f"{where}.images: {folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}. "
            "Give a folder with one sub-folder of images per class (e.g. flowers/rose/*.jpg, flowers/tulip/*.jpg)."
        )
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DatasetError(
            f"{where}.images: {folder} has no class folders. Put each class's images in a sub-folder named after "
            "the class (flowers/rose/1.jpg, flowers/tulip/2.jpg)."
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        for image in sorted((folder / name).rglob("*")):
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES:
                files.append((image, label))
    if not files:
        raise DatasetError(
            f"{where}.images: the class folders of {folder} ({', '.join(classes)}) hold no images "
            f"({', '.join(IMAGE_SUFFIXES)})."
        )
    channels = 3 if color == "rgb" else 1
    needed = len(files) * size[0] * size[1] * channels
    check_memory(
        needed * 5, f"{len(files)} images at {size[0]}x{size[1]}x{channels}", f"{where}.images"
    )  # uint8 + float32
    digest = hashlib.sha256(json.dumps({"size": list(size), "color": color}).encode())
    for image, label in files:
        digest.update(f"{image.relative_to(folder).as_posix()}\0{label}\0".encode())
        file_digest(image, digest)
    hexdigest = digest.hexdigest()
    labels = np.array([label for _image, label in files], dtype=np.int64)
    cache = sources.cache_path("images", {"digest": hexdigest, "format": IMAGE_CACHE_FORMAT})
    arrays = sources.cached_arrays(cache, lambda: {"x": _decode_images(files, size, color, where), "y": labels})
    return Raw(hexdigest, needed, x=arrays["x"], y=arrays["y"], class_names=tuple(classes))


def _decode_images(files: list[tuple[Path, int]], size: tuple[int, int], color: str, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    mode = "RGB" if color == "rgb" else "L"
    pixels = np.empty((len(files), size[0], size[1], 3 if color == "rgb" else 1), dtype=np.uint8)
    for index, (path, _label) in enumerate(files):
        try:
            with Image.open(path) as image:
                resized = image.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels[index] = np.asarray(resized, dtype=np.uint8).reshape(pixels.shape[1:])
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DatasetError(
                f"{where}.images: cannot read image {path} ({type(error).__name__}: {error}). Remove or replace it; "
                "every file with an image suffix in a class folder is read."
            ) from None
    return pixels


# ---------------------------------------------------------------------------------------------
# Python plug-ins
# ---------------------------------------------------------------------------------------------

PLUGIN_PROTOCOL = (
    "a mapping of numpy arrays: x_train, y_train, x_test, y_test (and optionally x_validation, y_validation), "
    "or x and y for the harness to split; optionally 'task' and 'num_classes'"
)


def import_callable(reference: str, where: str) -> Callable[..., Any]:
    """The function a 'package.module:function' reference names, imported now (it runs the module's code)."""
    if not isinstance(reference, str) or reference.count(":") != 1 or not all(reference.split(":")):
        raise DatasetError(
            f"{where}: expected 'package.module:function', got {reference!r}. The module must be importable "
            "(installed, or on PYTHONPATH; the suite's folder is added to the path)."
        )
    module_name, attribute = reference.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise DatasetError(
            f"{where}: cannot import {module_name!r} ({type(error).__name__}: {error}). Install the package or put "
            "the module beside the suite file (its folder is on the import path)."
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise DatasetError(
            f"{where}: module {module_name!r} has no function {attribute!r}. Its public names: "
            f"{', '.join(name for name in dir(module) if not name.startswith('_')) or '(none)'}."
        )
    return function


def call_plugin(reference: str, args: Mapping[str, Any], where: str) -> Raw:
    """Call a dataset plug-in and check what it returns against PLUGIN_PROTOCOL."""
    function = import_callable(reference, f"{where}.python")
    try:
        returned = function(**args)
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(
            f"{where}.python: {reference}(**args) raised {type(error).__name__}: {error}. Fix the plug-in or its args."
        ) from None
    if not isinstance(returned, Mapping):
        raise DatasetError(
            f"{where}.python: {reference} returned {type(returned).__name__}; expected {PLUGIN_PROTOCOL}."
        )
    declared = {key: returned[key] for key in ("task", "num_classes") if key in returned}
    has_split = "x_train" in returned
    needed_keys = ("x_train", "y_train", "x_test", "y_test") if has_split else ("x", "y")
    arrays: dict[str, np.ndarray] = {}
    for key in [*needed_keys, "x_validation", "y_validation"]:
        if key not in returned:
            if key.endswith("_validation"):
                continue
            raise DatasetError(
                f"{where}.python: {reference} returned keys {sorted(map(str, returned))}, without {key!r}; "
                f"expected {PLUGIN_PROTOCOL}."
            )
        value = returned[key]
        if not isinstance(value, np.ndarray) or value.ndim == 0 or value.dtype == object:
            raise DatasetError(
                f"{where}.python: {reference} returned {key} as {type(value).__name__}"
                f"{'' if not isinstance(value, np.ndarray) else f' of dtype {value.dtype}, shape {value.shape}'}; "
                "expected a numeric numpy array with one row per sample."
            )
        arrays[key] = value
    if ("x_validation" in arrays) != ("y_validation" in arrays):
        raise DatasetError(f"{where}.python: {reference} returned only one of x_validation, y_validation; give both.")
    for prefix in ("", "_train", "_test", "_validation"):
        x, y = arrays.get(f"x{prefix}"), arrays.get(f"y{prefix}")
        if x is not None and y is not None and len(x) != len(y):
            raise DatasetError(
                f"{where}.python: {reference} returned x{prefix} with {len(x)} rows and y{prefix} with {len(y)}; "
                "expected one target per sample (the same first dimension)."
            )
    shapes = {arrays[key].shape[1:] for key in arrays if key.startswith("x")}
    if len(shapes) > 1:
        raise DatasetError(
            f"{where}.python: {reference} returned inputs of different sample shapes {sorted(shapes)}; "
            "every split's x must have the same shape after the row axis."
        )
    digest = array_digest({**arrays, "declared": np.frombuffer(json.dumps(declared, default=str).encode(), np.uint8)})
    size = sum(array.nbytes for array in arrays.values())
    check_memory(size, f"the arrays {reference} returned", f"{where}.python")
    if has_split:
        return Raw(
            digest,
            size,
            x=arrays["x_train"],
            y=arrays["y_train"],
            x_test=arrays["x_test"],
            y_test=arrays["y_test"],
            x_validation=arrays.get("x_validation"),
            y_validation=arrays.get("y_validation"),
            declared=declared,
        )
    return Raw(digest, size, x=arrays["x"], y=arrays["y"], declared=declared)


def suite_import_path(folder: Path) -> None:
    """Let plug-ins beside the suite file import (like running a script from its folder)."""
    text = str(folder)
    if sys.path[:1] != [text]:  # first, so the suite's own module wins over one of the same name elsewhere
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)
