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

The work of loading is bounded whatever the file holds, so a hostile or broken file is refused
within a second and a few MB (each limit is a generous multiple of what the shipped suites use):
- MAX_FILE_BYTES: the file's size (read no further, so /dev/zero is refused too).
- control characters (NUL, ESC, ...) are named with their line and column before YAML parses.
- MAX_DEPTH: nesting of lists and mappings, counted while composing, before the composer recurses
  (brackets nested thousands deep would otherwise end in a RecursionError).
- MAX_VALUES: values (scalars, lists, mappings) the document holds once every alias is expanded,
  counted on the composed node graph, where an alias is one shared node (a "billion laughs" file
  is a few hundred bytes that expand to 10^9 values; every later step would copy them out).
- MAX_NUMBER_DIGITS: digits of an integer (Python refuses to convert more than 4300).
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


MAX_FILE_BYTES = 1 << 20  # 1 MiB; the largest shipped suite is under 5 KB
MAX_DEPTH = 64  # lists and mappings inside each other; the shipped suites need 7
MAX_VALUES = 10_000  # values after alias expansion; the shipped suites hold under 200
MAX_NUMBER_DIGITS = 1000

# What YAML forbids in a stream (PyYAML's reader.NON_PRINTABLE): C0 controls but tab, newline and
# carriage return; DEL; C1 controls but NEL; surrogates; U+FFFE and U+FFFF.
_CONTROL = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed", 0x1B: "ESC"}
_CONTROL_NAMES[0x7F] = "DEL"


class LimitExceeded(yaml.MarkedYAMLError):
    """Internal: a loading limit was passed at `problem_mark`; `load_yaml` turns it into a SpecError."""


class SuiteYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats (`1e-3`, `2E5` are numbers, not strings), which
    counts nesting depth and values while composing, and records where each alias is used."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.composed = 0
        self.alias_uses: list[tuple[str, yaml.Mark, yaml.Node]] = []  # (anchor, where used, its node)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)  # the anchored node itself: no new values, no recursion
            if node is not None:
                self.alias_uses.append((event.anchor, event.start_mark, node))
            return node
        self.depth += 1
        self.composed += 1
        if self.depth > MAX_DEPTH or self.composed > MAX_VALUES:
            mark = self.peek_event().start_mark
            if self.depth > MAX_DEPTH:
                problem = _too_deep()
            else:
                problem = (
                    f"more than {MAX_VALUES} values (scalars, lists, mappings); the shipped suites hold "
                    "under 200. Check that this is a suite file"
                )
            raise LimitExceeded(problem=problem, problem_mark=mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # Refused in the scanner too: it looks up to 1024 characters ahead with work per open bracket,
        # so a line of thousands of '[' would take seconds before the composer saw the first one.
        if self.flow_level >= MAX_DEPTH:
            raise LimitExceeded(problem=_too_deep(), problem_mark=self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            # PyYAML's constructors trust an explicit tag: `!!int 3.5` or `!!bool maybe` end in int() or a lookup.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the value {node.value!r} is not a valid {tag} (remove the tag, or fix the value)",
                node.start_mark,
            ) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(character.isdigit() for character in node.value)
        if digits > MAX_NUMBER_DIGITS:
            raise LimitExceeded(
                problem=f"an integer of {digits} digits (at most {MAX_NUMBER_DIGITS}). Shorten it, or quote it",
                problem_mark=node.start_mark,
            )
        return super().construct_yaml_int(node)


def _too_deep() -> str:
    return (
        f"lists and mappings nested more than {MAX_DEPTH} deep (brackets or indentation); a suite needs fewer "
        "than 10. Check for unclosed or repeated brackets"
    )


SuiteYamlLoader.add_constructor("tag:yaml.org,2002:int", SuiteYamlLoader.construct_yaml_int)


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
        self.also: tuple[SuiteIssue, ...] = ()  # further independent problems found in the same pass

    @staticmethod
    def several(issues: list[SuiteIssue]) -> SuiteIssue:
        """The first issue, carrying the others in `also` (a caller that wants one reads the first)."""
        first = issues[0]
        first.also = tuple(issue for later in issues[1:] for issue in later.every())
        return first

    def every(self) -> tuple[SuiteIssue, ...]:
        """This issue and those found with it."""
        return (self, *self.also)


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
    """Read and parse a suite file, within the limits the module docstring states.

    Returns:
        The document as plain Python data (dicts, lists, scalars) and its SourceMap.

    Raises:
        SpecError: the file is missing or unreadable, over MAX_FILE_BYTES, not UTF-8, holds a
            control character, is not valid YAML (with the line of the problem), nests deeper than
            MAX_DEPTH, expands to more than MAX_VALUES values, or repeats a key within one mapping.
    """
    text = _read_text(path)
    control = _CONTROL.search(text)
    if control is not None:
        line_number, column_number = _line_and_column(text, control.start())
        code = ord(control.group())
        name = _CONTROL_NAMES.get(code) or (
            "a C1 control character" if 0x80 <= code < 0xA0 else "a character YAML forbids"
        )
        if code < 0x20:
            name = _CONTROL_NAMES.get(code, "a control character")
        raise SpecError(
            f"{path}:{line_number}: control character U+{code:04X} ({name}) at column {column_number}; YAML allows none but "
            "tab, newline and carriage return. Delete it (a binary file, or a bad copy and paste?)."
        )
    loader = SuiteYamlLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _check_expansion(loader, node, path)
            _index_lines(loader, node, (), lines, path)
        data = loader.construct_document(node) if node is not None else None
    except LimitExceeded as error:
        mark = error.problem_mark
        assert mark is not None
        raise SpecError(
            f"{path}:{mark.line + 1}: too large to be a suite, column {mark.column + 1}: {error.problem}."
        ) from None
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


def _read_text(path: Path) -> str:
    """The file's text; reads at most MAX_FILE_BYTES + 1 bytes, so an endless file is refused too."""
    if not path.exists():
        raise SpecError(
            f"{path}: suite file not found (looked in {path.resolve().parent}). "
            "Check the path; shipped suites are in suites/ (list them with: harness list suites)."
        )
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, expected a suite file (.yaml). Pass one file, e.g. {path}/smoke.yaml.")
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SpecError(f"{path}: cannot be read ({error.strerror}). Check its permissions.") from None
    if len(content) > MAX_FILE_BYTES:
        raise SpecError(
            f"{path}: the file is over {MAX_FILE_BYTES // 1024} KiB ({MAX_FILE_BYTES} bytes), the most a suite may be; "
            "the largest shipped suite is under 5 KB. Check that this is a suite file: data belongs in a dataset, "
            "and a grid describes many trials in a few lines."
        )
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_and_column(content, error.start)
        raise SpecError(
            f"{path}:{line}: is not UTF-8 text ({error.reason} at byte {error.start}, column {column}). "
            "Save the suite as UTF-8."
        ) from None


def _line_and_column(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` (columns in characters for text, bytes for bytes)."""
    newline: Any = "\n" if isinstance(text, str) else b"\n"
    return text.count(newline, 0, offset) + 1, offset - (text.rfind(newline, 0, offset) + 1) + 1


def _check_expansion(loader: SuiteYamlLoader, root: yaml.Node, file: Path) -> None:
    """Refuse a document whose aliases expand it past MAX_VALUES values or MAX_DEPTH levels, or refer to
    themselves. Counts each node once (memoized), so the work is the size of the file, not of its expansion."""
    if not loader.alias_uses:
        return  # no alias: the composer already counted every value and level
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
    in_progress: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise _RecursiveAlias(node)
        in_progress.add(key)
        values, depth = 1, 1
        if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            for child in children:
                child_values, child_depth = measure(child)
                values += child_values
                depth = max(depth, child_depth + 1)
        in_progress.discard(key)
        sizes[key] = (min(values, MAX_VALUES + 1), depth)  # capped: the sum stays a small int
        return sizes[key]

    try:
        values, depth = measure(root)
    except _RecursiveAlias as recursive:
        anchor, mark = next((a, m) for a, m, node in loader.alias_uses if node is recursive.node)
        raise SpecError(
            f"{file}:{mark.line + 1}: the alias *{anchor} at column {mark.column + 1} is inside the value of its own "
            f"anchor &{anchor}, which makes an endless value. Refer to an anchor only after its value is complete."
        ) from None
    if values <= MAX_VALUES and depth <= MAX_DEPTH:
        return
    # The alias use that repeats the most: the one to point at.
    anchor, mark, node = max(loader.alias_uses, key=lambda use: sizes[id(use[2])])
    repeated = sizes[id(node)][0]
    repeated_text = f"more than {MAX_VALUES}" if repeated > MAX_VALUES else str(repeated)
    what = (
        f"more than {MAX_VALUES} values"
        if values > MAX_VALUES
        else f"lists and mappings nested more than {MAX_DEPTH} deep"
    )
    raise SpecError(
        f"{file}:{mark.line + 1}: too large to be a suite, column {mark.column + 1}: with its aliases expanded, the "
        f"document holds {what} (this *{anchor} alone repeats {repeated_text} values; the shipped suites hold "
        "under 200). Use fewer aliases, or aliases of aliases: each multiplies what it repeats."
    )


class _RecursiveAlias(Exception):
    def __init__(self, node: yaml.Node) -> None:
        super().__init__()
        self.node = node


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
