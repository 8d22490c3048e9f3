"""The `search:` block of a suite: per-arm hyperparameter search, parsed and checked before anything runs.

    search:
      space:                                    # dotted paths, as in grid; one distribution each
        optimizer.lr: {log_uniform: [1.0e-6, 1.0e-2]}
        model.mlp.width: {choice: [32, 64, 128]}
      per_arm:                                  # extra dimensions for some arms only
        momentum: {optimizer.momentum: {uniform: [0.5, 0.99]}}
      objective: validation_accuracy            # a validation metric; direction from the measure
      trials: 20                                # configurations per arm per round (the same for every arm)
      rounds: 2                                 # range-narrowing rounds (1: plain search)
      keep: 0.2                                 # top fraction of a round that sets the next round's range
      sampler: random                           # random | sobol | tpe
      pruner: none                              # none | median | successive_halving
      seeds: [1000]                             # search seeds, disjoint from the suite's (final) seeds

This module only reads and checks the block (the suite layer imports no Optuna); the planner
(`harness.search`) samples, runs and narrows. The values a dimension may take are checked by the
same resolvers as any suite value (each arm is resolved at both ends of every range in
`harness.suite.load`), so any declared `Parameter` is searchable by its dotted path.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import did_you_mean
from harness.measures import BEST_PREFIX, SPLITS, TASK_MEASURES, VALIDATION_SPLIT, is_higher_better, metric_name
from harness.suite.grid import Assignment, parse_axis_path
from harness.suite.schema import parse_seeds, received
from harness.suite.yaml_source import KeyPath, SuiteIssue

SEARCH_INSTALL = 'pip install "harness[search]"'
DISTRIBUTIONS = {
    "log_uniform": "a number drawn uniformly in log space between two bounds > 0: {log_uniform: [1.0e-6, 1.0e-2]}",
    "uniform": "a number drawn uniformly between two bounds: {uniform: [0.5, 0.99]}",
    "int_log_uniform": "an integer drawn uniformly in log space between two bounds >= 1: {int_log_uniform: [16, 256]}",
    "int_uniform": "an integer drawn uniformly between two bounds: {int_uniform: [1, 4]}",
    "choice": "one of a list of values: {choice: [32, 64, 128]}",
}
LOG_DISTRIBUTIONS = ("log_uniform", "int_log_uniform")
INT_DISTRIBUTIONS = ("int_log_uniform", "int_uniform")
SAMPLERS = {
    "random": "independent uniform draws (Optuna's RandomSampler)",
    "sobol": "a scrambled Sobol sequence, evenly covering the space (Optuna's QMCSampler)",
    "tpe": "tree-structured Parzen estimator, told every earlier round (Optuna's TPESampler)",
}
PRUNERS = {
    "none": "every configuration trains for the whole budget",
    "median": "at the rung epoch, stop configurations below the median of the round (Optuna's MedianPruner)",
    "successive_halving": "at the rung epoch, keep the best third of the round (Optuna's SuccessiveHalvingPruner)",
}
KEYS = ("space", "per_arm", "objective", "trials", "rounds", "keep", "sampler", "pruner", "seeds")
REQUIRED_KEYS = ("space", "objective", "trials", "seeds")
MAX_SEARCH_TRIALS = 10_000  # arms x trials x rounds x search seeds


@dataclass(frozen=True)
class Dimension:
    """One searched value: where it goes, how it is drawn, and its current range.

    path: as written (`optimizer.lr`); target: the parsed key path; kind: a DISTRIBUTIONS key;
    low/high: the bounds (None for choice); choices: the values of a choice (their order kept).
    """

    path: str
    target: KeyPath
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def log(self) -> bool:
        return self.kind in LOG_DISTRIBUTIONS

    @property
    def integer(self) -> bool:
        return self.kind in INT_DISTRIBUTIONS

    def ends(self) -> tuple[Any, ...]:
        """The values that bound what this dimension can give: both bounds, or every choice."""
        if self.kind == "choice":
            return self.choices
        assert self.low is not None and self.high is not None
        return (int(self.low), int(self.high)) if self.integer else (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"kind": self.kind, "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class SearchSpec:
    """A validated `search:` block. `objective` is a table column name: `validation_<measure>` (its
    value at the last epoch) or `best_validation_<measure>` (its best over epochs)."""

    space: tuple[Dimension, ...]
    per_arm: Mapping[str, tuple[Dimension, ...]]
    objective: str
    trials: int
    rounds: int
    keep: float
    sampler: str
    pruner: str
    seeds: tuple[int, ...]

    @property
    def higher_is_better(self) -> bool:
        return is_higher_better(self.objective)

    def dimensions(self, arm: str) -> tuple[Dimension, ...]:
        """The dimensions searched for `arm`: the shared space, then its own."""
        return (*self.space, *self.per_arm.get(arm, ()))

    def assignments(self, arm: str, values: Mapping[str, Any]) -> tuple[Assignment, ...]:
        """Grid-style assignments putting `values` ({path: value}) into an arm's document."""
        return tuple(
            Assignment(
                dimension.target, values[dimension.path], self.source(arm, dimension), self.source(arm, dimension)
            )
            for dimension in self.dimensions(arm)
        )

    def source(self, arm: str, dimension: Dimension) -> KeyPath:
        """Where the dimension is written in the suite file (for error lines)."""
        if any(dimension is own for own in self.per_arm.get(arm, ())):
            return ("search", "per_arm", arm, dimension.path)
        return ("search", "space", dimension.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": {d.path: d.to_dict() for d in self.space},
            "per_arm": {arm: {d.path: d.to_dict() for d in dims} for arm, dims in self.per_arm.items()},
            "objective": self.objective,
            "trials": self.trials,
            "rounds": self.rounds,
            "keep": self.keep,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "seeds": list(self.seeds),
        }


