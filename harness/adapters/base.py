"""The contract every adapter realizes (torch and keras mirror each other file for file).

An adapter builds a `Model` from a TrialSpec. The harness's own loop (loop.py) drives it:
it draws the initial weights and the batch order, times the training, evaluates and
detects divergence, so those are identical whatever the framework.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from harness.data.types import DatasetInfo
from harness.spec.types import TrialSpec


class Model(Protocol):
    """A built model in one framework, with its optimizer and loss, ready to train."""

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical-layout float32 arrays keyed like `harness.spec.weight_key`; resets optimizer state."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """Return every trainable tensor as a float32 numpy array in canonical layout."""

    def training_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything the next optimizer step reads - every model tensor, the optimizer's state, the
        framework RNG states - as (numpy arrays, JSON-able values), for checkpoints."""

    def restore_training_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Take back what training_state returned, into a model built from the same spec; the steps
        that follow are then bit-identical to those of the model that saved it. ValueError if it does not fit."""

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once, so steps only index it."""

    def train_epoch(self, batches: list[np.ndarray], learning_rates: np.ndarray | None = None) -> np.ndarray:
        """One optimizer step per index array -> float64 array of each step's data loss (penalties excluded).

        learning_rates: one per step, set on the optimizer (rule and decoupled decay) before that step
        (harness.spec.schedules); None leaves the optimizer's lr as it is.

        The step minimizes data loss + l1/l2 penalties; gradients are clipped, then the canonical
        optimizer rule (with decoupled weight decay) is applied. Non-finite losses are returned as they are.
        """

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The (first) output (logits, or regression predictions) in evaluation mode, float32 (N, outputs)."""

    def predict_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of a multi-output model by name (ModelSpec.outputs()), evaluation mode."""

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Evaluation-mode output of EVERY layer (plan order: harness.spec LayerPlan index), float32,
        canonical channels-last layout; a dense layer's output is after its activation.
        Used by diagnostics only; statistics are computed from these in numpy (shared code)."""

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of the minimized objective (data loss + penalties, training mode) at the current
        weights on one batch, per canonical weight key (trainable tensors), BEFORE clipping.
        Changes nothing: no update, no optimizer state, no batch_norm running statistics."""

    # output_losses: dict[str, np.ndarray] - each output's per-step losses of the last train_epoch
    # (only read for models with several outputs).
    # compile_seconds: float (optional, 0 when absent) - seconds the model spent so far tracing and compiling
    # its functions (Keras: tf.function traces, XLA compiles), inside train_epoch and predict; the loop moves
    # what a timed region added to TrialResult.compile_seconds, out of train_seconds and eval_seconds.


class Adapter(Protocol):
    """One framework (or one Keras backend)."""

    name: str

    def configure(self, threads: int | None) -> None:
        """Process-wide setup once per worker: thread count, determinism flags."""

    def versions(self) -> dict[str, str]:
        """Framework versions to record with every trial, e.g. {'torch': '2.13.0'}."""

    def device_info(self, device: str) -> dict[str, str]:
        """What device a trial asking for `device` runs on, as the framework sees it."""

    def build(self, spec: TrialSpec, info: DatasetInfo) -> Model:
        """Build model + loss + optimizer realizing the spec's canonical meaning; seed the framework RNG."""

    # release(model) -> None (optional): the loop calls it when a trial is done with the model it built; the
    # adapter may hand that model to a later build (KerasAdapter: harness.adapters.keras.reuse). A model
    # that is never released is never reused, so callers that build models for other uses need not care.
