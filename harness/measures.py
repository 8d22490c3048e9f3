"""What a trial records, declared once: splits, statuses, timings, measures and derived names.

The lowest layer of the package: it imports only the standard library, so spec, data, adapters,
runner, store, analysis, check and report can all read it. Every other module derives what it
needs from the tables below; adding a measure or a trial status is one entry here plus its tests
(and, for a measure, the numpy code in `harness.adapters.metrics` that computes it).

Metric names. The training loop records `<split>_<measure>` for every split and every measure of
the dataset's task (`train_loss`, `test_accuracy`, ...), evaluated on the whole split after each
epoch (epoch 0 = before training), plus `minibatch_loss`, the mean training-mode data loss over an
epoch's steps. Graph models with several outputs add `<split>_loss_<output>` and
`minibatch_loss_<output>`. Tables derive `final_<metric>` (the last epoch's value),
`best_<metric>` (the best value over epochs in the measure's direction) for every metric except
test ones, and for test metrics `at_best_validation_<metric>` (the value at the epoch of least
validation loss): a best-over-epochs test value would choose the epoch by the test set. A trial
also records the timings of `TIMING_COLUMNS`.

A metric's direction and range come from the measure its name ENDS with (`at_best_validation_test_accuracy` is
an accuracy; `accuracy_gap` and `train_loss_<output>` end with no measure); a name that ends with
no measure is lower-is-better and unbounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# -- splits -------------------------------------------------------------------------------------

TRAINING_SPLIT, VALIDATION_SPLIT, TEST_SPLIT = "train", "validation", "test"
SPLITS = (TRAINING_SPLIT, VALIDATION_SPLIT, TEST_SPLIT)  # the order of every table and figure
HELD_OUT_SPLITS = (TEST_SPLIT, VALIDATION_SPLIT)  # where a held-out value is read, first found wins

# -- tasks --------------------------------------------------------------------------------------

# 'classification' (integer labels 0..C-1) | 'binary' (labels 0/1) | 'regression' (float targets) |
# 'sequence' (label strings for the ctc loss); see harness.data.types.DatasetInfo.
TASKS = ("classification", "binary", "regression", "sequence")


# -- measures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One quantity the harness records or derives, with what makes a value better and its range.

    name: the suffix of every metric of this measure (`test_accuracy`, `best_train_loss`).
    higher_is_better: True when larger values are better (accuracy), False when smaller are (loss).
    low, high: the range any value can take (+-inf: no bound); statistics clip intervals to it.
    tasks: the tasks whose training loop records it on every split (empty: not a split metric).
    description: one line for users.
    """

    name: str
    higher_is_better: bool
    low: float
    high: float
    tasks: tuple[str, ...]
    description: str


# The one table. Order = display order within a split (tables, figures, baselines, reports).
LOSS = "loss"  # the measure every task records: the data loss the optimizer minimizes
MEASURE_TABLE: tuple[Measure, ...] = (
    Measure(
        LOSS,
        False,
        0.0,
        math.inf,
        TASKS,
        "the task's data loss, penalties excluded: cross entropy, MSE for regression, ctc for sequences",
    ),
    Measure(
        "accuracy",
        True,
        0.0,
        1.0,
        ("classification", "binary", "sequence"),
        "share of samples predicted exactly (argmax, logit > 0, or the whole decoded string)",
    ),
    Measure(
        "error_rate",
        False,
        0.0,
        math.inf,
        ("sequence",),
        "label error rate: summed edit distance of the greedy decoding over the summed true length",
    ),
    Measure("mae", False, 0.0, math.inf, ("regression",), "mean absolute error over every target"),
    Measure(
        "r2",
        True,
        -math.inf,
        1.0,
        ("regression",),
        "coefficient of determination, 1 - SS_res / SS_tot over every target",
    ),
)
# The timings (TIMING_COLUMNS and whatever else ends in 'seconds'): a measure, not a split metric.
SECONDS = Measure("seconds", False, 0.0, math.inf, (), "wall time in seconds")

MEASURES = tuple(measure.name for measure in MEASURE_TABLE)  # split measures, in display order
TASK_MEASURES: dict[str, tuple[str, ...]] = {
    task: tuple(measure.name for measure in MEASURE_TABLE if task in measure.tasks) for task in TASKS
}
# Longest suffix first, so that a measure whose name ends with another's is matched as itself.
_BY_SUFFIX = sorted((*MEASURE_TABLE, SECONDS), key=lambda measure: -len(measure.name))


