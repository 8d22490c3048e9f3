"""The one training loop, shared by every adapter (framework-free).

The harness, not the framework, draws the initial weights (shared mode) and the batch
order, times the training loop, evaluates every split with numpy metrics, and detects
divergence. So two backends running the same TrialSpec differ only in what the
adapter realizes: the model's arithmetic and the optimizer rule.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.checkpoints import Checkpoint, Checkpointer
from harness.adapters.metrics import evaluate_outputs
from harness.adapters.result import TrialResult, now, time_limit_error
from harness.adapters.schedules import EarlyStopping, LearningRates
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.diagnostics import DiagnosticsSpec, probe_rows
from harness.errors import HarnessError
from harness.measures import (
    DIVERGED,
    LOSS,
    MINIBATCH_LOSS,
    OK,
    SPLITS,
    TEST_SPLIT,
    TIMEOUT,
    VALIDATION_SPLIT,
    metric_name,
    output_metric_name,
)
from harness.spec.init import initial_weights
from harness.spec.schedules import steps_per_epoch
from harness.spec.types import ModelOutput, TrialSpec
from harness.weights import KeptWeights


def evaluate_splits(
    model: Any,
    data: Dataset,
    epoch: int,
    outputs: tuple[ModelOutput, ...],
    kept: dict[str, np.ndarray] | None = None,
) -> list[tuple[int, str, float]]:
    """Evaluation-mode metrics of every split. With several outputs (graph models): task metrics of
    the first output, `<split>_loss_<output>` per output, and `<split>_loss` = their weighted mean
    (the quantity minimized, see ModelSpec.outputs).

    kept: when given, receives each split's outputs of the first output (the ones the task metrics
    read), so per-example predictions cost no second forward pass."""
    rows: list[tuple[int, str, float]] = []
    task = data.info.task
    for split in SPLITS:
        x, y = data.split(split)
        if len(y) == 0:
            continue
        if len(outputs) == 1:
            split_outputs = model.predict(x)
            if kept is not None:
                kept[split] = split_outputs
            rows.extend(
                (epoch, metric_name(split, name), value)
                for name, value in evaluate_outputs(split_outputs, y, task).items()
            )
            continue
        predictions = model.predict_outputs(x)
        if kept is not None:
            kept[split] = predictions[outputs[0].name]
        first = evaluate_outputs(predictions[outputs[0].name], y, task)
        losses = {output.name: evaluate_outputs(predictions[output.name], y, task)[LOSS] for output in outputs}
        total_weight = sum(output.weight for output in outputs)
        first[LOSS] = sum(output.weight * losses[output.name] for output in outputs) / total_weight
        rows.extend((epoch, metric_name(split, name), value) for name, value in first.items())
        rows.extend(
            (epoch, output_metric_name(metric_name(split, LOSS), name), value) for name, value in losses.items()
        )
    return rows


def compact_predictions(outputs: np.ndarray, task: str, classes: int) -> np.ndarray | None:
    """Per-example predictions of one split, compact enough to store for every trial: the predicted
    class (uint8, or uint16 beyond 256 classes) for classification, 0/1 (uint8) for binary, the
    outputs as float32 for regression; None for sequence tasks (a decoded string per example has no
    fixed width, and McNemar/bootstrap on exact-string accuracy is left for later). Derived exactly
    as harness.adapters.metrics.evaluate_outputs derives accuracy, so stored accuracy equals
    mean(predictions == labels)."""
    values = outputs.astype(np.float64)
    if task == "classification":
        return values.argmax(axis=1).astype(np.uint8 if classes <= 256 else np.uint16)
    if task == "binary":
        return (values.reshape(-1) > 0).astype(np.uint8)
    if task == "regression":
        return outputs.astype(np.float32)
    return None


class _PredictionKeeper:
    """Keeps the test split's per-example predictions of the last evaluated epoch and of the epoch of
    least validation loss (the first such epoch; only when the dataset has a validation split)."""

    def __init__(self, data: Dataset) -> None:
        self.task = data.info.task
        self.classes = int(data.info.num_outputs)  # argmax ranges over the output units
        self.enabled = self.task != "sequence" and len(data.split(TEST_SPLIT)[1]) > 0
        self.last: tuple[int, np.ndarray] | None = None
        self.best: tuple[int, np.ndarray] | None = None
        self.best_loss = math.inf

    def outputs(self) -> dict[str, np.ndarray] | None:
        """A fresh dict for evaluate_splits to fill, or None when nothing is kept."""
        return {} if self.enabled else None

    def after_evaluation(
        self, epoch: int, kept: dict[str, np.ndarray] | None, rows: list[tuple[int, str, float]]
    ) -> None:
        if kept is None or TEST_SPLIT not in kept:
            return
        values = compact_predictions(kept[TEST_SPLIT], self.task, self.classes)
        if values is None:
            return
        self.last = (epoch, values)
        validation_loss = next((value for _, name, value in rows if name == metric_name(VALIDATION_SPLIT, LOSS)), None)
        if validation_loss is not None and math.isfinite(validation_loss) and validation_loss < self.best_loss:
            self.best_loss, self.best = validation_loss, (epoch, values)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON values, arrays) for a checkpoint."""
        meta: dict[str, Any] = {"best_loss": self.best_loss}
        arrays = {}
        for name, kept in (("last", self.last), ("best", self.best)):
            meta[name] = kept[0] if kept is not None else None
            if kept is not None:
                arrays[name] = kept[1]
        return meta, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.best_loss = float(meta["best_loss"])
        self.last = (int(meta["last"]), arrays["last"]) if meta["last"] is not None else None
        self.best = (int(meta["best"]), arrays["best"]) if meta["best"] is not None else None

    def rows(self) -> list[tuple[str, int, bool, bool, np.ndarray]]:
        """TrialResult.predictions rows: final first, then best validation when it is another epoch."""
        if self.last is None:
            return []
        final_epoch, final_values = self.last
        best_epoch = self.best[0] if self.best is not None else None
        rows = [(TEST_SPLIT, final_epoch, True, best_epoch == final_epoch, final_values)]
        if self.best is not None and best_epoch != final_epoch:
            rows.append((TEST_SPLIT, self.best[0], False, True, self.best[1]))
        return rows


