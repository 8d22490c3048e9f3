"""Baselines: a suite's per-seed results saved as small, sorted, diffable JSON for CI to compare against.

    {
      "format": "harness-baseline", "version": 1, "suite": "smoke",
      "created_at": "2026-05-01T12:00:00+00:00", "harness_version": "0.1.0", "source": "suites/smoke.yaml",
      "primary_metric": "test_accuracy",
      "directions": {"test_accuracy": "higher", "train_seconds": "lower", ...},
      "environment": {"torch": {"hosts": ["vm"], "devices": [{"device": "cpu", "name": "..."}],
                                "versions": [{"numpy": "2.4.6", "torch": "2.13.0+cpu"}]}},
      "results": {
        "sgd": {"torch": {
          "trials": {"ok": 3, "diverged": 0, "failed": 0, "timeout": 0},
          "metrics": {"test_accuracy": {"seeds": {"0": 0.92, "1": 0.94, "2": 0.93},
                                        "summary": {"n": 3, "mean": 0.93, "std": 0.01,
                                                    "ci_low": 0.905, "ci_high": 0.955, "ci_method": "t"}},
                      "train_seconds": {...}, ...}}}
      }
    }

Metrics kept: every final metric the suite recorded (train/validation/test loss and accuracy, or
mae and r2, and the minibatch loss) and train_seconds, from trials with status 'ok' only (a
diverged trial has no final value; the trial counts say how many there were). Values are kept at
full float64 precision so an unchanged rerun compares exactly equal. Summaries use the harness's
one interval rule (`harness.analysis.statistics`). NaN is written as null (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.check.options import TIMING_METRICS
from harness.errors import HarnessError
from harness.measures import OK, TRIAL_STATUSES, direction

if TYPE_CHECKING:
    from harness.analysis import Results

BASELINE_FORMAT = "harness-baseline"
BASELINE_VERSION = 1  # bump on any change of the layout below; older files are refused with the fix
SUMMARY_KEYS = ("n", "mean", "std", "ci_low", "ci_high", "ci_method")

Cell = tuple[str, str]  # (arm, backend)


class BaselineError(HarnessError):
    """A baseline file is missing, unreadable, of another format/version, or of another suite (exit 2)."""


@dataclass(frozen=True)
class Baseline:
    """A baseline as read back: per (arm, backend), per metric, the value of every seed."""

    suite: str
    created_at: str
    primary_metric: str
    values: Mapping[Cell, Mapping[str, Mapping[int, float]]]
    trial_counts: Mapping[Cell, Mapping[str, int]]
    environment: Mapping[str, Mapping[str, Any]]  # backend -> hosts, devices, versions (lists of distinct values)
    path: Path | None = None

    @property
    def metric_names(self) -> set[str]:
        """Every metric recorded for at least one cell."""
        return {metric for metrics in self.values.values() for metric in metrics}


# What may stand at the end of a JSON text cut short inside a scalar: a prefix of a literal or a number.
_SCALAR_PREFIX = re.compile(
    r"-?[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]*)?|t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?"
)


def ends_early(text: str, error: ValueError) -> bool:
    """True when a JSON parse error means the text was cut short, wherever the cut landed.

    `json` reports the error at the START of the token it could not finish: inside a string that
    is the opening quote, inside `true` or a number it is the token's first character. So a cut
    text is one whose error position is at its end, or whose rest from the error position is one
    unfinished token: a string with no closing quote (json's "Unterminated string"), a partial
    escape, or a prefix of a literal or number.
    """
    position = getattr(error, "pos", None)
    if not isinstance(position, int):
        return False
    rest = text[position:].strip()
    if not rest:
        return True
    message = getattr(error, "msg", str(error))
    if message.startswith("Extra data"):  # a whole document followed by more text: not a cut
        return False
    if message.startswith("Unterminated string"):
        return True
    if message.startswith("Invalid \\uXXXX escape") and '"' not in rest:
        return True
    return _SCALAR_PREFIX.fullmatch(rest) is not None


def recreate_hint(suite: str = "SUITE", path: str | Path = "baselines/SUITE.json") -> str:
    return f"Re-create it with: harness baseline save suites/{suite}.yaml -o {path}"


def _finite_or_none(value: Any) -> float | int | str | None:
    if isinstance(value, str):
        return value
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, numbers.Integral) else number


def _json_or_text(value: Any) -> Any:
    """A trial's versions/device column: stored as JSON text; parsed so the baseline stays readable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def environment_of(trials: Any) -> dict[str, dict[str, list[Any]]]:
    """Per backend, the distinct hosts, devices and versions its trials ran with (from the store's columns).

    Args:
        trials: a `Results.trials` frame (columns backend, host, versions, device).
    """
    environment: dict[str, dict[str, list[Any]]] = {}
    for backend, group in trials.groupby("backend", sort=True):
        entry: dict[str, list[Any]] = {"hosts": [], "devices": [], "versions": []}
        for column, key in (("host", "hosts"), ("device", "devices"), ("versions", "versions")):
            if column not in group.columns:
                continue
            for raw in group[column]:
                value = _json_or_text(raw)
                if value is not None and value not in entry[key]:
                    entry[key].append(value)
        entry["hosts"].sort(key=str)
        entry["devices"].sort(key=lambda item: json.dumps(item, sort_keys=True))
        entry["versions"].sort(key=lambda item: json.dumps(item, sort_keys=True))
        environment[str(backend)] = entry
    return environment


def baseline_metrics(results: Results) -> list[str]:
    """The metrics a baseline keeps: every recorded final metric, then train_seconds."""
    return [*results.metric_names, *TIMING_METRICS]


def build_baseline(results: Results, source: str = "") -> dict[str, Any]:
    """The baseline document (a JSON-ready dict) of a suite's stored results.

    Args:
        results: the suite's results (`harness.results_folder.open_results`).
        source: what it was made from (the suite file or results folder), for the reader.
    """
    final = results.final()
    metrics = [name for name in baseline_metrics(results) if name in final.columns]
    summary = {(row["arm"], row["backend"], row["metric"]): row for _, row in results.summary().iterrows()}
    ok = final[final["status"] == OK]
    document_results: dict[str, dict[str, Any]] = {}
    for (arm, backend), group in final.groupby(["arm", "backend"], sort=False):
        counts = {status: int((group["status"] == status).sum()) for status in TRIAL_STATUSES}
        cell_ok = ok[(ok["arm"] == arm) & (ok["backend"] == backend)]
        cell_metrics: dict[str, Any] = {}
        for metric in metrics:
            seeds = {
                str(int(seed)): float(value)
                for seed, value in zip(cell_ok["seed"], cell_ok[metric])
                if value is not None and math.isfinite(float(value))
            }
            row = summary.get((arm, backend, metric))
            cell_metrics[metric] = {
                "seeds": seeds,
                "summary": {name: _finite_or_none(row[name]) if row is not None else None for name in SUMMARY_KEYS},
            }
        document_results.setdefault(str(arm), {})[str(backend)] = {"trials": counts, "metrics": cell_metrics}
    return {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "suite": results.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "source": str(source),
        "primary_metric": results.primary_metric,
        "directions": {metric: direction(metric) for metric in metrics},
        "environment": environment_of(results.trials),
        "results": document_results,
    }


def write_baseline(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write the document as indented JSON with sorted keys (stable diffs), atomically.

    Raises:
        BaselineError: the folder cannot be created or the file cannot be written.
    """
    path = Path(path)
    text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)  # a reader never sees half a file
    except OSError as error:
        raise BaselineError(
            f"baseline: cannot write {str(path)!r} ({error.strerror or error}). Pass -o with a writable path."
        ) from None
    return path


def read_baseline(path: str | Path, suite: str | None = None) -> Baseline:
    """Read and validate a baseline file.

    Args:
        path: the JSON file written by `harness baseline save`.
        suite: the suite the results belong to; a baseline of another suite is refused.

    Raises:
        BaselineError: missing file, invalid or truncated JSON, not a harness baseline, another
            schema version, another suite, or a malformed entry. Each message names the file and
            says how to re-create it.
    """
    path = Path(path)
    hint = recreate_hint(suite or "SUITE", path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"--baseline: {str(path)!r} does not exist. Create it with: harness baseline save "
            f"suites/{suite or 'SUITE'}.yaml -o {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"--baseline: cannot read {str(path)!r} ({error}). {hint}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        truncated = " (the file ends early: truncated?)" if ends_early(text, error) else ""
        raise BaselineError(
            f"--baseline: {str(path)!r} is not valid JSON: {error}{truncated}. Expected a file written by "
            f"`harness baseline save`. {hint}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise BaselineError(
            f"--baseline: {str(path)!r} is not a harness baseline (format {found!r}, expected {BASELINE_FORMAT!r}). {hint}"
        )
    version = document.get("version")
    if version != BASELINE_VERSION:
        newer = isinstance(version, int) and version > BASELINE_VERSION
        why = "written by a newer harness: upgrade harness, or " if newer else ""
        raise BaselineError(
            f"--baseline: {str(path)!r} has baseline schema version {version!r}; this harness ({__version__}) reads "
            f"version {BASELINE_VERSION}. Fix: {why}{hint[0].lower()}{hint[1:]}"
        )
    if suite is not None and document.get("suite") != suite:
        raise BaselineError(
            f"--baseline: {str(path)!r} is the baseline of suite {document.get('suite')!r}, but the results are of "
            f"suite {suite!r}. Pass the baseline of {suite!r} (e.g. baselines/{suite}.json), or create it with: "
            f"harness baseline save suites/{suite}.yaml -o baselines/{suite}.json"
        )
    return _parse_document(document, path, hint)


def _malformed(path: Path, where: str, expected: str, got: Any, hint: str) -> BaselineError:
    shown = json.dumps(got)[:80] if not isinstance(got, str) else repr(got[:80])
    return BaselineError(f"--baseline: {str(path)!r} is malformed at {where}: expected {expected}, got {shown}. {hint}")


def _mapping(value: Any, path: Path, where: str, hint: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(path, where, "a JSON object", value, hint)
    return value


def _trial_counts(trials: Mapping[str, Any], path: Path, where: str, hint: str) -> dict[str, int]:
    """How many trials ended in each status. A status the file does not name counts 0: a baseline
    written before that status existed had none of those trials, so adding a status to
    harness.measures keeps every existing baseline readable."""
    counts: dict[str, int] = {}
    for status in TRIAL_STATUSES:
        count = trials.get(status, 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _malformed(
                path, where, f"a non-negative whole count for each of {', '.join(TRIAL_STATUSES)}", trials, hint
            )
        counts[status] = count
    return counts


def _parse_document(document: Mapping[str, Any], path: Path, hint: str) -> Baseline:
    for key, kind in (("suite", str), ("created_at", str), ("primary_metric", str)):
        if not isinstance(document.get(key), kind):
            raise _malformed(path, key, "a string", document.get(key), hint)
    values: dict[Cell, dict[str, dict[int, float]]] = {}
    counts: dict[Cell, dict[str, int]] = {}
    for arm, backends in _mapping(document.get("results"), path, "results", hint).items():
        for backend, cell in _mapping(backends, path, f"results.{arm}", hint).items():
            where = f"results.{arm}.{backend}"
            cell = _mapping(cell, path, where, hint)
            trials = _mapping(cell.get("trials"), path, f"{where}.trials", hint)
            counts[(arm, backend)] = _trial_counts(trials, path, f"{where}.trials", hint)
            metrics: dict[str, dict[int, float]] = {}
            for metric, entry in _mapping(cell.get("metrics"), path, f"{where}.metrics", hint).items():
                entry = _mapping(entry, path, f"{where}.metrics.{metric}", hint)
                seeds = _mapping(entry.get("seeds"), path, f"{where}.metrics.{metric}.seeds", hint)
                parsed: dict[int, float] = {}
                for seed, value in seeds.items():
                    if not str(seed).isdigit() or isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise _malformed(
                            path,
                            f"{where}.metrics.{metric}.seeds",
                            'seed -> number entries such as {"0": 0.93}',
                            {seed: value},
                            hint,
                        )
                    parsed[int(seed)] = float(value)
                metrics[str(metric)] = parsed
            values[(arm, backend)] = metrics
    environment = _mapping(document.get("environment", {}), path, "environment", hint)
    return Baseline(
        suite=document["suite"],
        created_at=document["created_at"],
        primary_metric=document["primary_metric"],
        values=values,
        trial_counts=counts,
        environment={str(key): dict(value) for key, value in environment.items() if isinstance(value, Mapping)},
        path=path,
    )