def measure_of(metric: str) -> Measure | None:
    """The measure a metric name ends with (`at_best_validation_test_r2` -> r2, `train_seconds` -> seconds), else None."""
    return next((measure for measure in _BY_SUFFIX if metric.endswith(measure.name)), None)


def is_higher_better(metric: str) -> bool:
    """True when a larger value of `metric` is better (accuracy, r2 and their final_/best_ forms);
    False for losses, errors, times and names that end with no known measure."""
    measure = measure_of(metric)
    return measure is not None and measure.higher_is_better


def direction(metric: str) -> str:
    """'higher' or 'lower': which way `metric` improves (the word baselines and the check gate write)."""
    return "higher" if is_higher_better(metric) else "lower"


def reaches(metric: str) -> str:
    """The comparison a value must pass to reach a target of `metric`: '>=' (higher is better) or '<='."""
    return ">=" if is_higher_better(metric) else "<="


def bounds(metric: str) -> tuple[float, float]:
    """The range `metric`'s values can take, (low, high) with +-inf for no bound: accuracy [0, 1],
    r2 at most 1, losses, mae, error rates and seconds >= 0; unbounded for names of no measure."""
    measure = measure_of(metric)
    return (measure.low, measure.high) if measure is not None else (-math.inf, math.inf)


# -- metric names -------------------------------------------------------------------------------

MINIBATCH_LOSS = f"minibatch_{LOSS}"  # mean training-mode data loss over an epoch's optimizer steps
FINAL_PREFIX = "final_"  # final_<metric>: the metric's value at the trial's last epoch
BEST_PREFIX = "best_"  # best_<metric>: its best value over every recorded epoch (in its direction)


def metric_name(split: str, measure: str) -> str:
    """The recorded name of `measure` on `split`: 'test' + 'accuracy' -> 'test_accuracy'."""
    return f"{split}_{measure}"


def split_metrics(measures: tuple[str, ...] = MEASURES) -> tuple[str, ...]:
    """`<split>_<measure>` for every split and measure, split-major (train_loss, train_accuracy, ...)."""
    return tuple(metric_name(split, measure) for split in SPLITS for measure in measures)


def output_metric_name(metric: str, output: str) -> str:
    """The name of `metric` for one output of a multi-output graph model: 'train_loss' + 'aux' -> 'train_loss_aux'."""
    return f"{metric}_{output}"


AT_BEST_VALIDATION_PREFIX = "at_best_validation_"  # at_best_validation_<test metric>: at the selected epoch
SELECTION_METRIC = metric_name(VALIDATION_SPLIT, LOSS)  # the epoch of its least value is the selected one
BEST_VALIDATION_EPOCH = "best_validation_epoch"  # per trial: the first epoch of least validation loss


def is_test_metric(metric: str) -> bool:
    """A metric measured on the test split (`test_accuracy`, `test_loss_aux`)."""
    return metric.startswith(f"{TEST_SPLIT}_")


def best_name(metric: str) -> str:
    """The column of `metric`'s best value over epochs. Not for a test metric: the best test value
    over epochs picks the epoch by the test set (an oracle), so tables never derive it; a test
    metric's selected value is `at_best_validation_name`."""
    name = f"{BEST_PREFIX}{metric}"
    if is_test_metric(metric):
        raise ValueError(f"no best-over-epochs column for a test metric: {oracle_reason(name)}")
    return name


def has_best_name(metric: str) -> bool:
    """Whether tables derive `best_<metric>`: every recorded metric except test ones."""
    return not is_test_metric(metric)


def at_best_validation_name(metric: str) -> str:
    """The column of a test metric's value at the epoch of least validation loss (`SELECTION_METRIC`):
    model selection by validation, then the test set read once, at the selected epoch."""
    return f"{AT_BEST_VALIDATION_PREFIX}{metric}"


def oracle_reason(name: str) -> str | None:
    """Why `name` may not be used, when it is the best-over-epochs value of a test metric, else None."""
    if not name.startswith(BEST_PREFIX) or not is_test_metric(name[len(BEST_PREFIX) :]):
        return None
    metric = name[len(BEST_PREFIX) :]
    return (
        f"{name} would be the best test value over epochs, i.e. an epoch chosen by the test set (an oracle that "
        f"overstates every arm). Use {at_best_validation_name(metric)} (the test value at the epoch of least "
        f"validation loss; needs a validation split) or {metric} (the final epoch's)"
    )


def final_name(metric: str) -> str:
    """The claim name of `metric`'s final value (the same column as `metric` itself)."""
    return f"{FINAL_PREFIX}{metric}"