class _Probe:
    """Diagnostics at the suite's chosen epochs (harness.diagnostics), timed apart from training.
    Does nothing, and costs one dict lookup per epoch, when the spec has no diagnostics."""

    def __init__(self, spec: TrialSpec, data: Dataset, result: TrialResult) -> None:
        self.config = DiagnosticsSpec.from_extras(spec.extras)
        self.result = result
        self.previous: dict[str, np.ndarray] | None = None
        if self.config is not None:
            self.epochs = set(self.config.epochs)
            self.plans = spec.model.plan(data.info.input_shape)
            self.x = data.x_train[: self.config.samples]  # the fixed probe batch: first `samples` training samples
            self.y = data.y_train[: self.config.samples]

    def before_epoch(self, model: Any, epoch: int) -> None:
        if self.config is not None and epoch in self.epochs:
            started = time.perf_counter()
            self.previous = model.get_weights()  # update_ratio compares against the weights before the epoch
            self.result.diagnostics_seconds += time.perf_counter() - started

    def after_epoch(self, model: Any, epoch: int) -> None:
        if self.config is None or epoch not in self.epochs:
            return
        started = time.perf_counter()
        rows = probe_rows(
            model, self.plans, self.x, self.y, epoch, self.config.bins, self.previous if epoch > 0 else None
        )
        self.result.diagnostics.extend(rows)
        self.previous = None
        self.result.diagnostics_seconds += time.perf_counter() - started


