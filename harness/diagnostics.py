"""Training diagnostics: per-layer activation and gradient statistics, one definition for every backend.

Opt-in per suite:

    diagnostics: {epochs: [0, 1, 5, last], samples: 1000, bins: 50}

At each chosen epoch (0 = the initial weights, `last` = the final epoch) the loop hands the
model a fixed probe batch - the first `samples` training samples - and this module turns what
the adapter returns (`Model.layer_outputs`, `Model.gradients`, `Model.get_weights`) into rows
`(epoch, layer, layer_name, statistic, value)`. Every statistic is computed here, in numpy, so
PyTorch and Keras are measured with the same arithmetic.

Statistics of layer L (plan index L, name '<L>.<kind>') at epoch e:
    activation_mean, activation_std   over every element of the layer's output on the probe batch
                                      (a dense layer's output is after its activation; std ddof=0)
    fraction_saturated                sigmoid: a < 0.05 or a > 0.95; tanh: |a| > 0.95
                                      (Saito, "Deep Learning from Scratch", chapter 6)
    fraction_zero                     relu: fraction of elements exactly 0 ("dead" for this batch)
    histogram.<k>, k = 0..bins-1      fraction of elements in bin k of `bins` equal bins over
                                      [histogram_low, histogram_high]; the range is FIXED per
                                      activation (ACTIVATION_RANGES) so arms and epochs compare;
                                      values outside fall into the first/last bin (clipped)
    fraction_outside                  fraction of elements outside [histogram_low, histogram_high]
    gradient_norm                     sqrt(sum of squared gradient elements) over the layer's trainable
                                      tensors: gradient of data loss + penalties on the probe batch,
                                      training mode, before clipping
    weight_norm                       sqrt(sum of squares) over the layer's trainable tensors
    update_ratio                      ||W(e) - W(e-1)|| / ||W(e-1)|| over the layer's trainable
                                      tensors: the relative change made by epoch e's updates (e >= 1)
A row (epoch, -1, '', 'seconds', s) records the wall time the diagnostics took (not in train_seconds).
Non-finite elements (a diverged model) are left out of every activation statistic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import SpecError
from harness.spec.layer_types import LayerPlan

EXTRAS_KEY = "diagnostics"  # TrialSpec.extras key; absent = diagnostics off (and the hash unchanged)
DEFAULT_EPOCHS: tuple[int | str, ...] = (0, 1, "last")
DEFAULT_SAMPLES = 1000
DEFAULT_BINS = 50
SIGMOID_SATURATION = (0.05, 0.95)  # sigmoid a < 0.05 or a > 0.95 counts as saturated
TANH_SATURATION = 0.95  # tanh |a| > 0.95 counts as saturated
# Fixed histogram range per activation, so histograms of different arms and epochs share bins.
# Unbounded activations: a range holding a unit-scale signal (He-initialized nets keep rms ~1).
ACTIVATION_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "softmax": (0.0, 1.0),
    "relu": (0.0, 4.0),
    "leaky_relu": (-1.0, 4.0),
    "elu": (-1.0, 4.0),
    "gelu": (-0.5, 4.0),
}
DEFAULT_RANGE = (-4.0, 4.0)  # linear outputs (logits) and layers without an activation
LAYER_STATISTIC = -1  # `layer` of rows that are not about one layer (the timing row)

Row = tuple[int, int, str, str, float]  # (epoch, layer index, layer name, statistic, value)


@dataclass(frozen=True)
class DiagnosticsSpec:
    """Which epochs to probe, with how many training samples, and how many histogram bins."""

    epochs: tuple[int, ...]  # resolved: sorted, distinct, each in 0..training epochs
    samples: int = DEFAULT_SAMPLES  # the probe batch: the first `samples` training samples
    bins: int = DEFAULT_BINS

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "samples": self.samples, "bins": self.bins}

    @classmethod
    def from_extras(cls, extras: Sequence[tuple[str, Any]]) -> DiagnosticsSpec | None:
        """The spec stored in TrialSpec.extras, or None when diagnostics are off."""
        data = dict(extras).get(EXTRAS_KEY)
        if data is None:
            return None
        return cls(tuple(int(e) for e in data["epochs"]), int(data["samples"]), int(data["bins"]))


def resolve_diagnostics(raw: Any, training_epochs: int, where: str = "diagnostics") -> DiagnosticsSpec | None:
    """Check a suite's `diagnostics:` value and resolve `last` to the final epoch.

    Args:
        raw: None/false (off), true (defaults) or a mapping {epochs, samples, bins}.
        training_epochs: the trial's training.epochs.
        where: key path for messages.

    Raises:
        SpecError: an unknown key, an epoch outside 0..training_epochs, a count that is not an int > 0.
    """
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    example = "e.g. diagnostics: {epochs: [0, 1, 5, last], samples: 1000, bins: 50}"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping with keys epochs, samples, bins ({example}), got {raw!r}.")
    unknown = sorted(set(raw) - {"epochs", "samples", "bins"})
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}. Expected keys: epochs, samples, bins ({example}).")
    epochs: list[int] = []
    raw_epochs = raw.get("epochs", list(DEFAULT_EPOCHS))
    if not isinstance(raw_epochs, list) or not raw_epochs:
        raise SpecError(
            f"{where}.epochs: expected a non-empty list of epochs (integers or 'last'), got {raw_epochs!r}."
        )
    for index, epoch in enumerate(raw_epochs):
        if epoch == "last":
            epochs.append(training_epochs)
        elif isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= training_epochs:
            epochs.append(epoch)
        else:
            raise SpecError(
                f"{where}.epochs[{index}]: expected an epoch from 0 (before training) to {training_epochs} "
                f"(training.epochs) or 'last', got {epoch!r}."
            )
    counts = {}
    for key, default in (("samples", DEFAULT_SAMPLES), ("bins", DEFAULT_BINS)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise SpecError(f"{where}.{key}: expected an integer > 0, got {value!r}.")
        counts[key] = value
    return DiagnosticsSpec(tuple(sorted(set(epochs))), counts["samples"], counts["bins"])


def layer_activation(plan: LayerPlan) -> str | None:
    """The canonical activation a layer ends with (None when it has none)."""
    params = dict(plan.layer.params)
    activation = params.get("activation")
    if activation is None:
        return None
    return getattr(activation, "name", str(activation))


def activation_rows(epoch: int, plan: LayerPlan, output: np.ndarray, bins: int) -> list[Row]:
    """Activation statistics and the fixed-range histogram of one layer's output (see module docstring)."""
    activation = layer_activation(plan)
    values = np.asarray(output, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    low, high = ACTIVATION_RANGES.get(activation or "", DEFAULT_RANGE)
    rows: list[Row] = []

    def add(statistic: str, value: float | np.floating[Any]) -> None:
        rows.append((epoch, plan.index, plan.name, statistic, float(value)))

    count = len(values)
    add("activation_mean", values.mean() if count else math.nan)
    add("activation_std", values.std() if count else math.nan)
    if activation == "sigmoid":
        add(
            "fraction_saturated",
            np.mean((values < SIGMOID_SATURATION[0]) | (values > SIGMOID_SATURATION[1])) if count else math.nan,
        )
    elif activation == "tanh":
        add("fraction_saturated", np.mean(np.abs(values) > TANH_SATURATION) if count else math.nan)
    elif activation == "relu":
        add("fraction_zero", np.mean(values == 0.0) if count else math.nan)
    add("fraction_outside", np.mean((values < low) | (values > high)) if count else math.nan)
    counts, _ = np.histogram(np.clip(values, low, high), bins=bins, range=(low, high))
    fractions = counts / count if count else np.full(bins, math.nan)
    add("histogram_low", low)
    add("histogram_high", high)
    for index, fraction in enumerate(fractions):
        add(f"histogram.{index}", fraction)
    return rows


def _norm(arrays: Sequence[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64)))) for a in arrays))


