"""Learning-rate schedules and early stopping: names, parameters, canonical formulas (framework-free).

A schedule is a `training: {lr_schedule: {name: cosine, ...}}` component; its formula gives the
learning rate of every optimizer step from ONE function here (`step_rates`), which both adapters
set on their optimizer before each step, so PyTorch and Keras cannot disagree about it.

Notation in the formulas: t = index of the optimizer step, counted over the whole trial and
starting at 0 (the first step of epoch 1 is t = 0); T = the trial's total steps, epochs x steps
per epoch; lr0 = the optimizer's `lr`. `reduce_on_plateau` alone is per epoch: it changes the
rate between epochs from a validation metric (`PlateauState`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.errors import SpecError
from harness.measures import HELD_OUT_SPLITS, LOSS, TASK_MEASURES, VALIDATION_SPLIT, is_higher_better, metric_name
from harness.spec.components import REGISTRIES, Component, ComponentDef, resolve_component
from harness.spec.params import Parameter, reject_unknown_keys

VALIDATION_LOSS = metric_name(VALIDATION_SPLIT, LOSS)

_T_MAX = Parameter(
    "integer",
    None,
    "> 0",
    nullable=True,
    description="steps from the start of the decay to its end (min_lr); null: the decay ends at the trial's last "
    "step, T - warmup_steps",
)
_MIN_LR = Parameter("number", 0.0, ">= 0", description="the rate at the end of the decay (absolute, not a fraction)")
_MONITOR = Parameter(
    "any", VALIDATION_LOSS, description="the validation metric watched, e.g. validation_loss or validation_accuracy"
)


def _cosine(warmup: Parameter) -> dict[str, Parameter]:
    return {"warmup_steps": warmup, "T_max": _T_MAX, "min_lr": _MIN_LR}


_WARMUP_FORMULA = (
    "warmup (t < W): lr = lr0*(s + (1 - s)*(t + 1)/W), so the first step uses lr0*(s + (1 - s)/W) and step W-1 "
    "uses lr0 (never a zero-rate step); then with u = t - W, D = T_max (default T - W): "
    "lr = min_lr + (lr0 - min_lr)*(1 + cos(pi*min(u, D)/D))/2, held at min_lr after D"
)

SCHEDULES: dict[str, ComponentDef] = {
    definition.name: definition
    for definition in (
        ComponentDef("constant", "lr_schedule", "lr = lr0 at every step (the same as no schedule)", {}),
        ComponentDef(
            "step",
            "lr_schedule",
            "lr = lr0 * gamma^floor(t / step_size)   (the first step_size steps use lr0)",
            {
                "step_size": Parameter("integer", None, "> 0", description="optimizer steps between two decays"),
                "gamma": Parameter("number", 0.1, "(0, 1]", description="factor of each decay"),
            },
        ),
        ComponentDef(
            "exponential",
            "lr_schedule",
            "lr = lr0 * gamma^t   (t = 0 uses lr0)",
            {"gamma": Parameter("number", None, "(0, 1]", description="factor per optimizer step")},
        ),
        ComponentDef(
            "cosine",
            "lr_schedule",
            "W = warmup_steps, s = 0 (no warmup when W = 0): "
            + _WARMUP_FORMULA
            + "   (Loshchilov & Hutter 2017, no restarts)",
            _cosine(Parameter("integer", 0, ">= 0", description="linear warmup steps before the decay")),
        ),
        ComponentDef(
            "linear_warmup_cosine",
            "lr_schedule",
            "cosine with a warmup that is required and may start above 0: W = warmup_steps, s = start_factor: "
            + _WARMUP_FORMULA,
            {
                **_cosine(Parameter("integer", None, "> 0", description="linear warmup steps before the decay")),
                "start_factor": Parameter(
                    "number", 0.0, "[0, 1)", description="the warmup starts from lr0*start_factor (before step 0)"
                ),
            },
        ),
        ComponentDef(
            "one_cycle",
            "lr_schedule",
            "lr0 is the peak; a = lr0/div_factor, z = a/final_div_factor, P = pct_start*T - 1 (the step at the peak): "
            "t <= P: lr = lr0 + (a - lr0)*(1 + cos(pi*t/P))/2; t > P: lr = z + (lr0 - z)*(1 + cos(pi*(t - P)/(T - 1 - P)))/2; "
            "the rate only (momentum is not cycled)   (Smith & Topin 2019; PyTorch's OneCycleLR with anneal_strategy='cos', "
            "three_phase=False)",
            {
                "pct_start": Parameter("number", 0.3, "(0, 1)", description="share of the steps spent rising"),
                "div_factor": Parameter("number", 25.0, ">= 1", description="lr0 / the starting rate"),
                "final_div_factor": Parameter("number", 10000.0, ">= 1", description="starting rate / the final rate"),
            },
        ),
        ComponentDef(
            "reduce_on_plateau",
            "lr_schedule",
            "per EPOCH, after its evaluation: better = metric beats best by more than min_delta in its direction "
            "(harness.measures); better: best = metric, bad = 0; else bad += 1; during cooldown (after a cut) bad stays 0; "
            "when bad > patience: lr = max(lr*factor, min_lr), bad = 0, cooldown starts; the new rate applies from the next "
            "epoch's first step   (PyTorch's ReduceLROnPlateau with threshold_mode='abs')",
            {
                "metric": _MONITOR,
                "factor": Parameter("number", 0.1, "(0, 1)", description="multiplies the rate at each cut"),
                "patience": Parameter("integer", 10, ">= 0", description="epochs without improvement tolerated"),
                "min_delta": Parameter("number", 0.0, ">= 0", description="smallest change that counts as better"),
                "cooldown": Parameter("integer", 0, ">= 0", description="epochs after a cut with no counting"),
                "min_lr": _MIN_LR,
            },
        ),
    )
}
REGISTRIES["lr_schedule"] = SCHEDULES  # `harness list components` and resolve_component see it
PER_EPOCH = ("reduce_on_plateau",)
WARMUP_SCHEDULES = ("cosine", "linear_warmup_cosine")


def resolve_schedule(raw: Any, where: str = "training.lr_schedule") -> Component:
    """`'cosine'` or `{name: cosine, warmup_steps: 100}` -> Component with every parameter explicit.

    Raises:
        SpecError: unknown name or parameter (did-you-mean), a bad value, a required parameter missing.
    """
    component = resolve_component("lr_schedule", raw, where)
    missing = [
        key for key, value in component.params if value is None and not SCHEDULES[component.name].params[key].nullable
    ]
    if missing:
        example = ", ".join(f"{key}: ..." for key in missing)
        raise SpecError(
            f"{where}: schedule {component.name!r} needs {', '.join(repr(key) for key in missing)} "
            f"({SCHEDULES[component.name].params[missing[0]].description}), e.g. {{name: {component.name}, {example}}}."
        )
    if component.name in PER_EPOCH:
        check_metric_name(component["metric"], f"{where}.metric")
    return component


def check_metric_name(metric: Any, where: str) -> str:
    """A monitored metric must be a validation metric: selecting on the test split would leak it.

    Raises:
        SpecError: not a string, a test or training metric, or no measure of that name.
    """
    if not isinstance(metric, str):
        raise SpecError(f"{where}: expected a validation metric name such as {VALIDATION_LOSS}, got {metric!r}.")
    split, _, measure = metric.partition("_")
    if split in HELD_OUT_SPLITS and split != VALIDATION_SPLIT:
        raise SpecError(
            f"{where}: {metric!r} is a test metric; choosing epochs on the test split makes its metrics optimistic. "
            f"Monitor the validation split instead, e.g. {metric_name(VALIDATION_SPLIT, measure)}."
        )
    known = sorted({name for names in TASK_MEASURES.values() for name in names})
    if split != VALIDATION_SPLIT or measure not in known:
        raise SpecError(
            f"{where}: {metric!r} is not a validation metric. Expected validation_<measure> with a measure among "
            f"{', '.join(known)}, e.g. {VALIDATION_LOSS}."
        )
    return metric


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """`training: {early_stopping: {...}}`: stop when the monitored validation metric stops improving."""

    metric: str = VALIDATION_LOSS
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    PARAMETERS: ClassVar[dict[str, Parameter]] = {
        "metric": _MONITOR,
        "patience": Parameter("integer", 5, ">= 1", description="epochs without improvement before stopping"),
        "min_delta": Parameter("number", 0.0, ">= 0", description="smallest change that counts as an improvement"),
        "restore_best": Parameter(
            "bool", True, description="true: the trial ends with the weights of its best epoch (its final metrics)"
        ),
    }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EARLY_STOPPING_FORMULA = (
    "after each epoch e >= 1: better = metric beats best by more than min_delta in its direction (harness.measures); "
    "better: best = metric, best_epoch = e, bad = 0; else bad += 1; stop after the epoch where bad reaches patience. "
    "restore_best: the weights of best_epoch are loaded back and are the trial's final weights and metrics"
)


def resolve_early_stopping(raw: Any, where: str = "training.early_stopping") -> EarlyStoppingSpec:
    """`{metric: validation_loss, patience: 5, min_delta: 0.0, restore_best: true}` (every key optional).

    Raises:
        SpecError: not a mapping, an unknown key (did-you-mean), a bad value, a non-validation metric.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping such as {{metric: validation_loss, patience: 5}}, got {raw!r}.")
    parameters = EarlyStoppingSpec.PARAMETERS
    reject_unknown_keys(raw, list(parameters), where, "early_stopping")
    values = {key: parameters[key].check(value, f"{where}.{key}") for key, value in raw.items()}
    check_metric_name(values.get("metric", VALIDATION_LOSS), f"{where}.metric")
    return EarlyStoppingSpec(**values)