def train_trial(spec: TrialSpec, adapter: Any, data: Dataset, checkpoints: str | Path | None = None) -> TrialResult:
    """Run one trial to its end (ok, diverged or timeout). Exceptions propagate to the runner.

    checkpoints: the folder of resumable checkpoints (harness.adapters.checkpoints): a checkpoint of
    this trial there is resumed, new ones are written as training.checkpoint_every says, and it is
    removed at the end. None: no checkpoints.
    """
    started = time.perf_counter()
    result = TrialResult(
        status=OK, started_at=now(), versions=adapter.versions(), device=adapter.device_info(spec.device)
    )
    checkpointer = Checkpointer(spec, checkpoints, result.versions, lambda *event: result.events.append(event))
    outputs = spec.model.outputs()
    keeper = _PredictionKeeper(data)
    kept_weights = KeptWeights(spec.training.save_weights)
    model = _fresh_model(spec, adapter, data)

    def evaluate(epoch: int) -> list[tuple[int, str, float]]:
        evaluation_start, compiled_before = time.perf_counter(), _compiled(model)
        kept = keeper.outputs()
        rows = evaluate_splits(model, data, epoch, outputs, kept)
        result.metrics.extend(rows)
        keeper.after_evaluation(epoch, kept, rows)
        kept_weights.after_evaluation(model, epoch, rows)
        _add_seconds(result, "eval_seconds", time.perf_counter() - evaluation_start, _compiled(model) - compiled_before)
        return rows

    probe = _Probe(spec, data, result)
    num_steps = steps_per_epoch(len(data.y_train), spec.training.batch_size, spec.training.drop_last)
    rates = LearningRates(spec.training, spec.optimizer["lr"], num_steps)
    stopping = EarlyStopping(spec.training.early_stopping)
    first_epoch = _resume(checkpointer, model, result, keeper, kept_weights, rates, stopping)
    if first_epoch is None:  # no usable checkpoint: from zero
        if result.events:  # one was discarded, maybe half restored: start from what a fresh trial has
            model, keeper, kept_weights = (
                _fresh_model(spec, adapter, data),
                _PredictionKeeper(data),
                KeptWeights(spec.training.save_weights),
            )
            rates = LearningRates(spec.training, spec.optimizer["lr"], num_steps)
            stopping = EarlyStopping(spec.training.early_stopping)
        first_epoch = 1
        evaluate(0)
        probe.after_epoch(model, 0)

    for epoch in range(first_epoch, spec.training.epochs + 1):
        batches = epoch_batches(len(data.y_train), spec.training, spec.seed, epoch)
        epoch_rates = rates.epoch_rates(epoch, len(batches))
        probe.before_epoch(model, epoch)
        step_start, compiled_before = time.perf_counter(), _compiled(model)
        losses = model.train_epoch(batches, epoch_rates) if rates.active else model.train_epoch(batches)
        _add_seconds(result, "train_seconds", time.perf_counter() - step_start, _compiled(model) - compiled_before)
        mean_loss = float(np.mean(losses)) if len(losses) else float("nan")
        result.metrics.append((epoch, MINIBATCH_LOSS, mean_loss))
        result.metrics.extend(rates.rows(epoch, epoch_rates))
        if len(outputs) > 1:
            for name, output_losses in model.output_losses.items():
                result.metrics.append((epoch, output_metric_name(MINIBATCH_LOSS, name), float(np.mean(output_losses))))
        if not math.isfinite(mean_loss):
            result.status, result.diverged_epoch = DIVERGED, epoch
            break
        evaluated = spec.training.evaluates(epoch)  # training.eval_every; the last epoch always
        # an epoch not evaluated has no rows: schedules and early stopping skip it
        rows = evaluate(epoch) if evaluated else []
        result.epochs_completed = epoch
        probe.after_epoch(model, epoch)
        rates.after_evaluation(rows)
        if stopping.after_epoch(epoch, rows, model):
            break
        limit = spec.training.max_seconds
        if limit is not None and time.perf_counter() - started > limit:
            if not evaluated:  # the epoch it stops after is its final one: always evaluated
                evaluate(epoch)
            result.status = TIMEOUT
            result.error = time_limit_error(limit, epoch)
            break
        checkpointer.kill_if_planned(epoch)
        if checkpointer.due(epoch):
            checkpointer.save(epoch, partial(_checkpoint, epoch, model, result, keeper, kept_weights, rates, stopping))
    checkpointer.remove()
    result.checkpoint_seconds = checkpointer.seconds
    if result.status != DIVERGED:

        def evaluate_restored(epoch: int) -> list[tuple[int, str, float]]:
            kept = keeper.outputs()
            restored = evaluate_splits(model, data, epoch, outputs, kept)
            keeper.after_evaluation(epoch, kept, restored)
            return restored

        stopping.finish(result.epochs_completed, result.metrics, model, evaluate_restored)
    chosen = kept_weights.chosen(model, result.status, result.epochs_completed)
    if chosen is not None:
        result.weights, result.weights_epoch = chosen
    result.predictions = keeper.rows()
    release = getattr(adapter, "release", None)  # optional (base.Adapter): the adapter may reuse the model
    if release is not None:
        release(model)
    result.wall_seconds = time.perf_counter() - started
    result.finished_at = now()
    return result


def _compiled(model: Any) -> float:
    """The model's compile time so far (base.Model.compile_seconds; 0 for a model that compiles nothing)."""
    return float(getattr(model, "compile_seconds", 0.0))


def _add_seconds(result: TrialResult, field_name: str, elapsed: float, compiled: float) -> None:
    """Book a timed region: what the model spent compiling inside it to compile_seconds, the rest to `field_name`."""
    result.compile_seconds += compiled
    setattr(result, field_name, getattr(result, field_name) + elapsed - compiled)


def _fresh_model(spec: TrialSpec, adapter: Any, data: Dataset) -> Any:
    """The trial's model at its start: built, initial weights loaded (shared mode), training data on the device."""
    model = adapter.build(spec, data.info)
    if spec.init_mode == "shared":
        model.set_weights(shared_weights(spec, model, data))
    model.set_training_data(data.x_train, data.y_train)
    return model


