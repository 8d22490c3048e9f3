"""What `harness check` compares: per-metric tolerances and the seed rule, from the suite and the CLI.

In a suite (every key optional):

    check:
      test_accuracy: {tolerance: 0.01}     # absolute: may drop by up to 0.01
      train_seconds: {tolerance: 20%}      # relative: may grow by up to 20% of the baseline mean
      test_loss: 5%                        # shorthand for {tolerance: 5%}
      min_seeds: 3                         # fewer seeds on either side: never WITHIN (a regression still shows)
      few_seeds: pass                      # rows no test can decide: 'pass' (INCONCLUSIVE) or 'tolerance'
      expect_diverged: [arm, ...]          # arms whose divergence is a finding: not a failed trial (exit 3)

On the command line, `--fail-on test_accuracy:1%` (repeatable) adds a metric or replaces the
suite's tolerance for it: the CLI wins. A tolerance is a number (absolute, in the metric's
units: 0.01 is one accuracy point, 0.5 is half a second) or a percentage of the baseline mean
(`1%`). When neither the suite nor the CLI names a metric, the DEFAULTS apply: the suite's
primary metric (`report.metric`, else test accuracy, test error_rate for sequence labelling, or test loss for regression) with a 1%
relative tolerance, and train_seconds with a 20% relative tolerance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SpecError, unknown_name

# The metric names the training loop records, from the standard-library-only harness.measures, so that
# parsing a suite's check block imports neither pandas nor the analysis package.
from harness.measures import RECORDED_METRICS, SPEED_METRIC

TIMING_METRICS = (SPEED_METRIC,)  # the timing a baseline keeps (optimizer steps only, see TrialResult)
CHECKABLE_METRICS = RECORDED_METRICS + TIMING_METRICS

DEFAULT_METRIC_TOLERANCE = "1%"  # the primary metric, when nothing is configured
DEFAULT_SPEED_TOLERANCE = "20%"  # train_seconds, when nothing is configured
# Below 3 seeds the spread is estimated from one degree of freedom: a t test still holds its level
# (so a regression can be shown), but a WITHIN verdict would rest on that one degree of freedom.
DEFAULT_MIN_SEEDS = 3
FEW_SEEDS_RULES = ("pass", "tolerance")
RESERVED_KEYS = ("min_seeds", "few_seeds")

_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*%\s*$")
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Tolerance:
    """How far a metric's mean may move the wrong way before it can count as a regression.

    `amount` is in the metric's units when `relative` is False, else a fraction of |baseline mean|.
    """

    amount: float
    relative: bool

    def limit(self, baseline_mean: float) -> float:
        """The tolerance in the metric's units for this baseline mean."""
        return self.amount * abs(baseline_mean) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"


def parse_tolerance(raw: Any, where: str) -> Tolerance:
    """A tolerance from a suite value or a CLI string: 0.01 / '0.01' (absolute) or '1%' (relative).

    Raises:
        SpecError: not a non-negative finite number or percentage (names `where` and an example).
    """
    example = "a number in the metric's units (0.01) or a percentage of the baseline mean ('1%')"
    if isinstance(raw, bool):
        raise SpecError(f"{where}: expected {example}, got {raw!r}.")
    if isinstance(raw, (int, float)):
        amount, relative = float(raw), False
    elif isinstance(raw, str) and (match := _PERCENT.match(raw)):
        amount, relative = float(match.group(1)) / 100.0, True
    elif isinstance(raw, str) and (match := _NUMBER.match(raw)):
        amount, relative = float(match.group(1)), False
    else:
        raise SpecError(f"{where}: expected {example}, got {raw!r}. Negative tolerances are not allowed.")
    if not math.isfinite(amount) or amount < 0:
        raise SpecError(f"{where}: expected {example} >= 0, got {raw!r}.")
    return Tolerance(amount, relative)


@dataclass(frozen=True)
class CheckOptions:
    """The resolved check settings.

    `metrics` is empty when nothing was configured: the gate then applies `default_metrics`.
    """

    metrics: Mapping[str, Tolerance] = field(default_factory=dict)
    min_seeds: int = DEFAULT_MIN_SEEDS
    few_seeds: str = "pass"
    # arms where a diverged trial is an expected outcome (e.g. no batch norm at a large initial weight
    # scale): listed, but not a failed trial; other statuses, and divergence elsewhere, still exit 3
    expect_diverged: tuple[str, ...] = ()

    def resolved_metrics(self, primary_metric: str) -> dict[str, Tolerance]:
        """The metrics to check: the configured ones, else the defaults for this primary metric."""
        return dict(self.metrics) if self.metrics else default_metrics(primary_metric)


def default_metrics(primary_metric: str) -> dict[str, Tolerance]:
    """The primary metric at 1% and train_seconds at 20%, both relative to the baseline mean."""
    return {
        primary_metric: parse_tolerance(DEFAULT_METRIC_TOLERANCE, "default"),
        SPEED_METRIC: parse_tolerance(DEFAULT_SPEED_TOLERANCE, "default"),
    }


