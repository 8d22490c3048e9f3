"""Checks across a suite cell's resolved parts (harness.suite.load): the loss against the data's task,
weight decay against the optimizer, dropout against the model, save_weights and schedules against the data,
a family's depth before it is built, and the diagnostics block. Each raises a located SuiteIssue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.data.registry import training_rows
from harness.diagnostics import resolve_diagnostics
from harness.errors import SpecError
from harness.measures import TASK_MEASURES
from harness.spec.model import LOSS_TASKS
from harness.spec.schedules import check_against_data, steps_per_epoch
from harness.spec.types import DatasetSpec, TrainingSpec, effective_weight_decay
from harness.suite.schema import issue_from_error
from harness.suite.yaml_source import SuiteIssue, split_path_prefix

MAX_FAMILY_DEPTH = 1000  # a family's stacked layers; depth: 10**9 would build a billion layer specs


def check_training_against_data(training: TrainingSpec, dataset: DatasetSpec, info: Any) -> None:
    """A schedule's warmup against the trial's steps; early stopping's and reduce_on_plateau's validation metric."""
    if training.lr_schedule is None and training.early_stopping is None:
        return
    steps = steps_per_epoch(training_rows(dataset), training.batch_size, training.drop_last)
    check_against_data(
        training.lr_schedule,
        training.early_stopping,
        training.epochs * steps,
        dataset.validation > 0,
        TASK_MEASURES[info.task],
    )


def check_depth(document: Mapping[str, Any]) -> bool:
    """A family's `depth` is the one number that multiplies layers: refuse it before the family builds them."""
    raw = document.get("model")
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((family, options),) = raw.items()
        depth = options.get("depth") if isinstance(options, Mapping) else None
        if isinstance(depth, int) and depth > MAX_FAMILY_DEPTH:
            raise SuiteIssue(
                ("model", family, "depth"),
                f"depth {depth} is over the limit of {MAX_FAMILY_DEPTH} layers (the shipped suites use at most 8). "
                "Use a smaller depth.",
            )
    return True


def check_loss_task(loss: str, info: Any) -> None:
    needed = LOSS_TASKS[loss]
    if info.task != needed:
        fitting = [name for name, task in LOSS_TASKS.items() if task == info.task]
        classes = f" with {info.num_classes} classes" if info.num_classes else ""
        raise SuiteIssue(
            ("loss",),
            f"loss {loss!r} needs a {needed} dataset, but {info.name!r} is a {info.task} dataset{classes}. "
            f"Use loss: {' or '.join(fitting)} with this dataset, or choose a {needed} dataset.",
        )


def check_weight_decay(optimizer: Any, regularizer: Any) -> None:
    try:
        effective_weight_decay(optimizer, regularizer)
    except SpecError as error:
        raise issue_from_error(error, ("regularizer", "weight_decay")) from None


def check_dropout(model: Any, regularizer: Any) -> None:
    if regularizer.dropout > 0 and model.family is None:
        raise SuiteIssue(
            ("regularizer", "dropout"),
            f"regularizer.dropout ({regularizer.dropout}) inserts dropout after each hidden layer of a family model "
            "(mlp), but this model is an explicit layer list, where it would silently do nothing. Put "
            f"{{dropout: {{rate: {regularizer.dropout}}}}} layers in model.layers and remove regularizer.dropout.",
        )


def check_save_weights(training: Any, dataset: Any) -> None:
    if training.save_weights == "best" and not dataset.validation:
        raise SuiteIssue(
            ("training", "save_weights"),
            "best keeps the weights of the epoch of least validation loss, but the dataset has no "
            "validation split. Set dataset.validation (e.g. dataset: {name: ..., validation: 0.1}), or use "
            "save_weights: final.",
        )


def suite_diagnostics(raw: Any, epochs: int) -> Any:
    try:
        return resolve_diagnostics(raw, epochs)
    except SpecError as error:
        path, rest = split_path_prefix(str(error))
        raise SuiteIssue(path or ("diagnostics",), rest.removeprefix(": ")) from None