def without_final_prefix(metric: str) -> str:
    """final_x -> x; any other name as written."""
    return metric[len(FINAL_PREFIX) :] if metric.startswith(FINAL_PREFIX) else metric


# Recorded only when the trial's training block asks (harness.spec.schedules):
LEARNING_RATE = "lr"  # with an lr_schedule, per epoch: the mean learning rate of the epoch's optimizer steps
STOPPED_EPOCH = "stopped_epoch"  # with early_stopping: the last epoch trained (all of them when it never stopped)
BEST_EPOCH = "best_epoch"  # with early_stopping: the epoch of the best monitored value
# with early_stopping and restore_best: the epoch whose weights the trial ends with (= best_epoch). Its
# rows are the restored weights' evaluation, and it is the trial's final epoch in every table.
RESTORED_EPOCH = "restored_epoch"
EARLY_STOPPING_METRICS = (STOPPED_EPOCH, BEST_EPOCH, RESTORED_EPOCH)  # recorded once, at the final epoch

# Every name the training loop can record for a single-output model, in display order.
RECORDED_METRICS = (*split_metrics(), MINIBATCH_LOSS)
TRAIN_LOSS = metric_name(TRAINING_SPLIT, LOSS)  # the final training loss, shown beside the primary metric


def metric_sort_key(name: str) -> tuple[int, int, str]:
    """Display order: split by split (train, validation, test), within a split the measures in
    MEASURE_TABLE order; then minibatch_loss; then any other name alphabetically."""
    split, _, measure = name.partition("_")
    if split in SPLITS and measure in MEASURES:
        return (0, SPLITS.index(split) * len(MEASURES) + MEASURES.index(measure), name)
    if name == MINIBATCH_LOSS:
        return (1, 0, name)
    return (2, 0, name)


# -- timings ------------------------------------------------------------------------------------

# per trial, see TrialResult: compile_seconds is the tracing and compiling taken out of the other two
TIMING_COLUMNS = ("train_seconds", "eval_seconds", "compile_seconds", "wall_seconds")
# The timing that summaries, backend deltas, baselines and the check gate compare: the optimizer
# steps alone (evaluation, building and diagnostics excluded), so it measures the training speed.
SPEED_METRIC = "train_seconds"
assert SPEED_METRIC in TIMING_COLUMNS


# -- trial statuses -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialStatus:
    """How a trial ended.

    final: the result stays; a run skips the trial. Not final ('failed'): retried on the next run.
    abbreviation: the column header part of the terminal summary (ok/div/fail/time).
    label: the column header part of the report's summary table (ok/div/fail/timeout).
    """

    name: str
    final: bool
    abbreviation: str
    label: str
    description: str


OK = "ok"  # the one status whose values enter statistics
DIVERGED, FAILED, TIMEOUT = "diverged", "failed", "timeout"
STATUS_TABLE: tuple[TrialStatus, ...] = (
    TrialStatus(OK, True, "ok", "ok", "trained for its whole budget"),
    TrialStatus(DIVERGED, True, "div", "div", "the mean minibatch loss of an epoch was NaN or infinite"),
    TrialStatus(FAILED, False, "fail", "fail", "raised an error or its worker died; retried on the next run"),
    TrialStatus(TIMEOUT, True, "time", "timeout", "stopped after training.max_seconds or the runner's time limit"),
)
TRIAL_STATUSES = tuple(status.name for status in STATUS_TABLE)
FINAL_STATUSES = tuple(status.name for status in STATUS_TABLE if status.final)
PROBLEM_STATUSES = tuple(name for name in TRIAL_STATUSES if name != OK)  # what progress and reports call out
assert OK in TRIAL_STATUSES


# A search configuration's status (search.csv), beside the statuses above: stopped by its pruner at the
# rung epoch. Its trials ran the rung only and are ordinary 'ok' trials; it never enters a comparison.
# Not in STATUS_TABLE: no trial row carries it, so summaries have no column for it.
PRUNED = "pruned"
SEARCH_STATUSES: tuple[TrialStatus, ...] = (
    *STATUS_TABLE,
    TrialStatus(PRUNED, True, "prun", "pruned", "stopped at the rung epoch by the search's pruner; never chosen"),
)


def status_count_column(status: str) -> str:
    """The column of a status' trial count in summaries: 'ok' -> 'n_ok'."""
    return f"n_{status}"


STATUS_COUNT_COLUMNS = tuple(status_count_column(name) for name in TRIAL_STATUSES)
