"""Whether the arms of each comparison started from the same initial weights.

Seeds pair arms only where the arms' layers drew the same initial tensors (shared init mode,
docs/semantics.md "Shared mode"). For one comparison row (arm vs reference on one backend) this
takes the two arms' stored specs at their first common seed and asks
`harness.spec.init.init_pairing`: 'identical', 'partly (layers X differ)' or 'no'. Every seed
gives the same answer (both trials of a pair use that seed), so one pair decides the row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from harness.data import dataset_info
from harness.spec.init import init_pairing
from harness.spec.types import TrialSpec

UNKNOWN = "-"  # no common seed, or trials without full stored specs (hand-built frames)
# the keys TrialSpec.from_dict requires
SPEC_FIELDS = ("dataset", "model", "loss", "optimizer", "initializer", "regularizer", "training", "seed", "backend")


def _spec(value: Any) -> TrialSpec | None:
    """The stored spec as a TrialSpec; None for a partial one (hand-built frames carry a few fields)."""
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, Mapping) or any(name not in data for name in SPEC_FIELDS):
        return None
    return TrialSpec.from_dict(data)


def initial_weights_pairing(trials: pd.DataFrame, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """For each comparison row (arm, backend, reference): whether its arms shared initial weights.

    `trials` holds one row per trial with arm, backend, seed and spec (its JSON, as the store keeps it);
    without a spec column every row is UNKNOWN.
    """
    rows = list(rows)
    if "spec" not in trials.columns:
        return [UNKNOWN] * len(rows)
    specs: dict[tuple[str, str], dict[Any, Any]] = {}
    for arm, backend, seed, spec in trials[["arm", "backend", "seed", "spec"]].itertuples(index=False, name=None):
        specs.setdefault((arm, backend), {}).setdefault(seed, spec)
    answers: dict[tuple[str, str, str], str] = {}
    column = []
    for row in rows:
        key = (row["arm"], row["backend"], row["reference"])
        if key not in answers:
            answers[key] = _pairing(specs.get(key[:2], {}), specs.get((key[2], key[1]), {}))
        column.append(answers[key])
    return column


def _pairing(arm_specs: Mapping[Any, Any], reference_specs: Mapping[Any, Any]) -> str:
    seeds = sorted(set(arm_specs) & set(reference_specs))
    if not seeds:
        return UNKNOWN
    first, second = _spec(arm_specs[seeds[0]]), _spec(reference_specs[seeds[0]])
    if first is None or second is None:
        return UNKNOWN
    shapes = dataset_info(first.dataset).input_shape, dataset_info(second.dataset).input_shape
    return str(init_pairing(first, second, *shapes))