def check_against_data(
    schedule: Component | None,
    early_stopping: EarlyStoppingSpec | None,
    total_steps: int,
    has_validation: bool,
    task_measures: Sequence[str],
    where: str = "training",
) -> None:
    """What only the dataset and the budget can tell: warmup or one_cycle's rise longer than the training,
    a monitored metric the task does not record, monitoring with no validation split.

    Raises:
        SpecError: at `<where>.lr_schedule...` or `<where>.early_stopping...`.
    """
    monitors = []
    if schedule is not None and schedule.name in PER_EPOCH:
        monitors.append((f"{where}.lr_schedule", schedule["metric"], "reduce_on_plateau"))
    if early_stopping is not None:
        monitors.append((f"{where}.early_stopping", early_stopping.metric, "early stopping"))
    for path, metric, what in monitors:
        if not has_validation:
            raise SpecError(
                f"{path}: {what} watches {metric!r}, but the dataset has no validation split. Add one, e.g. "
                "dataset: {name: digits, validation: 0.2}."
            )
        measure = metric.partition("_")[2]
        if measure not in task_measures:
            raise SpecError(
                f"{path}.metric: {metric!r} is not recorded for this dataset's task. Its validation metrics: "
                f"{', '.join(metric_name(VALIDATION_SPLIT, name) for name in task_measures)}."
            )
    if schedule is None:
        return
    if schedule.name in WARMUP_SCHEDULES and schedule["warmup_steps"] >= total_steps:
        raise SpecError(
            f"{where}.lr_schedule.warmup_steps: {schedule['warmup_steps']} warmup steps is not shorter than the whole "
            f"training, {total_steps} optimizer steps (epochs x steps per epoch), so the decay would never start. "
            f"Use fewer than {total_steps}."
        )
    if schedule.name == "one_cycle" and not 1 < schedule["pct_start"] * total_steps < total_steps:
        raise SpecError(
            f"{where}.lr_schedule.pct_start: {schedule['pct_start']} of {total_steps} optimizer steps leaves no step "
            "to rise or to fall; one_cycle needs pct_start*T > 1 and more steps than that. Train longer or change pct_start."
        )


