"""The learning-rate schedule and early stopping as the training loop runs them (framework-free).

The rates come from ONE canonical function (harness.spec.schedules.step_rates, or PlateauState per
epoch); the loop hands each epoch's rates to `Model.train_epoch`, and each adapter sets them on its
optimizer before each step. So no framework scheduler (PyTorch's LRScheduler, Keras'
LearningRateSchedule) is involved, and both backends use the same float64 rate per step (Keras
stores it in its float32 learning-rate variable; torch passes it as a Python float, see
docs/semantics.md, "Learning-rate schedules").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.measures import BEST_EPOCH, LEARNING_RATE, RESTORED_EPOCH, STOPPED_EPOCH, is_higher_better
from harness.spec.schedules import PER_EPOCH, EarlyStoppingSpec, PlateauState, improved, step_rates
from harness.spec.types import TrainingSpec

Rows = list[tuple[int, str, float]]


def monitored(rows: Sequence[tuple[int, str, float]], metric: str) -> float | None:
    """The value of `metric` among an epoch's rows; None when the epoch has no such row (not evaluated):
    such an epoch neither improves nor counts against patience."""
    return next((value for _, name, value in rows if name == metric), None)


class LearningRates:
    """Each epoch's per-step rates, and the `lr` metric. Inactive (None rates, no rows) without a schedule."""

    def __init__(self, training: TrainingSpec, lr0: float, steps_per_epoch: int) -> None:
        self.schedule = training.lr_schedule
        self.total = training.epochs * steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.plateau = (
            PlateauState(self.schedule, lr0) if self.schedule is not None and self.schedule.name in PER_EPOCH else None
        )
        self.lr0 = lr0

    @property
    def active(self) -> bool:
        return self.schedule is not None

    def epoch_rates(self, epoch: int, steps: int) -> np.ndarray | None:
        """The rate of each of epoch `epoch`'s `steps` optimizer steps (epochs count from 1), or None."""
        if self.schedule is None:
            return None
        if self.plateau is not None:
            return np.full(steps, self.plateau.lr)
        first = (epoch - 1) * self.steps_per_epoch
        return step_rates(self.schedule, self.lr0, np.arange(first, first + steps), self.total)

    def rows(self, epoch: int, rates: np.ndarray | None) -> Rows:
        if rates is None or len(rates) == 0:
            return []
        return [(epoch, LEARNING_RATE, float(np.mean(rates)))]

    def state(self) -> dict[str, Any] | None:
        """reduce_on_plateau's epoch-level state for a checkpoint (the step schedules are functions of the step)."""
        if self.plateau is None:
            return None
        plateau = self.plateau
        return {"lr": plateau.lr, "best": plateau.best, "bad": plateau.bad_epochs, "cooldown": plateau.cooldown_left}

    def restore(self, state: dict[str, Any] | None) -> None:
        if (state is None) != (self.plateau is None):
            raise ValueError("the checkpoint's learning-rate schedule state does not match this trial's schedule")
        if self.plateau is not None and state is not None:
            self.plateau.lr, self.plateau.best = float(state["lr"]), float(state["best"])
            self.plateau.bad_epochs, self.plateau.cooldown_left = int(state["bad"]), int(state["cooldown"])

    def after_evaluation(self, rows: Sequence[tuple[int, str, float]]) -> None:
        if self.plateau is not None and self.schedule is not None:
            value = monitored(rows, self.schedule["metric"])
            if value is not None:
                self.plateau.after_epoch(value)


class EarlyStopping:
    """Watches a validation metric after each epoch; keeps the best epoch's weights when it must restore them."""

    def __init__(self, spec: EarlyStoppingSpec | None) -> None:
        self.spec = spec
        self.best = math.nan
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.higher = is_higher_better(spec.metric) if spec is not None else False

    def after_epoch(self, epoch: int, rows: Sequence[tuple[int, str, float]], model: Any) -> bool:
        """Take epoch `epoch`'s evaluation; True when training must stop after it."""
        if self.spec is None:
            return False
        value = monitored(rows, self.spec.metric)
        if value is None:
            return False
        if improved(value, self.best, self.spec.min_delta, self.higher):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.spec.restore_best:
                self.best_weights = model.get_weights()
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.spec.patience

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON values, arrays: the kept best weights) for a checkpoint."""
        meta = {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad_epochs}
        return meta, dict(self.best_weights or {})

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.best, self.best_epoch, self.bad_epochs = float(meta["best"]), int(meta["best_epoch"]), int(meta["bad"])
        self.best_weights = dict(arrays) if arrays else None

    def finish(self, last_epoch: int, result_metrics: Rows, model: Any, evaluate: Callable[[int], Rows]) -> None:
        """After the last trained epoch: restore the best weights (restore_best), replace that epoch's
        evaluation rows by the restored weights' evaluation, and record the epochs.

        Args:
            last_epoch: the last epoch trained (the stop, or the budget's end).
            result_metrics: the trial's rows so far, changed in place.
            model: the trained model.
            evaluate: evaluates the model as it is now, returning rows at the given epoch.
        """
        if self.spec is None or last_epoch < 1:
            return
        final = last_epoch
        if self.spec.restore_best and self.best_weights is not None:
            model.set_weights(self.best_weights)
            final = self.best_epoch
            restored = evaluate(final)
            names = {name for _, name, _ in restored}
            result_metrics[:] = [row for row in result_metrics if not (row[0] == final and row[1] in names)]
            result_metrics.extend(restored)
            result_metrics.append((final, RESTORED_EPOCH, float(final)))
        result_metrics.append((final, STOPPED_EPOCH, float(last_epoch)))
        result_metrics.append((final, BEST_EPOCH, float(self.best_epoch) if self.best_epoch else math.nan))
