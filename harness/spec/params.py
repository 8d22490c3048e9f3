"""One declaration per parameter: its kind, default, constraint, meaning and formula.

Every value a suite may set by key (a component's hyperparameter, a layer's parameter, a
dataset option, a `training:` or `regularizer:` key) is declared once as a `Parameter`;
the check of a value, the schema of a suite block, `harness list` and the error messages
are all derived from that one declaration.

    Parameter("number", 0.01, "> 0", "learning rate")             # optimizer lr
    Parameter("integer", 1000, ">= 8", "rows before the test split")  # a dataset option
    Parameter("choice", "post", choices=("post", "pre"))           # transformer_encoder norm

A constraint bounds a number or an integer: `> 0`, `>= 8`, or an interval `[0, 1)`, `(0, 1)`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, SpecError, did_you_mean

# number | integer: bounded by `constraint`; bool; choice: one of `choices`;
# ints: a positive int or a list of `rank` of them (kernel_size, strides, ...), stored as a tuple;
# padding: 'valid', 'same', an int >= 0 or a list of `rank` of them, stored as a tuple;
# shape: a list of positive ints, one may be -1; activation | initializer: a component, resolved by
# harness.spec.components.resolve_component; any: not checked.
KINDS = ("number", "integer", "bool", "choice", "ints", "padding", "shape", "activation", "initializer", "any")

_COMPARISON = re.compile(r"^(>=|>) (-?\d+(?:\.\d+)?)$")
_INTERVAL = re.compile(r"^([\[(])(-?\d+(?:\.\d+)?), (-?\d+(?:\.\d+)?)([\])])$")


@dataclass(frozen=True)
class Bounds:
    """A parsed constraint: the lowest and highest value allowed, each inclusive or not."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True

    def contains(self, value: float) -> bool:
        if self.low is not None and not (value >= self.low if self.low_inclusive else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.high_inclusive else value < self.high)

    def pydantic(self) -> dict[str, float]:
        """The same bounds as pydantic Field keywords (ge, gt, le, lt)."""
        keywords = {}
        if self.low is not None:
            keywords["ge" if self.low_inclusive else "gt"] = self.low
        if self.high is not None:
            keywords["le" if self.high_inclusive else "lt"] = self.high
        return keywords


@functools.cache
def parse_constraint(text: str) -> Bounds:
    """'> 0' -> Bounds(low=0, low_inclusive=False); '[0, 1)' -> Bounds(0, True, 1, False); '' -> no bounds."""
    if not text:
        return Bounds()
    comparison = _COMPARISON.match(text)
    if comparison:
        return Bounds(low=float(comparison.group(2)), low_inclusive=comparison.group(1) == ">=")
    interval = _INTERVAL.match(text)
    if interval:
        opening, low, high, closing = interval.groups()
        return Bounds(float(low), opening == "[", float(high), closing == "]")
    raise ValueError(f"constraint {text!r}: expected '> x', '>= x' or an interval such as '[0, 1)'")


