"""The suite's `report:` block: reference arm, primary metric and time targets, validated.

    report:
      reference: sgd                    # the arm every other arm is compared with (default: the first arm)
      metric: test_accuracy             # the primary metric (default: test_accuracy, or test_loss for regression)
      targets: {test_accuracy: 0.9}     # time-to-target thresholds, per metric (validation_* too)

With several grid axes an arm's name carries every axis (`sgd,hidden=[32],lr=0.1,batch_size=32`),
so the reference may instead name a variant of one or more axes:

    report:
      reference: {optimizer: sgd}       # each arm vs the arm that differs from it only in `optimizer`

Each arm is then compared with its own reference arm: the arm with the named variant on the named
axes and the same variant as itself on every other axis (`adam,hidden=[32],...` vs
`sgd,hidden=[32],...`). Arms that have the named variants are references and are not compared.
Naming every axis names one arm, as the string form does. `ReportOptions.reference_for(arm)`
gives the mapping; a string names one arm exactly as before.

`check_report_options` needs only the suite (so the CLI can call it right after loading, before
any training); `Results` checks the metric names again against the metrics actually recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SpecError, did_you_mean, unknown_name
from harness.measures import MEASURES, SPLITS, VALIDATION_SPLIT

REPORT_KEYS = ("reference", "metric", "targets")
# Every metric name the training loop can record (harness.adapters.loop / metrics).
KNOWN_METRICS = (*(f"{split}_{measure}" for split in SPLITS for measure in MEASURES), "minibatch_loss")

ArmLabels = Mapping[str, Mapping[str, str]]  # arm -> {axis key: its variant label on that axis}


@dataclass(frozen=True)
class ReportOptions:
    """The validated `report:` block. `metric` None means the task's default (see `default_metric`).

    `reference` is always an arm: the one named by the string form, or, with a per-axis reference
    (`reference_variants` not empty), the first arm's reference arm. `reference_arms` maps every
    arm to the arm it is compared with (a reference arm maps to itself); use `reference_for`.
    """

    reference: str
    metric: str | None = None
    targets: Mapping[str, float] = field(default_factory=dict)
    reference_variants: Mapping[str, str] = field(default_factory=dict)  # axis -> label; {} for the string form
    reference_arms: Mapping[str, str] = field(default_factory=dict)  # arm -> its reference arm

    @property
    def per_axis(self) -> bool:
        """True when the reference names axis variants rather than one arm."""
        return bool(self.reference_variants)

    def reference_for(self, arm: str) -> str:
        """The arm that `arm` is compared with; `arm` itself when it is a reference (not compared).

        The string form gives its one reference arm for every arm. The per-axis form gives the arm
        with the named variants on the named axes and `arm`'s own variants on every other axis.

        Raises:
            SpecError: with a per-axis reference, `arm` is not an arm of the suite.
        """
        if arm in self.reference_arms:
            return self.reference_arms[arm]
        if not self.per_axis:
            return self.reference
        raise SpecError(
            f"report.reference: {arm!r} is not an arm of this suite, so it has no reference arm.{did_you_mean(arm, self.reference_arms)}"
        )

    def describe_reference(self) -> str:
        """The reference as a reader sees it: `sgd`, or `optimizer=sgd` for a per-axis reference."""
        if not self.per_axis:
            return self.reference
        return ",".join(f"{axis}={label}" for axis, label in self.reference_variants.items())


def check_report_options(
    options: Mapping[str, Any] | None,
    arms: Sequence[str],
    where: str = "report",
    *,
    arm_labels: ArmLabels | None = None,
) -> ReportOptions:
    """Validate a suite's `report:` mapping against its arms.

    Args:
        options: the mapping (None or {} for all defaults).
        arms: the suite's arms, in order; the default reference is the first.
        where: key path for messages.
        arm_labels: arm -> {axis: variant label} for every arm in `arms` (`Trial.cell` as a dict);
            needed only for a per-axis reference (`reference: {optimizer: sgd}`).

    Raises:
        SpecError: an unknown key, a reference that is not an arm (or names an unknown axis or
            label, or leaves an arm without its reference arm), an unknown metric name, or a
            target that is not a finite number. The message starts with the key path, then names
            the value, what was expected and how to fix it.
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
        raise SpecError(
            f"{where}: the suite has no arms, so there is nothing to report. Add a grid or check `exclude`."
        )
    reference = options.get("reference", arms[0])
    variants: dict[str, str] = {}
    if isinstance(reference, Mapping):
        variants = _check_reference_variants(reference, arms, arm_labels, f"{where}.reference")
        reference_arms = reference_arms_by_axis(variants, arms, arm_labels or {}, f"{where}.reference")
        reference = reference_arms[arms[0]]
    elif reference not in arms:
        example = (
            f" or a variant of one axis, e.g. {{{_first_axis_example(arms, arm_labels)}}}"
            if _several_axes(arm_labels)
            else ""
        )
        raise SpecError(
            f"{where}.reference: {reference!r} is not an arm of this suite.{did_you_mean(str(reference), arms)} "
            f"Expected one of: {', '.join(arms)}. Fix: name an arm as printed by `harness validate`{example}."
        )
    else:
        reference_arms = {arm: str(reference) for arm in arms}
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
    return ReportOptions(
        reference=str(reference),
        metric=metric,
        targets=targets,
        reference_variants=variants,
        reference_arms=reference_arms,
    )