def optuna_installed() -> bool:
    """Whether Optuna can be imported (looked up without importing it: `validate` stays fast)."""
    try:
        return importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):
        return False


def parse_search(
    raw: Any,
    *,
    arms: Sequence[str],
    grid_targets: Mapping[KeyPath, str],
    final_seeds: Sequence[int],
    tasks: Sequence[str],
    validations: Sequence[float],
) -> SearchSpec:
    """Check a `search:` block against the suite it belongs to.

    Args:
        raw: the block as loaded.
        arms: the suite's arms (per_arm keys must be among them).
        grid_targets: every path a grid axis sets -> its axis key (a searched path must not be one).
        final_seeds: the suite's seeds (the search seeds must be disjoint from them).
        tasks: the task of each arm's dataset (the objective must be one of their validation metrics).
        validations: each arm's validation fraction (search needs one > 0 everywhere).

    Raises:
        SuiteIssue: every independent problem of the block, located under `search`.
    """
    where: KeyPath = ("search",)
    if not isinstance(raw, Mapping):
        raise SuiteIssue(
            where,
            f"expected a mapping with keys {', '.join(KEYS)}, e.g. search: {{space: {{optimizer.lr: "
            f"{{log_uniform: [1.0e-4, 1.0e-1]}}}}, objective: validation_accuracy, trials: 20, seeds: [1000]}}; "
            f"got {received(raw)}.",
        )
    issues: list[SuiteIssue] = []
    for key in raw:
        if key not in KEYS:
            issues.append(
                SuiteIssue(
                    (*where, key), f"unknown key {key!r}.{did_you_mean(str(key), KEYS)} Keys: {', '.join(KEYS)}."
                )
            )
    for key in REQUIRED_KEYS:
        if key not in raw:
            issues.append(SuiteIssue(where, f"missing key {key!r}: the search needs {', '.join(REQUIRED_KEYS)}."))
    if not optuna_installed():
        issues.append(
            SuiteIssue(
                where,
                f"a search samples with Optuna, which is not installed. Install it with: {SEARCH_INSTALL} "
                "(or remove the search block).",
            )
        )

    def attempt(function: Any, *arguments: Any) -> Any:
        try:
            return function(*arguments)
        except SuiteIssue as issue:
            issues.extend(issue.every())
            return None

    space = attempt(_parse_space, raw.get("space"), (*where, "space"), grid_targets, True) if "space" in raw else ()
    per_arm = attempt(_parse_per_arm, raw.get("per_arm", {}), arms, grid_targets, space or ())
    objective = attempt(_parse_objective, raw.get("objective"), tasks) if "objective" in raw else None
    trials = attempt(_positive_int, raw.get("trials"), (*where, "trials"), "configurations per arm and round") or 0
    rounds = attempt(
        _positive_int, raw.get("rounds", 1), (*where, "rounds"), "range-narrowing rounds (1: no narrowing)"
    )
    keep = attempt(_parse_keep, raw.get("keep", 0.2))
    sampler = attempt(_parse_name, raw.get("sampler", "random"), (*where, "sampler"), SAMPLERS)
    pruner = attempt(_parse_name, raw.get("pruner", "none"), (*where, "pruner"), PRUNERS)
    seeds = attempt(_parse_search_seeds, raw.get("seeds"), final_seeds) if "seeds" in raw else None
    if "objective" in raw and any(fraction <= 0 for fraction in validations):
        issues.append(
            SuiteIssue(
                ("dataset",),
                "a search chooses on the validation split, and this dataset has none (validation: 0). Hold out "
                "part of the training rows, e.g. dataset: {name: mnist1d, validation: 0.2}.",
            )
        )
    if trials and rounds and seeds and len(arms) * trials * rounds * len(seeds) > MAX_SEARCH_TRIALS:
        issues.append(
            SuiteIssue(
                (*where, "trials"),
                f"{len(arms)} arms x {trials} trials x {rounds} rounds x {len(seeds)} seeds = "
                f"{len(arms) * trials * rounds * len(seeds):,} search trials, over the limit of {MAX_SEARCH_TRIALS:,}. "
                "Use fewer trials, rounds or search seeds.",
            )
        )
    if issues:
        raise SuiteIssue.several(issues)
    assert objective is not None and seeds is not None and keep is not None and rounds is not None
    return SearchSpec(
        space=tuple(space or ()),
        per_arm=dict(per_arm or {}),
        objective=objective,
        trials=trials,
        rounds=rounds,
        keep=keep,
        sampler=sampler,
        pruner=pruner,
        seeds=seeds,
    )


