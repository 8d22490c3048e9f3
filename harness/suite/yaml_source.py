"""Read a suite file as plain Python data plus the line of every key, and build located errors.

Every error the suite loader raises starts with `<file>:<line>: <key path>: `. The lines
come from PyYAML's composed node tree (`start_mark`), indexed by key path: a path is a
tuple of mapping keys and list indices, e.g. `("grid", "optimizer", "adam", "lr")` or
`("model", "layers", 0, "dense")`, displayed as `grid.optimizer.adam.lr` and
`model.layers[0].dense`.

Two departures from PyYAML's defaults, both to catch mistakes rather than hide them:
- Floats follow YAML 1.2: `1e-3` is the number 0.001. PyYAML implements YAML 1.1, which
  needs a dot and a signed exponent (`1.0e-3`) and reads `lr: 1e-3` as the STRING '1e-3'.
- A key given twice in one mapping is an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError, SpecError

KeyPath = tuple[Any, ...]  # mapping keys (str, or int/bool as YAML allows) and list indices (int)

_MERGE_TAG = "tag:yaml.org,2002:merge"


class SuiteYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats (`1e-3`, `2E5` are numbers, not strings)."""


# Only the forms YAML 1.1 misses: an exponent without a dot or without a sign. The YAML 1.1
# resolver runs first, so everything it already reads as a float is unchanged.
SuiteYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class SuiteIssue(Exception):
    """Internal: a problem at a key path of a suite document, located into a message later.

    Never escapes `load_suite`: it is turned into a `HarnessError` subclass (`kind`) whose
    message starts with the file, the line and the key path.
    """

    def __init__(self, path: KeyPath, message: str, kind: type[HarnessError] = SpecError) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message
        self.kind = kind


def display_path(path: KeyPath) -> str:
    """`("model", "layers", 0, "dense")` -> `model.layers[0].dense`; `()` -> `(top level)`."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


_PATH_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)")
_PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def split_path_prefix(message: str) -> tuple[KeyPath, str]:
    """Split a resolver message `'optimizer.lr: expected ...'` into `(("optimizer", "lr"), ': expected ...')`.

    The spec and data resolvers start every message with the `where` they were given plus
    the key path below it. Returns `((), message)` when the message starts with no path.
    """
    match = _PATH_PREFIX.match(message)
    if not match or not message[match.end() :].startswith((":", " (")):
        return (), message
    parts: list[Any] = []
    for name, index in _PATH_PART.findall(match.group(1)):
        parts.append(int(index) if index else name)
    return tuple(parts), message[match.end() :]


@dataclass(frozen=True)
class SourceMap:
    """The file a suite came from and the 1-based line of every key path in it."""

    file: Path
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        """Line of `path`, or of its nearest ancestor that is in the file (1 for the top level)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def error(self, path: KeyPath, message: str, kind: type[HarnessError] = SpecError) -> HarnessError:
        """`<file>:<line>: <key path>: <message>` as a `kind` error."""
        return kind(f"{self.file}:{self.line(path)}: {display_path(path)}: {message}")


def locate_message(file: Path, message: str, kind: type[HarnessError] = SpecError) -> HarnessError:
    """`'<key path>: <rest>'` -> a `kind` error `<file>:<line>: <key path>: <rest>`.

    For the blocks checked after the suite has loaded (`report:`, `expect:`, `check:`), whose
    checkers know the key path but not the file: the file is read again for its lines (it loaded
    a moment ago). A message that starts with no key path is located at line 1.
    """
    path, rest = split_path_prefix(message)
    try:
        _, source = load_yaml(file)
    except HarnessError:
        source = SourceMap(file)  # changed or removed since it loaded: no lines, but still the file
    if not path:
        return kind(f"{file}:{source.line(())}: {message}")
    return kind(f"{file}:{source.line(path)}: {display_path(path)}{rest}")


def load_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Read and parse a suite file.

    Returns:
        The document as plain Python data (dicts, lists, scalars) and its SourceMap.

    Raises:
        SpecError: the file is missing or unreadable, is not valid YAML (with the line of
            the problem), or repeats a key within one mapping.
    """
    if not path.exists():
        raise SpecError(
            f"{path}: suite file not found (looked in {path.resolve().parent}). "
            "Check the path; shipped suites are in suites/ (list them with: harness list suites)."
        )
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, expected a suite file (.yaml). Pass one file, e.g. {path}/smoke.yaml.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(
            f"{path}: is not UTF-8 text ({error.reason} at byte {error.start}). Save the suite as UTF-8."
        ) from None
    except OSError as error:
        raise SpecError(f"{path}: cannot be read ({error.strerror}). Check its permissions.") from None
    loader = SuiteYamlLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _index_lines(loader, node, (), lines, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(part for part in (error.context, error.problem) if part)
        started = error.context_mark
        if started is not None and error.problem_mark is not None and started.line != error.problem_mark.line:
            problem += f" (what it was parsing started at line {started.line + 1})"
        raise SpecError(
            f"{path}:{line}: malformed YAML{column}: {problem}. "
            "Check the indentation, the colons after keys and that brackets and quotes are closed."
        ) from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}:1: malformed YAML: {error}.") from None
    finally:
        loader.dispose()
    return data, SourceMap(path, lines)


def _index_lines(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    file: Path,
    ancestors: frozenset[int] = frozenset(),
) -> None:
    """Record the line of every key and list item under `node`; reject repeated keys."""
    if id(node) in ancestors:
        return  # a recursive alias (`&a [*a]`): the constructor handles it, there is nothing more to index
    ancestors = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *anchor` merges and complex keys: left to the constructor
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = display_path((*path, key))
                raise SpecError(
                    f"{file}:{line}: {where}: the key {key!r} is given twice in one mapping "
                    f"(first at line {seen[key]}); YAML would silently keep only the last. Remove one."
                )
            seen[key] = line
            lines[(*path, key)] = line
            _index_lines(loader, value_node, (*path, key), lines, file, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _index_lines(loader, item, (*path, index), lines, file, ancestors)
