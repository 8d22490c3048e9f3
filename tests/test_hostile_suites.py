"""Hostile and broken suite files: each is refused with exit 2 and a located message, quickly, in little
memory, with nothing written; never a traceback, never a hang.

Two parts: named hostile inputs (an alias bomb, brackets nested thousands deep, control bytes, an
endless file, ...), each with the message it must get; and a fuzz of the loader: seeded mutations of
every shipped suite (byte flips, truncations, control bytes, duplicated and deleted lines, nesting,
alias bombs, random unicode, hostile scalars) and hypothesis-drawn text spliced into a suite, each
run through `harness validate`, asserting exit 0 or 2 and a per-case time bound.
"""

from __future__ import annotations

import random
import signal
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import cli
from harness.errors import HarnessError
from harness.suite.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, load_yaml

REPO = Path(__file__).parent.parent
SHIPPED = sorted((REPO / "suites").glob("*.yaml"))
SMOKE = (REPO / "suites" / "smoke.yaml").read_text(encoding="utf-8")
CASE_SECONDS = 5.0  # one case; a valid shipped suite loads in ~10 ms, a refused one in under a second


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """A few hundred bytes that expand to width**levels values through aliases of aliases."""
    lines = ["lol0: &lol0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{path}: traceback instead of a message") from result.exception
    return result.exit_code, result.output