def shared_weights(spec: TrialSpec, model: Any, data: Dataset) -> dict[str, np.ndarray]:
    """The trial's shared initial weights: numpy draws per canonical tensor (harness.spec.init), for a paired
    Python model over the tensors the built model holds (harness.adapters.python_models.shared_initial_weights)."""
    if spec.model.python:
        from harness.adapters.python_models import shared_initial_weights

        if not spec.model.paired:  # the suite loader pairs (or refuses) before any trial runs
            raise HarnessError(
                "init_mode shared: this Python model's torch and Keras parameters are not paired (model.names), "
                "so no shared initial weights can be drawn for them; a spec not resolved by harness.suite.load_suite?"
            )

        shapes = {key: value.shape for key, value in model.get_weights().items()}
        return shared_initial_weights(shapes, spec.initializer, spec.seed)
    return initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed)


# Checkpoint arrays of the loop's own state: "<part>/<name>"
PREDICTIONS, WEIGHTS, STOPPING = "predictions/", "weights/", "stopping/"


def _checkpoint(
    epoch: int,
    model: Any,
    result: TrialResult,
    keeper: _PredictionKeeper,
    kept_weights: KeptWeights,
    rates: LearningRates,
    stopping: EarlyStopping,
) -> Checkpoint:
    """Everything the rest of the trial reads, after `epoch` (harness.adapters.checkpoints)."""
    model_arrays, model_meta = model.training_state()
    keeper_meta, keeper_arrays = keeper.state()
    weights_meta, weights_arrays = kept_weights.state()
    stopping_meta, stopping_arrays = stopping.state()
    loop_meta = {
        "metrics": result.metrics,
        "diagnostics": result.diagnostics,
        "seconds": [result.train_seconds, result.eval_seconds, result.diagnostics_seconds, result.compile_seconds],
        "epochs_completed": result.epochs_completed,
        "predictions": keeper_meta,
        "weights": weights_meta,
        "schedule": rates.state(),
        "stopping": stopping_meta,
    }
    loop_arrays = {PREDICTIONS + key: value for key, value in keeper_arrays.items()}
    loop_arrays.update({WEIGHTS + key: value for key, value in weights_arrays.items()})
    loop_arrays.update({STOPPING + key: value for key, value in stopping_arrays.items()})
    return Checkpoint(epoch, model_arrays, model_meta, loop_arrays, loop_meta)


def _resume(
    checkpointer: Checkpointer,
    model: Any,
    result: TrialResult,
    keeper: _PredictionKeeper,
    kept_weights: KeptWeights,
    rates: LearningRates,
    stopping: EarlyStopping,
) -> int | None:
    """Restore the trial's checkpoint into the model and the loop: the first epoch still to run, or None
    (no checkpoint, or one that did not fit: discarded, reported, and the model must be rebuilt)."""
    checkpoint = checkpointer.resume()
    if checkpoint is None:
        return None
    meta, arrays = checkpoint.loop_meta, checkpoint.loop_arrays
    try:
        model.restore_training_state(checkpoint.model_arrays, checkpoint.model_meta)
        keeper.restore(meta["predictions"], _part(arrays, PREDICTIONS))
        kept_weights.restore(meta["weights"], _part(arrays, WEIGHTS))
        rates.restore(meta["schedule"])
        stopping.restore(meta["stopping"], _part(arrays, STOPPING))
        metrics = [(int(epoch), str(name), float(value)) for epoch, name, value in meta["metrics"]]
        diagnostics = [
            (int(e), int(layer), str(n), str(stat), float(v)) for e, layer, n, stat, v in meta["diagnostics"]
        ]
        # compile_seconds is the fourth since it was recorded; a checkpoint written before has three
        train_seconds, eval_seconds, diagnostics_seconds, compile_seconds = (
            float(value) for value in [*meta["seconds"], 0.0][:4]
        )
        epochs_completed = int(meta["epochs_completed"])
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        checkpointer.discard(f"it does not fit this trial's model ({type(error).__name__}: {error})")
        return None
    result.metrics, result.diagnostics = metrics, diagnostics
    result.train_seconds, result.eval_seconds = train_seconds, eval_seconds
    result.diagnostics_seconds, result.epochs_completed = diagnostics_seconds, epochs_completed
    result.compile_seconds = compile_seconds
    checkpointer.resumed_at(checkpoint.epoch)
    return checkpoint.epoch + 1


def _part(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
