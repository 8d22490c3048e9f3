"""SEMANTICS_REVISION guards stored results against a change of what the harness's names mean.

A trial's hash covers its spec and `harness.spec.types.SEMANTICS_REVISION`, not the code behind
the names in it. If `adam` or `he_normal` or `l2` came to compute something else while specs stayed
the same, every stored result would be silently reused under the new meaning. So this test computes
the reference outputs of every canonical component with the harness's own realizations (the numpy
shared-mode initializer draws; the torch adapter for activations, losses, optimizers and
regularizers) on fixed tiny inputs, and compares them with the outputs recorded for the current
revision in tests/semantics_reference.json.

Values are compared within a relative 1e-4 (float32 arithmetic and BLAS kernels differ across CPUs
in the last bits, far below that), and the hyperparameters are exaggerated (eps 0.1, beta1 0.5, a
large l1/l2, ...) so that every term of every formula moves the outputs well past the tolerance.
Dropout is left out: its masks come from the framework's RNG, whose stream is not a canonical meaning.

When it fails, and the change of meaning is deliberate:
    1. bump SEMANTICS_REVISION in harness/spec/types.py (every trial hash changes; stored results rerun);
    2. add a CHANGELOG.md entry saying what the revision changes;
    3. record the new outputs: HARNESS_RECORD_SEMANTICS=1 pytest tests/test_semantics_revision.py
       (it refuses to overwrite the outputs of the same revision with different ones).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.spec import RegularizerSpec
from harness.spec.components import ACTIVATIONS, INITIALIZERS, LOSSES, OPTIMIZERS
from harness.spec.init import initial_weights
from harness.spec.params import declared
from harness.spec.types import SEMANTICS_REVISION

torch = pytest.importorskip("torch")

from helpers.specs import labelled_arrays, trial_spec  # noqa: E402 - after the torch skip

REFERENCE = Path(__file__).resolve().parent / "semantics_reference.json"
RECORD_VARIABLE = "HARNESS_RECORD_SEMANTICS"
RELATIVE_TOLERANCE, ABSOLUTE_TOLERANCE = 1e-4, 1e-6
SIGNIFICANT_DIGITS = 7  # stored precision: well inside the tolerance, so the file does not churn
STEPS = 3  # optimizer steps per training fingerprint

# Non-default settings that make every term of a formula matter (eps outside vs inside the sqrt, bias
# correction, the decay rates, the accumulator's start).
OPTIMIZER_SETTINGS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.7},
    "nesterov": {"lr": 0.1, "momentum": 0.7},
    "adagrad": {"lr": 0.1, "eps": 0.1, "initial_accumulator": 0.3},
    "rmsprop": {"lr": 0.05, "rho": 0.6, "eps": 0.1},
    "adam": {"lr": 0.05, "beta1": 0.5, "beta2": 0.8, "eps": 0.1},
    "adamw": {"lr": 0.05, "beta1": 0.5, "beta2": 0.8, "eps": 0.1, "weight_decay": 0.3},
}
REGULARIZER_SETTINGS: dict[str, float] = {
    "l1": 0.05,
    "l2": 0.1,
    "weight_decay": 0.2,
    "clip_norm": 0.05,
    "clip_value": 0.01,
}
LEFT_OUT_REGULARIZERS = {"dropout": "masks come from the framework's RNG stream"}
INITIALIZER_SETTINGS: dict[str, dict[str, Any]] = {
    "normal": {"std": 0.3},
    "uniform": {"limit": 0.4},
    "xavier_uniform": {"gain": 1.5},
    "xavier_normal": {"gain": 1.5},
    "orthogonal": {"gain": 1.5},
}
ACTIVATION_SETTINGS: dict[str, dict[str, Any]] = {"leaky_relu": {"negative_slope": 0.2}, "elu": {"alpha": 0.7}}


def _rounded(values: Any) -> list[float]:
    return [float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in np.asarray(values, dtype=np.float64).ravel()]


def _component(name: str, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The raw suite form of a component: its name and the non-default settings this test gives it."""
    return {"name": name, **settings.get(name, {})}