@contextmanager
def time_bound(seconds: float, what: str) -> Iterator[None]:
    """Fail (rather than hang) when the block runs longer than `seconds` (SIGALRM: main thread, Unix)."""

    def expire(signum: int, frame: object) -> None:
        raise AssertionError(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- named hostile inputs ---------------------------------------------------------------------------

HOSTILE: dict[str, tuple[str | bytes, int, str]] = {
    # name: (file content, line of the error, text the message must hold)
    "billion-laughs": (SMOKE + billion_laughs(), 35, f"more than {MAX_VALUES} values"),
    "alias-bomb-in-grid": (
        SMOKE.replace(
            "grid:", "bomb: &b [" + ", ".join(["x"] * 200) + "]\nbombs: [" + ", ".join(["*b"] * 200) + "]\ngrid:"
        ),
        15,
        f"more than {MAX_VALUES} values",
    ),
    "recursive-alias": (SMOKE + "report: &r {reference: *r}\n", 27, "inside the value of its own anchor &r"),
    "nested-brackets": (SMOKE + "extra: " + "[" * 5000 + "]" * 5000 + "\n", 27, f"nested more than {MAX_DEPTH} deep"),
    "nested-mappings": (SMOKE + "".join(" " * level + f"k{level}:\n" for level in range(300)), 90, "nested more than"),
    "nested-through-aliases": (
        SMOKE + "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n",
        28,
        f"nested more than {MAX_DEPTH} deep",
    ),
    "too-many-values": ("name: x\nvalues: [" + ", ".join(["1"] * (MAX_VALUES + 10)) + "]\n", 2, "more than"),
    "nul-byte": (SMOKE.replace("name: smoke", "name: sm\x00oke"), 3, "control character U+0000 (NUL) at column 9"),
    "escape-byte": (SMOKE.replace("loss:", "lo\x1bss:"), 8, "control character U+001B (ESC) at column 3"),
    "c1-control": (
        SMOKE.replace("loss:", "loss:\x9b"),
        8,
        "control character U+009B (a C1 control character) at column 6",
    ),
    "not-utf8": (SMOKE.encode() + b"extra: \xff\xfe\n", 27, "is not UTF-8 text"),
    "huge-integer": (SMOKE + "extra: " + "9" * 5000 + "\n", 27, "an integer of 5000 digits"),
    "over-size": ("# padding\n" * (MAX_FILE_BYTES // 10 + 1), 0, "over 1024 KiB"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_refused_quickly_with_a_located_message(name, tmp_path):
    content, line, expected = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    started = time.process_time()  # CPU seconds of this process: a loaded machine stretches wall time, not work
    with pytest.raises(HarnessError) as raised:
        load_yaml(path)
    seconds = time.process_time() - started
    message = str(raised.value)
    assert expected in message, message
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert seconds < 2.0, f"{seconds:.2f} CPU s"  # the guards refuse before expanding anything
    if name != "too-many-values":  # PyYAML allocates per value, so tracemalloc slows 10000 of them to seconds
        tracemalloc.start()
        try:
            with pytest.raises(HarnessError):
                load_yaml(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < MAX_FILE_BYTES + 8 * 2**20, f"{peak / 2**20:.1f} MiB"  # the file's bytes and text, a few MB

    exit_code, output = validate(path)
    assert exit_code == 2 and expected in output and "Traceback" not in output, output
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(store), "--quiet"])
    assert result.exit_code == 2 and expected in result.output, result.output
    assert not store.exists()  # nothing written


SUITE_LIMITS = {
    # name: (file content, line of the error, text the message must hold): refused after parsing, before expanding
    "seeds-past-a-machine-int": (
        SMOKE.replace("seeds: {explore: 3, confirm: 3}", "seeds: 99999999999999999999"),
        12,
        "over the limit of 1000",
    ),
    "a-million-cells": (
        SMOKE.replace("grid:\n", "grid:\n  training.epochs: [" + ", ".join(map(str, range(1, 1001))) + "]\n"),
        14,
        "1000 x 2 = 2,000 cells, over the limit of 1000",
    ),
    "a-billion-layers": (
        SMOKE.replace("mlp: {hidden: [32], activation: relu}", "mlp: {depth: 1000000000, width: 8}"),
        7,
        "model.mlp.depth: depth 1000000000 is over the limit of 1000 layers",
    ),
    "too-many-trials": (
        SMOKE.replace("seeds: {explore: 3, confirm: 3}", "seeds: 1000").replace(
            "grid:\n", "grid:\n  training.epochs: [" + ", ".join(map(str, range(1, 101))) + "]\n"
        ),
        14,
        "= 400,000 trials, over the limit of 100,000",
    ),
}


@pytest.mark.parametrize("name", SUITE_LIMITS)
def test_suites_that_would_expand_to_too_much_work_are_refused_quickly(name, tmp_path):
    from harness.suite import load_suite

    content, line, expected = SUITE_LIMITS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(content)
    with time_bound(CASE_SECONDS, name), pytest.raises(HarnessError) as raised:
        load_suite(path)
    assert str(raised.value).startswith(f"{path}:{line}: ") and expected in str(raised.value), str(raised.value)


def test_an_endless_file_is_refused_at_the_size_limit():
    with time_bound(5, "/dev/zero"), pytest.raises(HarnessError, match="over 1024 KiB"):
        load_yaml(Path("/dev/zero"))


def test_the_shipped_suites_are_far_inside_every_limit():
    from harness.suite.yaml_source import SuiteYamlLoader

    for path in SHIPPED:
        text = path.read_text(encoding="utf-8")
        loader = SuiteYamlLoader(text)
        loader.get_single_node()
        assert len(text.encode()) * 100 < MAX_FILE_BYTES and loader.composed * 50 < MAX_VALUES, path


# -- the fuzz -----------------------------------------------------------------------------------------

HOSTILE_SCALARS = [
    "-1",
    "0",
    "1e999",
    "-.inf",
    ".nan",
    "~",
    "null",
    "[]",
    "{}",
    "''",
    "yes",
    "0x1F",
    "0o17",
    "1_000",
    "2001-12-14",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object:os.system",
    "!foo bar",
    "*undefined",
    "&anchor",
    "? [a, b]",
    "<<: *nope",
    "'unclosed",
    '"\\x00"',
    "|",
    ">-",
    "---",
    "...",
    "%YAML 1.1",
    "99999999999999999999",
    "-0.0",
    "1e-400",
    "[[[",
    "}}",
    "{a: [b, {c: d}]}",
    "\t",
    "@",
    "`",
    "!!int 3.5",
]


def _flip_byte(rng: random.Random, data: bytes) -> bytes:
    index = rng.randrange(len(data))
    return data[:index] + bytes([rng.randrange(256)]) + data[index + 1 :]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _control_byte(rng: random.Random, data: bytes) -> bytes:
    index = rng.randrange(len(data) + 1)
    return data[:index] + bytes([rng.choice([*range(0, 9), 11, 12, *range(14, 32), 127])]) + data[index:]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _duplicate_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    index = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1) if rng.random() < 0.3 else index, lines[index])
    return b"\n".join(lines)


def _delete_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    first, second = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[first], lines[second] = lines[second], lines[first]
    return b"\n".join(lines)


def _nest(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([2, 10, 63, 64, 65, 200, 3000])
    index = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        opener, closer = rng.choice([(b"[", b"]"), (b"{", b"}"), (b"{a: ", b"}")])
        nested = opener * depth + b"1" + closer * (depth if rng.random() < 0.7 else rng.randrange(depth))
    else:
        nested = b"\n" + b"".join(b" " * level + b"k%d:\n" % level for level in range(min(depth, 400)))
    return data[:index] + nested + data[index:]


def _alias_bomb(rng: random.Random, data: bytes) -> bytes:
    bomb = billion_laughs(rng.randint(2, 12), rng.randint(2, 12)).encode()
    if rng.random() < 0.5:
        return data + b"\n" + bomb
    # aliases of an anchor defined in the suite itself
    lines = _lines(data)
    index = rng.randrange(len(lines))
    key, _, value = lines[index].partition(b":")
    if value.strip():
        lines[index] = key + b": &x " + value.strip()
        lines.append(b"copies: [" + b", ".join([b"*x"] * rng.randint(1, 50)) + b"]")
    return b"\n".join(lines)


def _random_unicode(rng: random.Random, data: bytes) -> bytes:
    text = "".join(
        chr(
            rng.choice(
                [
                    rng.randrange(0x20, 0x7F),
                    rng.randrange(0x80, 0x800),
                    rng.randrange(0x800, 0xD800),
                    rng.randrange(0xE000, 0x110000),
                    rng.randrange(0xD800, 0xE000),
                ]
            )
        )
        for _ in range(rng.randint(1, 8))
    )
    index = rng.randrange(len(data) + 1)
    return data[:index] + text.encode("utf-8", errors="surrogatepass") + data[index:]


def _hostile_scalar(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if b": " in line and not line.lstrip().startswith(b"#")]
    if not candidates:
        return data
    index = rng.choice(candidates)
    key = lines[index].split(b": ", 1)[0]
    lines[index] = key + b": " + rng.choice(HOSTILE_SCALARS).encode()
    return b"\n".join(lines)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip_byte,
    _truncate,
    _control_byte,
    _duplicate_line,
    _delete_line,
    _swap_lines,
    _nest,
    _alias_bomb,
    _random_unicode,
    _hostile_scalar,
    _hostile_scalar,
    _hostile_scalar,
]
FUZZ_SEED = 20_151
CASES_PER_SUITE = 200


def mutated_suites(seed: int, cases_per_suite: int) -> Iterator[tuple[str, bytes]]:
    """(case name, content): `cases_per_suite` mutants of each shipped suite, each 1 to 3 mutations deep."""
    rng = random.Random(seed)
    for path in SHIPPED:
        original = path.read_bytes()
        for case in range(cases_per_suite):
            data = original
            steps = []
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                mutation = rng.choice(MUTATIONS)
                data = mutation(rng, data) or original
                steps.append(mutation.__name__.lstrip("_"))
            yield f"{path.stem}#{case}:{'+'.join(steps)}", data


def test_fuzzed_suites_exit_0_or_2_never_a_traceback_never_a_hang(tmp_path):
    assert validate(SHIPPED[0])[0] == 0  # imports what validate imports, outside the per-case bound
    outcomes = {0: 0, 2: 0}
    started = time.perf_counter()
    for number, (name, content) in enumerate(mutated_suites(FUZZ_SEED, CASES_PER_SUITE)):
        path = tmp_path / f"case{number % 10}.yaml"
        path.write_bytes(content)
        with time_bound(CASE_SECONDS, name):
            exit_code, output = validate(path)
        assert exit_code in (0, 2), f"{name}: exit {exit_code}\n{output}"
        assert "Traceback" not in output, f"{name}\n{output}"
        if exit_code == 2:
            assert output.startswith(f"error: {path}"), f"{name}: the message names no file\n{output}"
        outcomes[exit_code] += 1
    assert sum(outcomes.values()) == len(SHIPPED) * CASES_PER_SUITE
    assert outcomes[0] > 50 and outcomes[2] > 1000, outcomes  # the mutations both keep and break suites
    print(f"fuzz: {outcomes} in {time.perf_counter() - started:.1f} s")


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    insertion=st.text(min_size=1, max_size=40),
    position=st.integers(min_value=0, max_value=len(SMOKE)),
)
def test_any_text_spliced_into_a_suite_exits_0_or_2(tmp_path, insertion, position):
    path = tmp_path / "spliced.yaml"
    path.write_bytes((SMOKE[:position] + insertion + SMOKE[position:]).encode("utf-8", errors="surrogatepass"))
    with time_bound(CASE_SECONDS, repr(insertion)):
        exit_code, output = validate(path)
    assert exit_code in (0, 2) and "Traceback" not in output, (insertion, position, output)
