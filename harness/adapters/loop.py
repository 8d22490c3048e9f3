"""The one training loop, shared by every adapter (framework-free).

The harness, not the framework, draws the initial weights (shared mode) and the batch
order, times the training loop, evaluates every split with numpy metrics, and detects
divergence. So two backends running the same TrialSpec differ only in what the
adapter realizes: the model's arithmetic and the optimizer rule.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from harness.adapters.metrics import evaluate_outputs
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.diagnostics import DiagnosticsSpec, probe_rows
from harness.measures import DIVERGED, LOSS, MINIBATCH_LOSS, OK, SPLITS, TIMEOUT, metric_name, output_metric_name
from harness.spec.init import initial_weights
from harness.spec.types import ModelOutput, TrialSpec


@dataclass
class TrialResult:
    """What one trial produced. Metrics are (epoch, name, value) rows; epoch 0 is before training.

    Metric names (harness.measures): '<split>_<measure>' for every split (evaluation mode, whole
    split, after the epoch) and 'minibatch_loss' (mean training-mode data loss over the epoch's steps).
    """

    status: str  # one of harness.measures.TRIAL_STATUSES
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    # (epoch, layer index, layer name, statistic, value) rows of harness.diagnostics; empty when off
    diagnostics: list[tuple[int, int, str, str, float]] = field(default_factory=list)
    diagnostics_seconds: float = 0.0  # wall time of the diagnostics probes (in wall_seconds, not train_seconds)
    train_seconds: float = 0.0  # wall time of the optimizer steps alone (what benchmarks compare)
    eval_seconds: float = 0.0
    wall_seconds: float = 0.0  # the whole trial in the worker: build, load, train, evaluate
    epochs_completed: int = 0
    diverged_epoch: int | None = None
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    started_at: str = ""
    finished_at: str = ""

    def final(self) -> dict[str, float]:
        """The metrics of the last recorded epoch."""
        if not self.metrics:
            return {}
        last = max(epoch for epoch, _, _ in self.metrics)
        return {name: value for epoch, name, value in self.metrics if epoch == last}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def evaluate_splits(
    model: Any, data: Dataset, epoch: int, outputs: tuple[ModelOutput, ...]
) -> list[tuple[int, str, float]]:
    """Evaluation-mode metrics of every split. With several outputs (graph models): task metrics of
    the first output, `<split>_loss_<output>` per output, and `<split>_loss` = their weighted mean
    (the quantity minimized, see ModelSpec.outputs)."""
    rows = []
    task = data.info.task
    for split in SPLITS:
        x, y = data.split(split)
        if len(y) == 0:
            continue
        if len(outputs) == 1:
            rows.extend(
                (epoch, metric_name(split, name), value)
                for name, value in evaluate_outputs(model.predict(x), y, task).items()
            )
            continue
        predictions = model.predict_outputs(x)
        first = evaluate_outputs(predictions[outputs[0].name], y, task)
        losses = {output.name: evaluate_outputs(predictions[output.name], y, task)[LOSS] for output in outputs}
        total_weight = sum(output.weight for output in outputs)
        first[LOSS] = sum(output.weight * losses[output.name] for output in outputs) / total_weight
        rows.extend((epoch, metric_name(split, name), value) for name, value in first.items())
        rows.extend(
            (epoch, output_metric_name(metric_name(split, LOSS), name), value) for name, value in losses.items()
        )
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


def train_trial(spec: TrialSpec, adapter: Any, data: Dataset) -> TrialResult:
    """Run one trial to its end (ok, diverged or timeout). Exceptions propagate to the runner."""
    started = time.perf_counter()
    result = TrialResult(
        status=OK, started_at=now(), versions=adapter.versions(), device=adapter.device_info(spec.device)
    )
    model = adapter.build(spec, data.info)
    if spec.init_mode == "shared":
        model.set_weights(initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed))
    model.set_training_data(data.x_train, data.y_train)

    evaluation_start = time.perf_counter()
    outputs = spec.model.outputs()
    result.metrics.extend(evaluate_splits(model, data, 0, outputs))
    result.eval_seconds += time.perf_counter() - evaluation_start
    probe = _Probe(spec, data, result)
    probe.after_epoch(model, 0)

    for epoch in range(1, spec.training.epochs + 1):
        batches = epoch_batches(len(data.y_train), spec.training, spec.seed, epoch)
        probe.before_epoch(model, epoch)
        step_start = time.perf_counter()
        losses = model.train_epoch(batches)
        result.train_seconds += time.perf_counter() - step_start
        mean_loss = float(np.mean(losses)) if len(losses) else float("nan")
        result.metrics.append((epoch, MINIBATCH_LOSS, mean_loss))
        if len(outputs) > 1:
            for name, output_losses in model.output_losses.items():
                result.metrics.append((epoch, output_metric_name(MINIBATCH_LOSS, name), float(np.mean(output_losses))))
        if not math.isfinite(mean_loss):
            result.status, result.diverged_epoch = DIVERGED, epoch
            break
        evaluation_start = time.perf_counter()
        result.metrics.extend(evaluate_splits(model, data, epoch, outputs))
        result.eval_seconds += time.perf_counter() - evaluation_start
        result.epochs_completed = epoch
        probe.after_epoch(model, epoch)
        limit = spec.training.max_seconds
        if limit is not None and time.perf_counter() - started > limit:
            result.status = TIMEOUT
            result.error = f"training.max_seconds={limit} exceeded after epoch {epoch}"
            break
    result.wall_seconds = time.perf_counter() - started
    result.finished_at = now()
    return result
