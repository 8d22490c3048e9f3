"""What one trial produced (`TrialResult`), apart from the training loop that produces it (harness.adapters.loop).

The runner's driver and workers import this module, not the loop: the loop pulls in the metrics, data and
checkpoint code (scipy, safetensors), which a driver never needs and a worker needs only once its first
trial arrives, so a worker can start importing its framework sooner.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from harness.measures import RESTORED_EPOCH

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TrialResult", "now", "time_limit_error"]


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
    # wall time of tracing and compiling the framework's functions (Keras: tf.function traces, XLA compiles),
    # taken out of train_seconds and eval_seconds, where it happened; 0 for torch (eager) and a reused Keras model
    compile_seconds: float = 0.0
    checkpoint_seconds: float = 0.0  # wall time of writing checkpoints in this process (in wall_seconds only)
    wall_seconds: float = 0.0  # the whole trial in the worker: build, load, train, evaluate
    epochs_completed: int = 0
    diverged_epoch: int | None = None
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    started_at: str = ""
    finished_at: str = ""
    # Per-example test predictions (compact_predictions): (split, epoch, is_final, is_best_validation,
    # values) rows, at the final epoch and at the epoch of least validation loss (one row when they
    # coincide). Plain tuples, not a dataclass: dataclasses.asdict (the Ray path) would turn one into a dict.
    predictions: list[tuple[str, int, bool, bool, np.ndarray]] = field(default_factory=list)
    # training.save_weights: the canonical weights to store (empty: none) and the epoch they are of
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    weights_epoch: int | None = None
    # (epoch, event, detail) rows of what happened to the trial's checkpoints (harness.adapters.checkpoints)
    events: list[tuple[int, str, str]] = field(default_factory=list)
    # harness.provenance: the worker's code and environment (git, packages hash, CPU, threads), and the
    # lists it names by hash ({hash: (kind, JSON)}); set by the worker, once computed per process
    provenance: dict[str, Any] = field(default_factory=dict)
    provenance_blobs: dict[str, tuple[str, str]] = field(default_factory=dict)

    def final(self) -> dict[str, float]:
        """The metrics of the last recorded epoch."""
        if not self.metrics:
            return {}
        last = max(epoch for epoch, _, _ in self.metrics)
        # early stopping with restore_best ends the trial at its best epoch (harness.measures.RESTORED_EPOCH)
        last = next((epoch for epoch, name, _ in self.metrics if name == RESTORED_EPOCH), last)
        return {name: value for epoch, name, value in self.metrics if epoch == last}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def time_limit_error(limit: float, epoch: int) -> str:
    """TrialResult.error of a trial stopped by training.max_seconds after `epoch` (status 'timeout')."""
    return f"training.max_seconds={limit} exceeded after epoch {epoch}"