def _parse_space(
    raw: Any, where: KeyPath, grid_targets: Mapping[KeyPath, str], required: bool
) -> tuple[Dimension, ...]:
    if not isinstance(raw, Mapping) or (required and not raw):
        raise SuiteIssue(
            where,
            "expected a mapping of dotted paths to distributions, e.g. {optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}}, "
            f"got {received(raw)}.",
        )
    issues: list[SuiteIssue] = []
    dimensions = []
    for path, distribution in raw.items():
        try:
            dimensions.append(_parse_dimension(path, distribution, (*where, path), grid_targets))
        except SuiteIssue as issue:
            issues.extend(issue.every())
    if issues:
        raise SuiteIssue.several(issues)
    return tuple(dimensions)


def _parse_dimension(path: Any, raw: Any, where: KeyPath, grid_targets: Mapping[KeyPath, str]) -> Dimension:
    target = parse_axis_path(path, where)
    for axis_target, axis in grid_targets.items():
        # a grid over a whole block (optimizer) composes with a search inside it (optimizer.lr): the search's
        # deeper path is applied after it; the same path, or a search above the grid's, would overwrite it
        if axis_target[: len(target)] == target:
            raise SuiteIssue(
                where,
                f"grid axis {axis!r} also sets {'this path' if axis_target == target else 'a path inside it'}, so "
                "the searched value and the grid's would overwrite each other. Search it or vary it on the grid, "
                "not both.",
            )
    kinds = ", ".join(DISTRIBUTIONS)
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SuiteIssue(
            where, f"expected one distribution ({kinds}), e.g. {{log_uniform: [1.0e-4, 1.0e-1]}}; got {received(raw)}."
        )
    ((kind, arguments),) = raw.items()
    if kind not in DISTRIBUTIONS:
        raise SuiteIssue(
            (*where, kind),
            f"unknown distribution {kind!r}.{did_you_mean(str(kind), DISTRIBUTIONS)} One of: "
            + "; ".join(f"{name}: {text}" for name, text in DISTRIBUTIONS.items())
            + ".",
        )
    here = (*where, kind)
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise SuiteIssue(
                here, f"expected a non-empty list of values, e.g. [32, 64, 128]; got {received(arguments)}."
            )
        if any(arguments.count(value) > 1 for value in arguments):
            raise SuiteIssue(here, f"a value is listed twice in {arguments}; list each value once.")
        return Dimension(str(path), target, kind, choices=tuple(arguments))
    integer = kind in INT_DISTRIBUTIONS
    if (
        not isinstance(arguments, list)
        or len(arguments) != 2
        or not all(_is_number(value, integer) for value in arguments)
    ):
        what = "integers" if integer else "numbers"
        raise SuiteIssue(here, f"expected [low, high], two {what}; got {received(arguments)}. {DISTRIBUTIONS[kind]}")
    low, high = arguments
    if not low < high:
        raise SuiteIssue(here, f"low ({low}) must be below high ({high}). Write [low, high] with low < high.")
    if kind in LOG_DISTRIBUTIONS and low <= 0:
        raise SuiteIssue(
            here,
            f"a log-scale range needs bounds > 0 (its log is drawn uniformly), got low {low}. Use a low bound > 0 "
            "such as 1.0e-6, or {uniform: [...]} for a range that includes 0.",
        )
    return Dimension(str(path), target, kind, float(low), float(high))


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _parse_per_arm(
    raw: Any, arms: Sequence[str], grid_targets: Mapping[KeyPath, str], space: Sequence[Dimension]
) -> dict[str, tuple[Dimension, ...]]:
    where: KeyPath = ("search", "per_arm")
    if not isinstance(raw, Mapping):
        raise SuiteIssue(
            where,
            f"expected a mapping of arm -> {{path: distribution}}, e.g. {{momentum: {{optimizer.momentum: "
            f"{{uniform: [0.5, 0.99]}}}}}}; got {received(raw)}.",
        )
    issues: list[SuiteIssue] = []
    result: dict[str, tuple[Dimension, ...]] = {}
    shared = {dimension.path for dimension in space}
    for arm, dimensions in raw.items():
        if arm not in arms:
            issues.append(
                SuiteIssue(
                    (*where, arm),
                    f"no arm {arm!r} in this suite.{did_you_mean(str(arm), arms)} Its arms: {', '.join(arms)}.",
                )
            )
            continue
        try:
            parsed = _parse_space(dimensions, (*where, arm), grid_targets, True)
        except SuiteIssue as issue:
            issues.extend(issue.every())
            continue
        for dimension in parsed:
            if dimension.path in shared:
                issues.append(
                    SuiteIssue(
                        (*where, arm, dimension.path),
                        "search.space already searches this path for every arm. Keep it in one of the two.",
                    )
                )
        result[str(arm)] = parsed
    if issues:
        raise SuiteIssue.several(issues)
    return result


