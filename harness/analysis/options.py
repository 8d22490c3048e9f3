"""The suite's `report:` block: reference arm, primary metric and time targets, validated.

    report:
      reference: sgd                    # the arm every other arm is compared with (default: the first arm)
      metric: test_accuracy             # the primary metric (default: test_accuracy, or test_loss for regression)
      targets: {test_accuracy: 0.9}     # time-to-target thresholds, per metric

`check_report_options` needs only the suite (so the suite loader can call it before any
training); `Results` checks the metric names again against the metrics actually recorded.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.analysis.tables import MEASURES, SPLITS
from harness.errors import SpecError, did_you_mean, unknown_name

REPORT_KEYS = ("reference", "metric", "targets")
# Every metric name the training loop can record (harness.adapters.loop / metrics).
KNOWN_METRICS = tuple(f"{split}_{measure}" for split in SPLITS for measure in MEASURES) + ("minibatch_loss",)


@dataclass(frozen=True)
class ReportOptions:
    """The validated `report:` block. `metric` None means the task's default (see `default_metric`)."""

    reference: str
    metric: str | None = None
    targets: Mapping[str, float] = field(default_factory=dict)


def check_report_options(options: Mapping[str, Any] | None, arms: Sequence[str], where: str = "report") -> ReportOptions:
    """Validate a suite's `report:` mapping against its arms.

    Args:
        options: the mapping (None or {} for all defaults).
        arms: the suite's arms, in order; the default reference is the first.
        where: key path for messages.

    Raises:
        SpecError: an unknown key, a reference that is not an arm, an unknown metric name, or a
            target that is not a finite number. The message names the key path, the value, what
            was expected and how to fix it.
    """
    if options is not None and not isinstance(options, Mapping):
        raise SpecError(
            f"{where}: expected a mapping such as {{reference: sgd, metric: test_accuracy}}, got {options!r}."
        )
    options = dict(options or {})
    for key in options:
        if key not in REPORT_KEYS:
            raise unknown_name("report option", key, REPORT_KEYS, where)
    if not arms:
        raise SpecError(f"{where}: the suite has no arms, so there is nothing to report. Add a grid or check `exclude`.")
    reference = options.get("reference", arms[0])
    if reference not in arms:
        raise SpecError(
            f"{where}.reference: {reference!r} is not an arm of this suite.{did_you_mean(str(reference), arms)} "
            f"Expected one of: {', '.join(arms)}. Fix: name an arm as printed by `harness validate`."
        )
    metric = options.get("metric")
    if metric is not None:
        check_metric_name(metric, KNOWN_METRICS, f"{where}.metric")
    raw_targets = options.get("targets", {}) or {}
    if not isinstance(raw_targets, Mapping):
        raise SpecError(
            f"{where}.targets: expected a mapping of metric to threshold such as {{test_accuracy: 0.9}}, got {raw_targets!r}."
        )
    targets: dict[str, float] = {}
    for name, value in raw_targets.items():
        check_metric_name(name, KNOWN_METRICS, f"{where}.targets")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpecError(
                f"{where}.targets.{name}: expected a finite number (the threshold the metric must reach), "
                f"got {value!r}. Example: targets: {{{name}: 0.9}}."
            )
        targets[str(name)] = float(value)
    return ReportOptions(reference=str(reference), metric=metric, targets=targets)


def check_metric_name(name: Any, valid: Iterable[str], where: str) -> str:
    """Return `name` if it is one of `valid`, else raise SpecError listing them."""
    valid = list(valid)
    if not isinstance(name, str) or name not in valid:
        raise unknown_name("metric", str(name), valid, where)
    return name


def infer_task(metric_names: Iterable[str]) -> str:
    """'sequence' when a label error rate is recorded, 'classification' when accuracy is, 'regression'
    when r2 is, else 'unknown'."""
    names = set(metric_names)
    if any(name.endswith("_error_rate") for name in names):
        return "sequence"
    if any(name.endswith("_accuracy") for name in names):
        return "classification"
    if any(name.endswith("_r2") for name in names):
        return "regression"
    return "unknown"


def default_metric(metric_names: Iterable[str]) -> str:
    """The primary metric when the suite names none: test accuracy for classification (binary
    included), the label error rate for sequence labelling, test loss otherwise; the validation,
    then train split when no test split was recorded."""
    names = set(metric_names)
    measure = {"classification": "accuracy", "sequence": "error_rate"}.get(infer_task(names), "loss")
    for split in ("test", "validation", "train"):
        if f"{split}_{measure}" in names:
            return f"{split}_{measure}"
    return f"test_{measure}"
