"""Executable claims: the small expression language of a suite's `expect:` list.

    expect:
      - "he.test_accuracy > xavier.test_accuracy"
      - "std001.final_train_loss > 2.2"
      - "adam.test_accuracy - sgd.test_accuracy > 0.05"
      - "`hidden=[32]`.test_accuracy >= `hidden=[8]`.test_accuracy"

Grammar (a tokenizer and a recursive-descent parser; nothing is ever evaluated by Python):

    claim    := sum COMPARISON sum            COMPARISON is one of  >  >=  <  <=
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | primary
    primary  := NUMBER | operand | "(" sum ")"
    operand  := ARM "." METRIC

ARM is a bare name (letters, digits, underscore, not starting with a digit) or, for arm names
with any other character (`=`, `,`, `[`, `-`, a space, a dot...), the name in backticks,
double or single quotes: `hidden=[32]`.test_accuracy. Backticks are easiest inside YAML
strings; YAML itself needs the whole claim quoted when it starts with one
(- '`hidden=[32]`.test_accuracy > 0.9'). A name cannot contain its own quote character. NUMBER is a decimal such as 2, 0.05,
1e-3. Exactly one comparison per claim; at least one operand.

METRIC names a per-trial value: a final metric by its name (test_accuracy, train_loss,
validation_loss, test_r2, minibatch_loss, ...), `final_<metric>` for the same value
(final_train_loss = the final epoch's train_loss), `best_<metric>` for its best value over
epochs (max for accuracy/r2, min for losses/mae) of a train or validation metric,
`at_best_validation_<test metric>` for a test metric at the epoch of least validation loss, or
train_seconds, eval_seconds, compile_seconds, wall_seconds. `best_test_*` is refused with its reason: the best test
value over epochs chooses the epoch by the test set.

Anything else is rejected with the column where it went wrong: calls, attribute chains,
indexing, bare names, `==`, `and`/`or`, strings used as values. Meaning (CI over seeds, per
backend) is defined in `harness.check.evidence`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import SpecError, did_you_mean, unknown_name
from harness.measures import (
    AT_BEST_VALIDATION_PREFIX,
    RECORDED_METRICS,
    SELECTION_METRIC,
    TIMING_COLUMNS,
    at_best_validation_name,
    best_name,
    final_name,
    has_best_name,
    is_test_metric,
    oracle_reason,
    without_final_prefix,
)

COMPARISONS = (">=", "<=", ">", "<")  # longest first for the tokenizer
MAX_CLAIM_CHARACTERS = 1000
MAX_NESTING = 32  # parentheses and unary signs; deeper is certainly a mistake (and bounds the recursion)


class ClaimError(SpecError):
    """A claim is not in the language, or names an unknown arm or metric (exit 2)."""


def claim_metrics(recorded: Iterable[str] = RECORDED_METRICS) -> tuple[str, ...]:
    """Every metric name a claim may use, given the recorded final metrics."""
    recorded = tuple(recorded)
    return (
        *recorded,
        *(final_name(name) for name in recorded),
        *(best_name(name) for name in recorded if has_best_name(name)),
        *(at_best_validation_name(name) for name in recorded if is_test_metric(name) and SELECTION_METRIC in recorded),
        *TIMING_COLUMNS,
    )


def metric_column(metric: str) -> str:
    """The column of `Results.final()` a claim metric reads: final_x -> x; others as written."""
    return without_final_prefix(metric)


# -- tokens ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # 'number', 'name', 'quoted', 'op', 'compare', 'dot', 'open', 'close', 'end'
    text: str
    column: int  # 1-based


_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTES = "`\"'"
_SINGLE = {"+": "op", "-": "op", "*": "op", "/": "op", ".": "dot", "(": "open", ")": "close"}
_FORBIDDEN = {
    "[": "indexing",
    "]": "indexing",
    "=": "'=' (compare with > >= < <=)",
    "!": "'!' (compare with > >= < <=)",
    ",": "a comma",
    ":": "a colon",
    ";": "a semicolon",
    "{": "a brace",
    "}": "a brace",
    "@": "'@'",
    "%": "'%'",
    "\\": "a backslash",
    "&": "'&'",
    "|": "'|'",
    "^": "'^'",
    "~": "'~'",
    "#": "a comment",
}


def _error(text: str, column: int, message: str) -> ClaimError:
    pointer = " " * (column - 1) + "^"
    return ClaimError(f"claim {text!r}: {message} (column {column}).\n    {text}\n    {pointer}")


def tokenize(text: str) -> list[Token]:
    """Split a claim into tokens.

    Raises:
        ClaimError: a character outside the language, or an unclosed quote.
    """
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        character = text[position]
        column = position + 1
        if character.isspace():
            position += 1
            continue
        if character in _QUOTES:
            end = text.find(character, position + 1)
            if end < 0:
                raise _error(text, column, f"the quoted arm name opened here is never closed with {character}")
            if end == position + 1:
                raise _error(text, column, "an empty quoted arm name")
            tokens.append(Token("quoted", text[position + 1 : end], column))
            position = end + 1
            continue
        if text.startswith((">=", "<=", ">", "<"), position):
            operator = next(op for op in COMPARISONS if text.startswith(op, position))
            tokens.append(Token("compare", operator, column))
            position += len(operator)
            continue
        if character.isdigit() or (character == "." and position + 1 < len(text) and text[position + 1].isdigit()):
            match = _NUMBER.match(text, position)
            assert match is not None  # a digit, or '.' and a digit, always starts a number
            tokens.append(Token("number", match.group(), column))
            position = match.end()
            continue
        match = _NAME.match(text, position)
        if match:
            tokens.append(Token("name", match.group(), column))
            position = match.end()
            continue
        if character in _SINGLE:
            tokens.append(Token(_SINGLE[character], character, column))
            position += 1
            continue
        what = _FORBIDDEN.get(character, repr(character))
        raise _error(
            text,
            column,
            f"{what} is not part of the claim language (numbers, <arm>.<metric>, + - * /, "
            "parentheses and one of > >= < <=)",
        )
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# -- expression tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: float

    def evaluate(self, operands: Mapping[tuple[str, str], np.ndarray]) -> np.ndarray | float:
        return self.value

    def text(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Operand:
    arm: str
    metric: str

    def evaluate(self, operands: Mapping[tuple[str, str], np.ndarray]) -> np.ndarray | float:
        return operands[(self.arm, self.metric)]

    def text(self) -> str:
        arm = self.arm if _NAME.fullmatch(self.arm) else _quote(self.arm)
        return f"{arm}.{self.metric}"


@dataclass(frozen=True)
class Negative:
    operand: Expression

    def evaluate(self, operands: Mapping[tuple[str, str], np.ndarray]) -> np.ndarray | float:
        return -self.operand.evaluate(operands)

    def text(self) -> str:
        return f"-{self.operand.text()}"


@dataclass(frozen=True)
class Binary:
    operator: str  # + - * /
    left: Expression
    right: Expression

    def evaluate(self, operands: Mapping[tuple[str, str], np.ndarray]) -> np.ndarray | float:
        left, right = self.left.evaluate(operands), self.right.evaluate(operands)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # non-finite results are dropped later
            if self.operator == "+":
                return left + right
            if self.operator == "-":
                return left - right
            if self.operator == "*":
                return left * right
            return np.divide(left, right)

    def text(self) -> str:
        return f"({self.left.text()} {self.operator} {self.right.text()})"


Expression = Number | Operand | Negative | Binary


def _quote(name: str) -> str:
    quote = next((q for q in _QUOTES if q not in name), "`")
    return f"{quote}{name}{quote}"


@dataclass(frozen=True)
class Claim:
    """A parsed claim: `left comparison right`, with the operands it reads."""

    text: str
    left: Expression
    comparison: str  # > >= < <=
    right: Expression
    operands: tuple[Operand, ...]  # distinct, in order of appearance

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(operand.arm for operand in self.operands))

    @property
    def multiplicative(self) -> bool:
        """True when a side multiplies or divides by a measured value (`x > 2 * y`, `x / y < 0.5`): the
        claim is about a ratio, and is judged on the log scale (see `harness.check.evidence`)."""
        return _scales(self.left) or _scales(self.right)

    def margin(self, operands: Mapping[tuple[str, str], np.ndarray]) -> np.ndarray:
        """left - right per seed (arrays aligned on seeds); the claim holds when this is > 0 (for > / >=)
        or < 0 (for < / <=)."""
        value = self.left.evaluate(operands) - self.right.evaluate(operands)
        return np.asarray(value, dtype=np.float64)


def _has_operand(expression: Expression) -> bool:
    if isinstance(expression, Operand):
        return True
    if isinstance(expression, Negative):
        return _has_operand(expression.operand)
    if isinstance(expression, Binary):
        return _has_operand(expression.left) or _has_operand(expression.right)
    return False


def _scales(expression: Expression) -> bool:
    """A product or quotient with a measured value in it, anywhere in `expression`."""
    if isinstance(expression, Negative):
        return _scales(expression.operand)
    if isinstance(expression, Binary):
        if expression.operator in "*/" and _has_operand(expression):
            return True
        return _scales(expression.left) or _scales(expression.right)
    return False


# -- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.operands: list[Operand] = []

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def fail(self, token: Token, message: str) -> ClaimError:
        return _error(self.text, token.column, message)

    def claim(self) -> Claim:
        left = self.sum()
        token = self.take()
        if token.kind != "compare":
            raise self.fail(token, self._unexpected(token, "a comparison (> >= < <=)"))
        right = self.sum()
        end = self.peek()
        if end.kind == "compare":
            raise self.fail(end, "one comparison per claim: write two claims instead of chaining comparisons")
        if end.kind != "end":
            raise self.fail(end, self._unexpected(end, "the end of the claim"))
        if not self.operands:
            raise _error(self.text, 1, "a claim must read at least one <arm>.<metric>")
        return Claim(self.text, left, token.text, right, tuple(dict.fromkeys(self.operands)))

    def sum(self) -> Expression:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in "+-":
            operator = self.take().text
            node = Binary(operator, node, self.product())
        return node

    def product(self) -> Expression:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            operator = self.take().text
            if self.peek().kind == "op" and self.peek().text == "*":
                raise self.fail(self.peek(), "'**' (power) is not part of the claim language")
            node = Binary(operator, node, self.unary())
        return node

    def unary(self) -> Expression:
        token = self.peek()
        if token.kind == "op" and token.text in "+-":
            self.take()
            with self._nested(token):
                operand = self.unary()
            return Negative(operand) if token.text == "-" else operand
        return self.primary()

    def primary(self) -> Expression:
        token = self.take()
        if token.kind == "number":
            return Number(float(token.text))
        if token.kind == "open":
            with self._nested(token):
                node = self.sum()
            closing = self.take()
            if closing.kind != "close":
                raise self.fail(closing, self._unexpected(closing, f"')' to close the '(' at column {token.column}"))
            return node
        if token.kind in ("name", "quoted"):
            return self.operand(token)
        raise self.fail(token, self._unexpected(token, "a number, an <arm>.<metric> or '('"))

    def operand(self, arm: Token) -> Operand:
        dot = self.take()
        if dot.kind == "open":
            raise self.fail(dot, f"calls such as {arm.text}(...) are not part of the claim language")
        if dot.kind != "dot":
            if arm.kind == "quoted":
                raise self.fail(
                    dot,
                    f"a quoted arm name must be followed by .<metric>, e.g. `{arm.text}`.test_accuracy; "
                    f"{self._unexpected(dot, 'a dot')}",
                )
            hint = (
                "a bare name is not a value: write <arm>.<metric>, e.g. sgd.test_accuracy. Arm names with "
                "characters other than letters, digits and _ go in backticks: `hidden=[32]`.test_accuracy"
            )
            raise self.fail(arm, f"{arm.text!r}: {hint}")
        metric = self.take()
        if metric.kind != "name":
            raise self.fail(metric, self._unexpected(metric, f"a metric name after '{arm.text}.'"))
        follow = self.peek()
        if follow.kind == "dot":
            raise self.fail(follow, "attribute access beyond <arm>.<metric> is not part of the claim language")
        if follow.kind == "open":
            raise self.fail(follow, "calls are not part of the claim language")
        operand = Operand(arm.text, metric.text)
        self.operands.append(operand)
        return operand

    def _unexpected(self, token: Token, expected: str) -> str:
        found = "the end of the claim" if token.kind == "end" else repr(token.text)
        return f"expected {expected}, found {found}"

    def _nested(self, token: Token) -> _Depth:
        return _Depth(self, token)


class _Depth:
    def __init__(self, parser: _Parser, token: Token) -> None:
        self.parser, self.token = parser, token

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_NESTING:
            raise self.parser.fail(self.token, f"nested more than {MAX_NESTING} levels deep")

    def __exit__(self, *exc_info: object) -> None:
        self.parser.depth -= 1


def parse_claim(text: str) -> Claim:
    """Parse one claim (syntax only; `check_claim_names` checks its arms and metrics).

    Raises:
        ClaimError: anything outside the language, with the column and a pointer.
    """
    if not isinstance(text, str):
        raise ClaimError(f"claim: expected a string such as 'adam.test_accuracy > sgd.test_accuracy', got {text!r}.")
    if len(text) > MAX_CLAIM_CHARACTERS:
        raise ClaimError(f"claim: {len(text)} characters; a claim has at most {MAX_CLAIM_CHARACTERS}.")
    if not text.strip():
        raise ClaimError("claim: empty; expected e.g. 'adam.test_accuracy > sgd.test_accuracy'.")
    return _Parser(text).claim()


def check_claim_names(claim: Claim, arms: Sequence[str], metrics: Iterable[str], where: str = "expect") -> Claim:
    """Check that every operand names an arm of the suite and a known metric (did-you-mean otherwise).

    Raises:
        ClaimError: the first unknown arm or metric.
    """
    metrics = tuple(metrics)
    for operand in claim.operands:
        if operand.arm not in arms:
            hint = did_you_mean(operand.arm, arms)
            quoting = ""
            if any(not _NAME.fullmatch(arm) for arm in arms):
                quoting = (
                    f" Arm names with characters other than letters, digits and _ go in backticks, e.g. "
                    f"{Operand(next(arm for arm in arms if not _NAME.fullmatch(arm)), operand.metric).text()}."
                )
            raise ClaimError(
                f"{where}: claim {claim.text!r}: unknown arm {operand.arm!r}.{hint}{quoting} "
                f"Expected one of: {', '.join(arms)}."
            )
        reason = oracle_reason(operand.metric)
        if reason is not None:
            raise ClaimError(f"{where}: claim {claim.text!r}: {reason}.")
        if operand.metric.startswith(AT_BEST_VALIDATION_PREFIX) and SELECTION_METRIC not in metrics:
            raise ClaimError(
                f"{where}: claim {claim.text!r}: {operand.metric} is the test value at the epoch of least "
                f"{SELECTION_METRIC}, and this suite records no {SELECTION_METRIC}: its dataset has no validation "
                "split. Give it one, e.g. dataset: {name: mnist1d, validation: 0.1}, or claim the final value "
                f"({operand.metric.removeprefix(AT_BEST_VALIDATION_PREFIX)})."
            )
        if operand.metric not in metrics:
            error = unknown_name("metric", operand.metric, metrics, f"{where}: claim {claim.text!r}")
            raise ClaimError(str(error))
    return claim


def validate_claims(
    texts: Sequence[str], arms: Sequence[str], where: str = "expect", metrics: Iterable[str] | None = None
) -> tuple[Claim, ...]:
    """Parse and name-check a suite's `expect:` list; the suite loader can call this before any run.

    Args:
        texts: the claim strings.
        arms: the suite's arms.
        where: the key path for messages (items become `expect[2]`).
        metrics: the metric names allowed (default: every name a claim can use, `claim_metrics()`).

    Raises:
        ClaimError: the first claim outside the language or naming an unknown arm or metric.
    """
    allowed = tuple(metrics) if metrics is not None else claim_metrics()
    claims = []
    for index, text in enumerate(texts):
        item = f"{where}[{index}]"
        try:
            claim = parse_claim(text)
        except ClaimError as error:
            raise ClaimError(f"{item}: {error}") from None
        claims.append(check_claim_names(claim, arms, allowed, item))
    return tuple(claims)