def steps_per_epoch(num_samples: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch (harness.data.batches.epoch_batches draws exactly these)."""
    return num_samples // batch_size if drop_last else -(-num_samples // batch_size)


def _cosine_tail(lr0: float, minimum: float, progress: np.ndarray) -> np.ndarray:
    return minimum + (lr0 - minimum) * (1.0 + np.cos(np.pi * progress)) / 2.0


def step_rates(schedule: Component, lr0: float, steps: np.ndarray, total: int) -> np.ndarray:
    """The canonical learning rate of each optimizer step index in `steps` (float64), per the formulas above.

    Args:
        schedule: a resolved schedule that is not per epoch.
        lr0: the optimizer's lr.
        steps: step indices t (0 = the trial's first step).
        total: T, the trial's total optimizer steps.
    """
    t = np.asarray(steps, dtype=np.float64)
    name = schedule.name
    if name == "constant":
        return np.full_like(t, lr0)
    if name == "step":
        return lr0 * schedule["gamma"] ** np.floor(t / schedule["step_size"])
    if name == "exponential":
        return lr0 * schedule["gamma"] ** t
    if name in WARMUP_SCHEDULES:
        warmup = schedule["warmup_steps"]
        start = schedule.get("start_factor", 0.0)
        span = schedule["T_max"] if schedule["T_max"] is not None else max(total - warmup, 1)
        decay = _cosine_tail(lr0, schedule["min_lr"], np.minimum(np.maximum(t - warmup, 0.0), span) / span)
        if warmup == 0:
            return decay
        rising = lr0 * (start + (1.0 - start) * (t + 1.0) / warmup)
        return np.where(t < warmup, rising, decay)
    if name == "one_cycle":
        low = lr0 / schedule["div_factor"]
        final = low / schedule["final_div_factor"]
        peak = schedule["pct_start"] * total - 1.0
        up = lr0 + (low - lr0) * (1.0 + np.cos(np.pi * t / peak)) / 2.0
        down = _cosine_tail(lr0, final, np.minimum((t - peak) / (total - 1.0 - peak), 1.0))
        return np.where(t <= peak, up, down)
    raise ValueError(f"schedule {name!r} is per epoch: use PlateauState")


@dataclass
class PlateauState:
    """The epoch-level state of reduce_on_plateau (PyTorch's ReduceLROnPlateau, threshold_mode='abs')."""

    schedule: Component
    lr: float
    best: float = math.nan
    bad_epochs: int = 0
    cooldown_left: int = 0

    def after_epoch(self, value: float) -> float:
        """Take the epoch's monitored value; return the rate of the next epoch."""
        if improved(value, self.best, self.schedule["min_delta"], is_higher_better(self.schedule["metric"])):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.schedule["patience"]:
            self.lr = max(self.lr * self.schedule["factor"], self.schedule["min_lr"])
            self.cooldown_left = self.schedule["cooldown"]
            self.bad_epochs = 0
        return self.lr


def improved(value: float, best: float, min_delta: float, higher_is_better: bool) -> bool:
    """Whether `value` beats `best` by more than min_delta (a NaN best: the first finite value always does;
    a non-finite value never does)."""
    if not math.isfinite(value):
        return False
    if math.isnan(best):
        return True
    return value > best + min_delta if higher_is_better else value < best - min_delta
