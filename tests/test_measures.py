"""harness.measures: the one declaration of splits, statuses, timings and measures, and what derives from it."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from harness import measures
from harness.measures import (
    FINAL_STATUSES,
    MEASURES,
    RECORDED_METRICS,
    SPEED_METRIC,
    SPLITS,
    STATUS_COUNT_COLUMNS,
    TASK_MEASURES,
    TIMING_COLUMNS,
    TRIAL_STATUSES,
    at_best_validation_name,
    best_name,
    bounds,
    direction,
    final_name,
    is_higher_better,
    measure_of,
    metric_sort_key,
    reaches,
    without_final_prefix,
)


@pytest.mark.parametrize(
    ("metric", "higher"),
    [
        ("test_accuracy", True),
        ("train_accuracy", True),
        ("best_validation_accuracy", True),
        ("final_test_accuracy", True),
        ("test_r2", True),
        ("best_train_r2", True),
        ("test_loss", False),
        ("minibatch_loss", False),
        ("best_train_loss", False),
        ("test_mae", False),
        ("validation_error_rate", False),
        ("train_seconds", False),
        ("wall_seconds", False),
        ("accuracy_gap", False),
        ("train_loss_main", False),
        ("custom", False),
    ],
)
def test_direction_follows_the_measure_the_name_ends_with(metric: str, higher: bool) -> None:
    assert is_higher_better(metric) is higher
    assert direction(metric) == ("higher" if higher else "lower")
    assert reaches(metric) == (">=" if higher else "<=")


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("test_accuracy", (0.0, 1.0)),
        ("best_train_accuracy", (0.0, 1.0)),
        ("test_r2", (-math.inf, 1.0)),
        ("train_loss", (0.0, math.inf)),
        ("minibatch_loss", (0.0, math.inf)),
        ("test_mae", (0.0, math.inf)),
        ("test_error_rate", (0.0, math.inf)),
        ("train_seconds", (0.0, math.inf)),
        ("loss_gap", (-math.inf, math.inf)),
        ("train_loss_main", (-math.inf, math.inf)),
        ("", (-math.inf, math.inf)),
    ],
)
def test_bounds(metric: str, expected: tuple[float, float]) -> None:
    assert bounds(metric) == expected


def test_every_measure_is_declared_consistently() -> None:
    for measure in measures.MEASURE_TABLE:
        assert measure.low < measure.high, measure.name
        assert measure.description, measure.name
        assert set(measure.tasks) <= set(measures.TASKS), measure.name
        assert measure_of(f"test_{measure.name}") is measure
    assert len(set(MEASURES)) == len(MEASURES)


def test_a_longer_measure_name_wins_over_a_shorter_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    # 'top5_accuracy' ends with 'accuracy'; declared as its own measure it must be matched as itself
    top5 = measures.Measure("top5_accuracy", False, -1.0, 5.0, (), "a made-up measure for the test")
    monkeypatch.setattr(measures, "_BY_SUFFIX", sorted((*measures._BY_SUFFIX, top5), key=lambda m: -len(m.name)))
    assert measure_of("test_top5_accuracy") is top5 and bounds("test_top5_accuracy") == (-1.0, 5.0)
    assert measure_of("test_accuracy").name == "accuracy"


def test_task_measures_derive_from_the_table() -> None:
    assert TASK_MEASURES == {
        "classification": ("loss", "accuracy"),
        "binary": ("loss", "accuracy"),
        "regression": ("loss", "mae", "r2"),
        "sequence": ("loss", "accuracy", "error_rate"),
    }
    assert {name for names in TASK_MEASURES.values() for name in names} == set(MEASURES)
    assert MEASURES == ("loss", "accuracy", "error_rate", "mae", "r2")


def test_data_types_reexports_the_same_objects() -> None:
    from harness.data import types

    assert types.TASK_MEASURES is TASK_MEASURES and types.MEASURES is MEASURES and types.TASKS is measures.TASKS


def test_recorded_metric_names_and_their_display_order() -> None:
    assert SPLITS == ("train", "validation", "test")
    assert RECORDED_METRICS[:3] == ("train_loss", "train_accuracy", "train_error_rate")
    assert RECORDED_METRICS[-1] == "minibatch_loss"
    assert len(RECORDED_METRICS) == len(SPLITS) * len(MEASURES) + 1
    assert "validation_error_rate" in RECORDED_METRICS
    shuffled = ["zeta", "minibatch_loss", "test_accuracy", "train_r2", "train_loss", "validation_loss", "test_loss"]
    assert sorted(shuffled, key=metric_sort_key) == [
        "train_loss",
        "train_r2",
        "validation_loss",
        "test_loss",
        "test_accuracy",
        "minibatch_loss",
        "zeta",
    ]
    assert sorted(reversed(RECORDED_METRICS), key=metric_sort_key) == list(RECORDED_METRICS)


def test_derived_prefixes() -> None:
    assert best_name("validation_accuracy") == "best_validation_accuracy"
    with pytest.raises(ValueError, match="an epoch chosen by the test set"):
        best_name("test_accuracy")  # an oracle: tables never derive it
    assert at_best_validation_name("test_accuracy") == "at_best_validation_test_accuracy"
    assert (
        measures.oracle_reason("best_test_loss_aux") is not None and measures.oracle_reason("best_train_loss") is None
    )
    assert measures.is_higher_better("at_best_validation_test_accuracy")
    assert final_name("train_loss") == "final_train_loss"
    assert without_final_prefix("final_train_loss") == "train_loss"
    assert without_final_prefix("best_train_loss") == "best_train_loss"


def test_statuses_and_timings() -> None:
    assert TRIAL_STATUSES == ("ok", "diverged", "failed", "timeout")
    assert FINAL_STATUSES == ("ok", "diverged", "timeout")  # 'failed' is retried
    assert measures.PROBLEM_STATUSES == ("diverged", "failed", "timeout")
    assert STATUS_COUNT_COLUMNS == ("n_ok", "n_diverged", "n_failed", "n_timeout")
    assert "/".join(status.abbreviation for status in measures.STATUS_TABLE) == "ok/div/fail/time"
    assert TIMING_COLUMNS == ("train_seconds", "eval_seconds", "compile_seconds", "wall_seconds")
    assert SPEED_METRIC == "train_seconds"


def test_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import harness.measures; "
        "print(sorted(m for m in ('numpy', 'pandas', 'scipy', 'torch', 'tensorflow', 'keras', 'yaml') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def _outputs_and_targets(task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Small random model outputs and targets of `task`, in the shapes harness.adapters.metrics expects."""
    if task == "classification":
        return rng.normal(size=(12, 3)), rng.integers(0, 3, size=12)
    if task == "binary":
        return rng.normal(size=(12, 1)), rng.integers(0, 2, size=12)
    if task == "regression":
        return rng.normal(size=(12, 2)), rng.normal(size=(12, 2)).astype(np.float32)
    labels = np.zeros((12, 3), dtype=np.int64)  # sequence: label strings of classes 1..3, 0-padded
    labels[:, 0] = rng.integers(1, 4, size=12)
    labels[:6, 1] = rng.integers(1, 4, size=6)
    return rng.normal(size=(12, 8, 4)), labels


@pytest.mark.parametrize("task", measures.TASKS)
def test_the_computed_metrics_are_the_declared_ones_within_their_bounds(task: str) -> None:
    from harness.adapters.metrics import evaluate_outputs

    outputs, targets = _outputs_and_targets(task, np.random.default_rng(0))
    values = evaluate_outputs(outputs, targets, task)
    assert tuple(values) == TASK_MEASURES[task]  # names and order: what the loop records per split
    for name, value in values.items():
        low, high = bounds(f"test_{name}")
        assert low <= value <= high, (task, name, value)