@dataclass(frozen=True)
class Parameter:
    """One parameter, declared once; its name is the key it is stored under.

    `description` says what it means, `formula` what it does (shown by `harness list` and in
    suite errors); `noun` names the value where 'a number' says too little ('a rate');
    `example` is a typical value for messages ('e.g. l2: 0.1'); `nullable`: null is accepted
    (meaning 'off', or 'derive it').
    """

    kind: str  # one of KINDS
    default: Any = None  # None with a required parameter (the owner lists which are required)
    constraint: str = ""  # bounds of a number or integer, see parse_constraint
    description: str = ""
    formula: str = ""
    choices: tuple[str, ...] = ()
    nullable: bool = False
    noun: str = ""
    example: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        parse_constraint(self.constraint)  # a typo in a declaration fails at import

    @property
    def bounds(self) -> Bounds:
        return parse_constraint(self.constraint)

    def expected(self) -> str:
        """What a valid value looks like: 'a number > 0', 'an integer >= 8', 'one of 'a', 'b'', ..."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        noun = self.noun or ("an integer" if self.kind == "integer" else "a number")
        if not self.constraint:
            return noun
        return f"{noun} in {self.constraint}" if self.constraint[0] in "[(" else f"{noun} {self.constraint}"

    def explained(self, name: str) -> str:
        """`expected()` with the meaning and an example, for suite-block errors:
        'a number >= 0 (loss += l1 * sum(|kernel|) over every kernel), e.g. l1: 0.0001'."""
        text = self.expected() + (", or null" if self.nullable else "")
        meaning = " ".join((self.formula or self.description).split())
        if meaning:
            text += f" ({meaning})"
        return text if self.example is None else f"{text}, e.g. {name}: {self.example}"

    def check(self, value: Any, where: str, rank: int = 0) -> Any:
        """Return `value` in canonical form (real numbers as float, int-or-list values as tuples).

        Args:
            value: what the suite gave.
            where: the key path, the start of every message.
            rank: the spatial rank of kind ints/padding (1 for conv1d, 2 for conv2d).

        Raises:
            SpecError: naming `where`, the value received and what is expected.
        """
        if value is None and self.nullable:
            return None
        if self.kind in ("number", "integer"):
            return self._check_number(value, where)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SpecError(f"{where}: expected true or false, got {value!r}.")
            return value
        if self.kind == "choice":
            if not (isinstance(value, str) and value in self.choices):
                raise SpecError(f"{where}: expected {self.expected()}, got {value!r}.")
            return value
        if self.kind == "ints":
            return _check_ints(value, rank, where)
        if self.kind == "padding":
            return _check_padding(value, rank, where)
        if self.kind == "shape":
            return _check_shape(value, where)
        return value  # any; components are resolved by harness.spec.components.resolve_component

    def _check_number(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected {self.expected()}, got {value!r} ({type(value).__name__}).")
        if not math.isfinite(value):
            raise SpecError(f"{where}: expected a finite number, got {value!r}.")
        if (self.kind == "integer" and not isinstance(value, int)) or not self.bounds.contains(value):
            raise SpecError(f"{where}: expected {self.expected()}, got {value!r}.")
        # Real-valued parameters are floats, so `lr: 1` and `lr: 1.0` hash (and run) the same.
        return value if self.kind == "integer" else float(value)


POSITIVE_INTEGER = Parameter("integer", None, "> 0")
POSITIVE_NUMBER = Parameter("number", None, "> 0")


def reject_unknown_keys(
    given: Iterable[str],
    valid: Sequence[str],
    where: str,
    owner: str,
    noun: str = "parameter",
    label: str = "Its parameters",
    error: type[HarnessError] = SpecError,
) -> None:
    """Raise at the first key of `given` that is not in `valid`, with did-you-mean and the valid keys.

    '<where>.<key>: <owner> has no <noun> '<key>'. Did you mean ...? <label>: a, b.'
    """
    for key in given:
        if key not in valid:
            raise error(
                f"{where}.{key}: {owner} has no {noun} {key!r}.{did_you_mean(key, valid)} "
                f"{label}: {', '.join(valid) or '(none)'}."
            )


def split_named(
    raw: Any, where: str, what: str, example: str, error: type[HarnessError] = SpecError
) -> tuple[Any, dict[str, Any]]:
    """An entry written as a name or as a mapping with a name: 'adam' -> ('adam', {});
    {name: adam, lr: 0.1} -> ('adam', {'lr': 0.1}).

    Raises:
        `error`: a mapping without 'name', or neither a string nor a mapping. `example` is the
            inside of a mapping to suggest ('name: adam, ...').
    """
    if isinstance(raw, str):
        return raw, {}
    if isinstance(raw, Mapping):
        if "name" not in raw:
            raise error(
                f"{where}: a {what} mapping needs a 'name' key, got keys {sorted(map(str, raw))}. "
                f"Write e.g. {{{example}}} or just the name as a string."
            )
        given = dict(raw)
        return given.pop("name"), given
    raise error(
        f"{where}: expected a {what} name (string) or a mapping with 'name', got {raw!r} ({type(raw).__name__})."
    )


def declared(spec_class: type) -> dict[str, Parameter]:
    """The Parameters a dataclass declares with `parameter(...)` fields, by field name, in field order."""
    return {
        field.name: field.metadata["parameter"]
        for field in dataclasses.fields(spec_class)
        if "parameter" in field.metadata
    }


def parameter(kind: str, default: Any = dataclasses.MISSING, constraint: str = "", **declaration: Any) -> Any:
    """A dataclass field declared by a Parameter (no default: a required field).

    l2: float = parameter("number", 0.0, ">= 0", formula="loss += (l2 / 2) * sum(kernel^2) ...")
    """
    declared_default = None if default is dataclasses.MISSING else default
    metadata = {"parameter": Parameter(kind, declared_default, constraint, **declaration)}
    return dataclasses.field(default=default, metadata=metadata)


def defaults(parameters: Mapping[str, Parameter]) -> dict[str, Any]:
    """{name: default} of a parameter table."""
    return {name: declaration.default for name, declaration in parameters.items()}


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: expected an integer > 0, got {value!r}.")
    return value


def _check_ints(value: Any, rank: int, where: str) -> tuple[int, ...]:
    values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or len(values) != rank:
        raise SpecError(f"{where}: expected a positive integer or a list of {rank} positive integers, got {value!r}.")
    return tuple(_positive_int(item, where) for item in values)


def _check_padding(value: Any, rank: int, where: str) -> str | tuple[int, ...]:
    if value in ("valid", "same"):
        return str(value)
    values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, (list, tuple))
        or len(values) != rank
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values)
    ):
        raise SpecError(
            f"{where}: expected 'valid', 'same', an integer >= 0 (zeros on both sides) or a list of {rank} "
            f"such integers, got {value!r}."
        )
    return tuple(values)


def _check_shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{where}: expected a non-empty list of dimensions such as [8, 8, 1], got {value!r}.")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or (item < 1 and item != -1):
            raise SpecError(f"{where}: every dimension must be a positive integer (or one -1), got {value!r}.")
    if list(value).count(-1) > 1:
        raise SpecError(f"{where}: at most one dimension may be -1 (inferred), got {value!r}.")
    return tuple(value)