def layer_keys(plans: Sequence[LayerPlan], keys: Sequence[str]) -> dict[int, list[str]]:
    """Per plan index, the canonical weight keys ('<index>.<kind>.<tensor>') among `keys` it owns."""
    owned: dict[int, list[str]] = {plan.index: [] for plan in plans}
    prefixes = {f"{plan.name}.": plan.index for plan in plans}
    for key in keys:
        for prefix, index in prefixes.items():
            if key.startswith(prefix):
                owned[index].append(key)
                break
    return owned


def weight_rows(
    epoch: int,
    plans: Sequence[LayerPlan],
    gradients: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    previous: Mapping[str, np.ndarray] | None,
) -> list[Row]:
    """gradient_norm, weight_norm and (with `previous`, the weights before epoch `epoch`) update_ratio per layer
    owning trainable tensors (the keys of `gradients`)."""
    rows: list[Row] = []
    owned = layer_keys(plans, list(gradients))
    for plan in plans:
        keys = owned[plan.index]
        if not keys:
            continue
        rows.append((epoch, plan.index, plan.name, "gradient_norm", _norm([gradients[k] for k in keys])))
        rows.append((epoch, plan.index, plan.name, "weight_norm", _norm([weights[k] for k in keys])))
        if previous is not None:
            before = _norm([previous[k] for k in keys])
            change = _norm([np.asarray(weights[k], np.float64) - np.asarray(previous[k], np.float64) for k in keys])
            rows.append((epoch, plan.index, plan.name, "update_ratio", change / before if before > 0 else math.nan))
    return rows


def probe_rows(
    model: Any,
    plans: Sequence[LayerPlan],
    x: np.ndarray,
    y: np.ndarray,
    epoch: int,
    bins: int,
    previous_weights: Mapping[str, np.ndarray] | None,
) -> list[Row]:
    """Every diagnostic row of one epoch, from one adapter model and the probe batch (x, y)."""
    started = time.perf_counter()
    outputs = model.layer_outputs(x)
    if len(outputs) != len(plans):
        raise RuntimeError(f"layer_outputs returned {len(outputs)} arrays for {len(plans)} layers")
    rows: list[Row] = []
    for plan, output in zip(plans, outputs):
        rows.extend(activation_rows(epoch, plan, output, bins))
    gradients = model.gradients(x, y)
    rows.extend(weight_rows(epoch, plans, gradients, model.get_weights(), previous_weights))
    rows.append((epoch, LAYER_STATISTIC, "", "seconds", time.perf_counter() - started))
    return rows