def check_metric(name: Any, where: str) -> str:
    """`name` if a baseline can hold it (a recorded final metric or train_seconds), else SpecError."""
    if not isinstance(name, str) or name not in CHECKABLE_METRICS:
        raise unknown_name("metric", str(name), CHECKABLE_METRICS, where)
    return name


def parse_check_block(block: Mapping[str, Any] | None, where: str = "check") -> CheckOptions:
    """Validate a suite's `check:` mapping (see the module docstring). Callable at suite-load time.

    Raises:
        SpecError: not a mapping, an unknown metric (did-you-mean), a bad tolerance, a bad
            min_seeds or few_seeds. The message names the key path and shows an example.
    """
    if block is None:
        return CheckOptions()
    if not isinstance(block, Mapping):
        raise SpecError(f"{where}: expected a mapping such as {{test_accuracy: {{tolerance: 0.01}}}}, got {block!r}.")
    metrics: dict[str, Tolerance] = {}
    min_seeds, few_seeds = DEFAULT_MIN_SEEDS, "pass"
    expect_diverged: tuple[str, ...] = ()
    for key, value in block.items():
        if key == "expect_diverged":
            expect_diverged = parse_arm_list(value, f"{where}.expect_diverged")
        elif key == "min_seeds":
            min_seeds = parse_min_seeds(value, f"{where}.min_seeds")
        elif key == "few_seeds":
            few_seeds = parse_few_seeds(value, f"{where}.few_seeds")
        else:
            name = _check_block_key(key, where)
            metrics[name] = _parse_metric_entry(value, f"{where}.{name}")
    return CheckOptions(metrics, min_seeds, few_seeds, expect_diverged)


def parse_arm_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of arm names (strings); which arms exist is checked against the results (check_arms)."""
    if not isinstance(value, list) or not value or not all(isinstance(arm, str) and arm for arm in value):
        raise SpecError(f"{where}: expected a non-empty list of arm names such as ['plain,std=1.0'], got {value!r}.")
    return tuple(dict.fromkeys(value))


def check_arms(names: Iterable[str], arms: Sequence[str], where: str) -> None:
    """Every name is one of the suite's arms, else SpecError with a did-you-mean."""
    for name in names:
        if name not in arms:
            raise unknown_name("arm", name, arms, where)


def _check_block_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or key not in CHECKABLE_METRICS:
        raise unknown_name("check key", str(key), (*CHECKABLE_METRICS, *RESERVED_KEYS), where)
    return key


def _parse_metric_entry(value: Any, where: str) -> Tolerance:
    if isinstance(value, Mapping):
        unknown = [key for key in value if key != "tolerance"]
        if unknown:
            raise unknown_name("key", str(unknown[0]), ("tolerance",), where)
        if "tolerance" not in value:
            raise SpecError(f"{where}: expected {{tolerance: 0.01}} or {{tolerance: 1%}}, got {dict(value)!r}.")
        return parse_tolerance(value["tolerance"], f"{where}.tolerance")
    return parse_tolerance(value, where)


def parse_min_seeds(value: Any, where: str) -> int:
    """An integer >= 2 (a spread needs two values)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise SpecError(
            f"{where}: expected a whole number of seeds >= 2 (the default, {DEFAULT_MIN_SEEDS}, is the least that "
            f"gives a usable spread), got {value!r}."
        )
    return value


def parse_few_seeds(value: Any, where: str) -> str:
    """'pass' or 'tolerance'."""
    if value not in FEW_SEEDS_RULES:
        raise unknown_name("few_seeds rule", str(value), FEW_SEEDS_RULES, where)
    return str(value)


def parse_fail_on(values: Iterable[str]) -> dict[str, Tolerance]:
    """`--fail-on metric:tolerance` values (e.g. 'test_accuracy:1%', 'train_seconds:0.5') -> tolerances.

    Raises:
        SpecError: a value without ':', an unknown metric, or a bad tolerance.
    """
    metrics: dict[str, Tolerance] = {}
    for value in values:
        name, separator, tolerance = value.partition(":")
        if not separator or not name.strip() or not tolerance.strip():
            raise SpecError(
                f"--fail-on: expected METRIC:TOLERANCE such as test_accuracy:0.01 or train_seconds:20%, got {value!r}."
            )
        name = check_metric(name.strip(), "--fail-on")
        metrics[name] = parse_tolerance(tolerance.strip(), f"--fail-on {name}")
    return metrics


def merge_options(
    suite: CheckOptions, fail_on: Sequence[str] = (), min_seeds: int | None = None, few_seeds: str | None = None
) -> CheckOptions:
    """The suite's options overridden by the command line (the CLI wins, metric by metric)."""
    metrics = {**suite.metrics, **parse_fail_on(fail_on)}
    return CheckOptions(
        metrics=metrics,
        min_seeds=parse_min_seeds(min_seeds, "--min-seeds") if min_seeds is not None else suite.min_seeds,
        few_seeds=parse_few_seeds(few_seeds, "--few-seeds") if few_seeds is not None else suite.few_seeds,
        expect_diverged=suite.expect_diverged,
    )