def reference_arms_by_axis(
    variants: Mapping[str, str], arms: Sequence[str], arm_labels: ArmLabels, where: str
) -> dict[str, str]:
    """arm -> the arm with `variants` on their axes and the arm's own labels on every other axis.

    Pure: the labels decide, not the arm names. A reference arm maps to itself.

    Raises:
        SpecError: some arm's reference cell is not an arm (removed by `exclude`); the message
            lists those arms and how to fix it.
    """
    by_labels = {_labels_key(arm_labels[arm]): arm for arm in arms}
    references: dict[str, str] = {}
    missing: list[str] = []
    for arm in arms:
        wanted = {**arm_labels[arm], **variants}
        found = by_labels.get(_labels_key(wanted))
        if found is None:
            missing.append(f"{arm!r} (needs {_describe_cell(wanted)})")
        else:
            references[arm] = found
    if missing:
        raise SpecError(
            f"{where}: {len(missing)} arm(s) have no reference arm to be compared with, since the cell that differs "
            f"from them only in {', '.join(variants)} is not in the grid (removed by `exclude`): {'; '.join(missing)}. "
            "Fix: remove that `exclude` entry, or name another reference."
        )
    return references


def _labels_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(axis), str(label)) for axis, label in labels.items()))


def _describe_cell(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{axis}: {label}" for axis, label in labels.items()) + "}"


def _several_axes(arm_labels: ArmLabels | None) -> bool:
    """True when arm names join several labels, so naming one axis' variant is the shorter way."""
    return any(len(labels) > 1 for labels in (arm_labels or {}).values())


def _first_axis_example(arms: Sequence[str], arm_labels: ArmLabels | None) -> str:
    labels = (arm_labels or {}).get(arms[0], {})
    axis, label = next(iter(labels.items()))
    return f"{axis}: {label}"


def _check_reference_variants(
    reference: Mapping[Any, Any], arms: Sequence[str], arm_labels: ArmLabels | None, where: str
) -> dict[str, str]:
    """The per-axis reference as {axis: label}, each axis and label checked against the grid."""
    if arm_labels is None:
        raise TypeError("check_report_options: a per-axis reference needs arm_labels (arm -> {axis: label})")
    unlabelled = [arm for arm in arms if arm not in arm_labels]
    if unlabelled:
        raise TypeError(f"check_report_options: arm_labels lacks the arms {unlabelled}")
    axes: dict[str, list[str]] = {}
    for arm in arms:
        for axis, label in arm_labels[arm].items():
            labels = axes.setdefault(axis, [])
            if label not in labels:
                labels.append(label)
    if not axes:
        raise SpecError(
            f"{where}: {dict(reference)!r} names grid axes, but this suite has no grid (its one arm is {arms[0]!r}). "
            "Fix: remove `reference`."
        )
    if not reference:
        example = f"{{{next(iter(axes))}: {axes[next(iter(axes))][0]}}}"
        raise SpecError(
            f"{where}: an empty mapping names no variant. Expected an axis and one of its labels, e.g. {example}."
        )
    variants: dict[str, str] = {}
    for axis, value in reference.items():
        if axis not in axes:
            raise unknown_name("grid axis", str(axis), axes, f"{where}.{axis}")
        label = value if isinstance(value, str) else _value_label(value)  # [32] and "[32]" both work, as in `exclude`
        if label not in axes[axis]:
            raise SpecError(
                f"{where}.{axis}: axis {axis!r} has no label {label!r}.{did_you_mean(label, axes[axis])} "
                f"Its labels: {', '.join(axes[axis])}."
            )
        variants[str(axis)] = label
    return variants


def _value_label(value: Any) -> str:
    # Imported here: the suite layer is needed only for this form, and `harness.analysis` stays light.
    from harness.suite.grid import value_label

    return value_label(value)


def check_metric_name(name: Any, valid: Iterable[str], where: str) -> str:
    """Return `name` if it is one of `valid`, else raise SpecError listing them."""
    valid = list(valid)
    if not isinstance(name, str) or name not in valid:
        error = unknown_name("metric", str(name), valid, where)
        validation = f"{VALIDATION_SPLIT}_"
        if str(name).startswith(validation) and not any(known.startswith(validation) for known in valid):
            # The usual cause: a validation target (AlgoPerf's choice) on a dataset with no validation split.
            raise SpecError(
                f"{error} No validation metric was recorded: the dataset has no validation split. "
                "Fix: give it one, e.g. dataset: {name: mnist1d, validation: 0.1}, or target a test metric."
            )
        raise error
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