def _train(spec: Any, loss: str = "cross_entropy") -> list[float]:
    """STEPS optimizer steps of the torch adapter from the shared initial weights: losses, then every parameter."""
    from harness.adapters import get_adapter

    adapter = get_adapter("torch")
    adapter.configure(1)
    info, x, y = labelled_arrays(loss, num_samples=16, features=4, outputs=3)
    model = adapter.build(spec, info)
    model.set_weights(initial_weights(spec.model.plan(info.input_shape), spec.initializer, spec.seed))
    model.set_training_data(x, y)
    losses = [float(model.train_epoch([np.arange(8) + 4 * step])[0]) for step in range(STEPS)]
    weights = model.get_weights()
    return _rounded(losses) + _rounded(np.concatenate([weights[key].ravel() for key in sorted(weights)]))


def _loss_values(name: str) -> list[float]:
    from harness.adapters.torch.losses import loss_function, prepare_targets

    rng = np.random.default_rng(7)
    if name == "ctc":
        outputs = rng.normal(size=(2, 6, 4)).astype(np.float32)
        targets = np.array([[1, 2, 0], [3, 3, 1]])  # the second string repeats a class: a blank between
    elif name == "binary_cross_entropy":
        outputs, targets = rng.normal(size=(5, 1)).astype(np.float32), np.array([0, 1, 1, 0, 1])
    elif name == "cross_entropy":
        outputs, targets = rng.normal(size=(5, 3)).astype(np.float32) * 2, np.array([0, 2, 1, 1, 0])
    else:
        outputs, targets = rng.normal(size=(5, 2)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    value = loss_function(name)(torch.tensor(outputs), prepare_targets(name, targets, torch.device("cpu")))
    return _rounded([float(value)])


def current_outputs() -> dict[str, list[float]]:
    """Every canonical component's reference outputs, keyed 'kind/name'."""
    outputs: dict[str, list[float]] = {}
    for name in INITIALIZERS:
        spec = trial_spec(initializer=_component(name, INITIALIZER_SETTINGS), seed=3)
        weights = initial_weights(spec.model.plan((4,)), spec.initializer, spec.seed)
        outputs[f"initializer/{name}"] = _rounded(np.concatenate([weights[key].ravel() for key in sorted(weights)]))
    # which stream each layer draws from: layers that draw nothing (dropout, batch_norm, ...) shift none
    keyed = trial_spec(({"dense": {"units": 5}}, {"dropout": 0.5}, {"batch_norm": {}}, {"dense": {}}), seed=3)
    weights = initial_weights(keyed.model.plan((4,)), keyed.initializer, keyed.seed)
    outputs["initializer/stream_keys"] = _rounded(np.concatenate([weights[key].ravel() for key in sorted(weights)]))
    for name in ACTIVATIONS:
        layers = ({"dense": {"units": 5, "activation": _component(name, ACTIVATION_SETTINGS)}}, {"dense": {}})
        outputs[f"activation/{name}"] = _train(
            trial_spec(layers, initializer="xavier_uniform", optimizer={"name": "sgd", "lr": 0.1})
        )
    for name in LOSSES:
        outputs[f"loss/{name}"] = _loss_values(name)
    for name in OPTIMIZERS:
        outputs[f"optimizer/{name}"] = _train(trial_spec(optimizer=_component(name, OPTIMIZER_SETTINGS)))
    for field_name in declared(RegularizerSpec):
        if field_name in LEFT_OUT_REGULARIZERS:
            continue
        regularizer = dataclasses.replace(RegularizerSpec(), **{field_name: REGULARIZER_SETTINGS[field_name]})
        spec = trial_spec(optimizer={"name": "sgd", "lr": 0.5}, regularizer=regularizer)
        outputs[f"regularizer/{field_name}"] = _train(spec)
    return outputs


def _differences(recorded: dict[str, list[float]], current: dict[str, list[float]]) -> list[str]:
    changed = []
    for key in sorted(recorded.keys() & current.keys()):
        old, new = recorded[key], current[key]
        if len(old) != len(new):
            changed.append(f"{key}: {len(old)} values recorded, {len(new)} now")
            continue
        worst = max(
            (abs(a - b) / (ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * max(abs(a), abs(b))), a, b)
            for a, b in zip(old, new, strict=True)
        )
        if not worst[0] <= 1.0 and not (math.isnan(worst[1]) and math.isnan(worst[2])):
            changed.append(f"{key}: e.g. {worst[1]!r} recorded, {worst[2]!r} now")
    return changed


def _reference_text(outputs: dict[str, list[float]]) -> str:
    """The reference file: one line per component, so a diff names what changed."""
    lines = [f"  {json.dumps(key)}: {json.dumps(values)}" for key, values in outputs.items()]
    return f'{{"semantics_revision": {SEMANTICS_REVISION}, "outputs": {{\n' + ",\n".join(lines) + "\n}}\n"


def test_canonical_outputs_match_the_recorded_outputs_of_this_revision() -> None:
    current = current_outputs()
    recorded_file = (
        json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"semantics_revision": 0, "outputs": {}}
    )
    recorded_revision, recorded = recorded_file["semantics_revision"], recorded_file["outputs"]
    changed = _differences(recorded, current) if recorded_revision == SEMANTICS_REVISION else []
    how = (
        "If the change of meaning is deliberate: bump SEMANTICS_REVISION in harness/spec/types.py (every trial hash "
        "changes, so stored results run again), add a CHANGELOG.md entry saying what revision "
        f"{SEMANTICS_REVISION + 1} changes, then record the outputs with {RECORD_VARIABLE}=1 pytest "
        "tests/test_semantics_revision.py. If it is not deliberate, the change is a bug: undo it."
    )
    assert not changed, (
        f"canonical outputs changed while SEMANTICS_REVISION stayed {SEMANTICS_REVISION}; stored results would be "
        "reused under a different meaning:\n  " + "\n  ".join(changed) + "\n" + how
    )
    if os.environ.get(RECORD_VARIABLE):
        REFERENCE.write_text(_reference_text(current))
        return
    assert recorded_revision == SEMANTICS_REVISION, (
        f"{REFERENCE.name} holds the outputs of revision {recorded_revision}, the code is at {SEMANTICS_REVISION}: "
        f"record them with {RECORD_VARIABLE}=1 pytest tests/test_semantics_revision.py (and check CHANGELOG.md "
        f"has an entry for revision {SEMANTICS_REVISION})."
    )
    assert recorded.keys() == current.keys(), (
        f"components without recorded outputs: {sorted(current.keys() - recorded.keys())}; recorded but gone: "
        f"{sorted(recorded.keys() - current.keys())}. A new name changes no existing meaning: record the outputs "
        f"with {RECORD_VARIABLE}=1 pytest tests/test_semantics_revision.py (no bump needed)."
    )


def test_every_regularizer_is_fingerprinted_or_left_out_for_a_reason() -> None:
    assert set(declared(RegularizerSpec)) == set(REGULARIZER_SETTINGS) | set(LEFT_OUT_REGULARIZERS)


def test_the_changelog_describes_the_current_revision() -> None:
    changelog = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text()
    assert f"semantics revision {SEMANTICS_REVISION}" in changelog.lower(), (
        f"CHANGELOG.md has no entry for semantics revision {SEMANTICS_REVISION}: say what it changes and that "
        "every stored trial runs again."
    )


def test_a_changed_output_is_reported_with_its_component() -> None:
    recorded = {"optimizer/adam": [1.0, 2.0], "loss/mse": [0.5]}
    assert _differences(recorded, {"optimizer/adam": [1.0, 2.0000001], "loss/mse": [0.5]}) == []  # float noise
    assert _differences(recorded, {"optimizer/adam": [1.0, 2.01], "loss/mse": [0.5]}) == [
        "optimizer/adam: e.g. 2.0 recorded, 2.01 now"
    ]
