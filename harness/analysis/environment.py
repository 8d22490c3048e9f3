"""Where trials ran, and what differs: hosts, library versions, CPU/GPU, threads.

Every trial records its host, the versions of its framework's libraries and its device (the
store's `host`, `versions` and `device` columns), and its provenance (`provenance`: the git
commit and dirty flag of its code, a hash of every installed package's version, the CPU's flags,
the GPU driver, the thread settings; harness.provenance). Results put together from several places (a
results folder copied from another machine and resumed here, two folders compared) can hold
trials that ran with different libraries or on different CPUs: their metrics may then differ
for that reason alone, and their speed (train_seconds) is not like for like. This module finds
those differences, per backend, and says which trials (arms, or sides of a comparison) ran
with each value, so the report and `harness compare` can say so.

    >>> differences = environment_differences(results.trials)
    >>> describe_differences(differences)
    ['torch (torch trials): 2.13.0+cpu (6 trials: adam, sgd) vs 2.1.0 (2 trials: sgd)', ...]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

HOST = "host"
DEVICE_LABELS = {
    "device": "device",
    "name": "CPU/GPU",
    "threads": "threads",
}  # device JSON key -> what a reader calls it
# device JSON keys that are not the environment: a stacked trial's group size changes its share of the group's
# time, never its numbers (harness.adapters.vectorize), so trials that differ by it alone are alike
NOT_ENVIRONMENT = frozenset({"group_size"})
PROVENANCE_LABELS = {
    "git": "code (git)",
    "harness_git": "harness code (git)",
    "packages": "installed packages",
    "python": "python",
    "platform": "platform",
    "cpu_flags": "CPU flags",
    "gpu_driver": "GPU driver",
    "threads": "thread settings",
}  # provenance JSON key (harness.provenance) -> what a reader calls it; 'cpu' repeats the device's name


def provenance_aspects(raw: Any) -> dict[str, str]:
    """A trial's provenance (the store's JSON) as reader-facing aspects: {'code (git)': '1a2b3c4d5e6f+dirty',
    'installed packages': '<hash>', 'thread settings': 'OMP_NUM_THREADS=2, affinity=2', ...}."""
    from harness.provenance import describe_git

    record = _parsed(raw)
    aspects: dict[str, str] = {}
    for key, label in PROVENANCE_LABELS.items():
        value = record.get(key)
        if value is None:
            continue
        if key in ("git", "harness_git"):
            text = describe_git(value if isinstance(value, Mapping) else None)
        elif isinstance(value, Mapping):
            text = ", ".join(f"{name}={item}" for name, item in sorted(value.items()))
        else:
            text = str(value)
        if text:
            aspects[label] = text
    return aspects


@dataclass(frozen=True)
class EnvironmentValue:
    """One value an aspect took, and the trials that ran with it."""

    value: str
    num_trials: int
    groups: tuple[str, ...]  # the distinct labels (arms, or 'A'/'B') of those trials, in first-seen order


@dataclass(frozen=True)
class EnvironmentDifference:
    """An aspect of the environment (a host, one library's version, the CPU) that differs between trials of one backend."""

    backend: str
    aspect: str  # 'host', a library name ('torch', 'numpy'), or a device aspect ('CPU/GPU', 'threads', 'device')
    values: tuple[EnvironmentValue, ...]  # two or more, most trials first, then in the order trials come

    def describe(self) -> str:
        """'torch (torch trials): 2.13.0+cpu (6 trials: adam, sgd) vs 2.1.0 (2 trials: sgd)'."""
        parts = [
            f"{item.value} ({item.num_trials} trial{'s' if item.num_trials != 1 else ''}: {', '.join(item.groups)})"
            for item in self.values
        ]
        return f"{self.aspect} ({self.backend} trials): " + " vs ".join(parts)


def _parsed(raw: Any) -> Mapping[str, Any]:
    """A versions/device cell (JSON text as stored) as a mapping; {} when missing or not a mapping."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return value if isinstance(value, Mapping) else {}


def _aspects(row: Mapping[Any, Any]) -> dict[str, str]:
    """The aspects of one trial's environment: host, each library version, each device field."""
    aspects: dict[str, str] = {}
    host = row.get("host")
    if isinstance(host, str) and host:
        aspects[HOST] = host
    for name, version in _parsed(row.get("versions")).items():
        aspects[str(name)] = str(version)
    for key, value in _parsed(row.get("device")).items():
        if key in NOT_ENVIRONMENT:
            continue
        aspects[DEVICE_LABELS.get(str(key), str(key))] = str(value)
    aspects.update(provenance_aspects(row.get("provenance")))
    return aspects


def environment_differences(trials: pd.DataFrame, group_column: str = "arm") -> list[EnvironmentDifference]:
    """Every aspect of the environment that differs between trials of the same backend.

    Args:
        trials: a `Results.trials` frame (columns backend, host, versions, device, and `group_column`).
        group_column: the label naming whose trials ran with a value ('arm'; 'side' for two result sets).

    Returns:
        One EnvironmentDifference per (backend, aspect) with two or more values, in backend order and
        the order aspects first appear. A trial that does not record an aspect (an older harness, a
        trial that failed before training) shows it as 'absent' only when other trials record it.
        Empty when every trial of each backend ran in one environment.
    """
    if trials.empty or "backend" not in trials.columns:
        return []
    differences = []
    for backend, group in trials.groupby("backend", sort=True):
        rows = group.to_dict("records")
        per_trial = [_aspects(row) for row in rows]
        aspects = list(dict.fromkeys(name for aspects in per_trial for name in aspects))
        for aspect in aspects:
            seen: dict[str, tuple[int, list[str]]] = {}
            for row, found in zip(rows, per_trial):
                if "status" in row and row["status"] == "failed" and aspect not in found:
                    continue  # failed before it could record its environment: not a difference
                value = found.get(aspect, "absent")
                count, labels = seen.get(value, (0, []))
                label = str(row.get(group_column, ""))
                seen[value] = (count + 1, labels if label in labels else [*labels, label])
            if len(seen) > 1:
                values = sorted(  # most trials first; ties in the order the trials come (arm order)
                    (EnvironmentValue(value, count, tuple(labels)) for value, (count, labels) in seen.items()),
                    key=lambda item: -item.num_trials,
                )
                differences.append(EnvironmentDifference(str(backend), aspect, tuple(values)))
    return differences


def describe_differences(differences: Sequence[EnvironmentDifference]) -> list[str]:
    """One line per difference (EnvironmentDifference.describe)."""
    return [difference.describe() for difference in differences]


def environment_summary(differences: Sequence[EnvironmentDifference]) -> str:
    """One paragraph for a report: '' when every backend's trials ran in one environment."""
    if not differences:
        return ""
    return (
        "The trials ran in different environments, so differences between them may come from the environment "
        "and speed is not like for like: " + "; ".join(describe_differences(differences)) + "."
    )


def compare_environments(
    trials_a: pd.DataFrame, trials_b: pd.DataFrame, names: tuple[str, str] = ("A", "B")
) -> list[EnvironmentDifference]:
    """What differs between the environments of two result sets (`harness compare A B`), per backend.

    Every aspect with more than one value among the trials of both; each value names the side(s) that had it.
    """
    sides = [frame.assign(side=name) for frame, name in zip((trials_a, trials_b), names) if not frame.empty]
    if not sides:
        return []
    both = pd.concat(sides, ignore_index=True)
    return environment_differences(both, group_column="side")