def _parse_objective(raw: Any, tasks: Sequence[str]) -> str:
    where: KeyPath = ("search", "objective")
    measures = sorted({measure for task in tasks for measure in TASK_MEASURES.get(task, ())})
    valid = [metric_name(VALIDATION_SPLIT, measure) for measure in measures]
    valid += [BEST_PREFIX + name for name in valid]
    if not isinstance(raw, str):
        raise SuiteIssue(where, f"expected a validation metric name, one of {', '.join(valid)}; got {received(raw)}.")
    if raw in valid:
        return raw
    bare = raw.removeprefix(BEST_PREFIX).removeprefix("final_")
    split = next((split for split in SPLITS if bare.startswith(split + "_")), None)
    if split is not None and split != VALIDATION_SPLIT:
        raise SuiteIssue(
            where,
            f"{raw!r} is a {split} metric. A search selects on VALIDATION only: choosing on the test split would "
            f"make the final comparison's test scores optimistic, and on the training split it rewards overfitting. "
            f"Use one of {', '.join(valid)}.",
        )
    raise SuiteIssue(
        where,
        f"unknown objective {raw!r}.{did_you_mean(raw, valid)} A search objective is a validation metric of the "
        f"dataset's task: {', '.join(valid)} (validation_<m>: its value at the last epoch; best_validation_<m>: its "
        "best over epochs).",
    )


def _positive_int(raw: Any, where: KeyPath, meaning: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise SuiteIssue(where, f"expected an integer >= 1 ({meaning}), got {received(raw)}.")
    return raw


def _parse_keep(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < 1:
        raise SuiteIssue(
            ("search", "keep"),
            f"expected a fraction strictly between 0 and 1 (the best part of a round that sets the next round's "
            f"range), e.g. keep: 0.2; got {received(raw)}.",
        )
    return float(raw)


def _parse_name(raw: Any, where: KeyPath, names: Mapping[str, str]) -> str:
    if raw not in names:
        raise SuiteIssue(
            where,
            f"unknown {where[-1]} {raw!r}.{did_you_mean(str(raw), names)} One of: "
            + "; ".join(f"{name} ({text})" for name, text in names.items())
            + ".",
        )
    return str(raw)


def _parse_search_seeds(raw: Any, final_seeds: Sequence[int]) -> tuple[int, ...]:
    where: KeyPath = ("search", "seeds")
    seeds = parse_seeds(raw, where)
    common = sorted(set(seeds) & set(final_seeds))
    if common:
        raise SuiteIssue(
            where,
            f"search seeds {common} are also final seeds (the suite's seeds: {list(final_seeds)}). The final "
            "comparison must run on seeds the search never saw; use other search seeds, e.g. [1000].",
        )
    return seeds
