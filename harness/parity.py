"""Parity: the same trial in two backends, from the same weights and batches, must agree step by step.

    result = parity_check(spec, ["torch", "keras"], load_dataset(spec.dataset), steps=20)
    print(result.message())

What is checked, in order (the first failure stops the check and is reported):
    1. both models have the same tensors: canonical keys, shapes, parameter count;
    2. after loading the SAME shared initial weights (harness.spec.init.initial_weights),
       each backend returns them bit for bit, and the outputs on one batch agree to 1e-5;
    3. `steps` optimizer steps on the same batches (harness.data.batches.epoch_batches,
       one `train_epoch` call per step): the data loss of every step and every parameter
       after every step agree within the tolerance of the trial's components.
Dropout masks come from each framework's own RNG and can never match, so parity runs every
dropout layer (and transformer_encoder's inner dropout) at rate 0 and says so in `note`; tests/test_parity.py checks
dropout's rate and scale statistically instead.

Framework-free: backends are reached through harness.adapters.get_adapter. Keras reads its
backend once per process, so one call can compare torch with ONE Keras backend (or two
names of the same one); comparing two different Keras backends needs two processes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.adapters.schedules import LearningRates
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.errors import HarnessError
from harness.spec.init import initial_weights
from harness.spec.layers import LayerSpec
from harness.spec.schedules import steps_per_epoch
from harness.spec.types import TrialSpec

PARITY_THREADS = 1
FORWARD_TOLERANCE = 1e-5  # outputs on one batch, from identical weights: float32 rounding of a few layers


@dataclass(frozen=True)
class ParityTolerance:
    """Allowed difference |a - b| <= atol + rtol * max(|a|, |b|), for losses and for parameters.

    `reason` says why the values are what they are (shown in messages).
    """

    loss_rtol: float = 1e-4
    loss_atol: float = 1e-6
    param_rtol: float = 1e-4
    param_atol: float = 1e-6
    forward: float = FORWARD_TOLERANCE
    reason: str = "float32 rounding accumulated over the steps"

    def describe(self) -> str:
        return (
            f"loss rtol={self.loss_rtol:g} atol={self.loss_atol:g}, parameters rtol={self.param_rtol:g} "
            f"atol={self.param_atol:g} ({self.reason})"
        )


def tolerance_for(spec: TrialSpec) -> ParityTolerance:
    """The tolerance a trial's components justify.

    Losses and every element of every parameter: rtol 1e-4 (float32 rounding of the two
    frameworks' kernels - different summation orders in matmuls and reductions - accumulated
    over 20 steps; measured here: loss differences <= 1e-5 relative, parameter differences
    <= 1e-6 for sgd, momentum, nesterov, every loss, activation, initializer and regularizer).

    Adaptive rules (adagrad, rmsprop, adam, adamw) divide by sqrt of a running second moment.
    For a weight whose gradient is tiny (the result of cancellation in a sum over the batch),
    the update lr*g/(sqrt(s) + eps) depends on the last bits of g: a relative error d in g
    moves the update by up to ~d/4 of the rule's largest step. Parameters therefore get an
    absolute allowance of 1% of that largest step: lr for adam, adamw and adagrad (first step
    g/|g|), lr/sqrt(1-rho) for rmsprop (first step g/sqrt((1-rho)g^2)). Measured here over 20
    steps on digits and MNIST-1D (MLP 64-64-64): adam <= 1e-6 at lr 1e-3, rmsprop 3.6e-5 at
    lr 1e-3 (allowance 1e-4). At large learning rates (rmsprop or adam at 1e-2 on a deep
    net) training becomes chaotic and such rounding differences grow without bound: parity
    then fails, and says at which step, which is the honest answer.
    """
    optimizer = spec.optimizer
    lr = float(optimizer["lr"])
    if optimizer.name == "rmsprop":
        largest_step = lr / math.sqrt(1.0 - float(optimizer["rho"]))
    elif optimizer.name in ("adam", "adamw", "adagrad"):
        largest_step = lr
    else:
        return ParityTolerance()
    return ParityTolerance(
        param_atol=max(1e-6, 0.01 * largest_step),
        reason=f"{optimizer.name} divides by sqrt of small second moments, amplifying float32 rounding of "
        f"near-zero gradients: parameters get atol = 1% of its largest step ({largest_step:.3g})",
    )


@dataclass
class ParityResult:
    """The outcome of one parity check.

    Attributes:
        label: what was checked (an arm name, or a test id).
        backends: the two backends compared; the first is the reference in messages.
        steps: optimizer steps run.
        losses: backend -> float64 (steps,) data loss of each step.
        max_loss_delta: largest |loss_a - loss_b| over the steps.
        max_param_delta: largest |p_a - p_b| over all parameters and steps.
        worst_step: step with the largest difference relative to its tolerance (0: before training).
        worst_tensor: 'loss' or the canonical weight key at worst_step.
        tolerance: what was allowed.
        passed: every check held.
        note: what parity changed in the spec (dropout off, shared init) and why.
        components: the spec's components in words (for messages).
        failure: the first check that failed, in words ('' when passed).
    """

    label: str
    backends: tuple[str, str]
    steps: int
    losses: dict[str, np.ndarray]
    max_loss_delta: float
    max_param_delta: float
    worst_step: int
    worst_tensor: str
    tolerance: ParityTolerance
    passed: bool
    note: str
    components: str = ""
    failure: str = ""
    first_failed_step: int | None = None

    def message(self) -> str:
        """One paragraph: verdict, components, the step and the largest difference, the tolerance."""
        a, b = self.backends
        head = f"parity {'OK' if self.passed else 'FAILED'}"
        if self.label:
            head += f" [{self.label}]"
        lines = [f"{head}: {a} vs {b}, {self.steps} steps; {self.components}."]
        if not self.passed:
            lines.append(self.failure)
        lines.append(
            f"Largest differences: loss {self.max_loss_delta:.3g}, parameters {self.max_param_delta:.3g}; "
            f"worst relative to its tolerance: {self.worst_tensor!r} at step {self.worst_step}."
        )
        lines.append(f"Tolerance: {self.tolerance.describe()}.")
        if self.note:
            lines.append(f"Note: {self.note}")
        return " ".join(lines)


def describe_components(spec: TrialSpec) -> str:
    """'optimizer adam(lr=0.001, ...), loss cross_entropy, initializer he_normal, ...' for messages."""

    def component(kind: str, value: Any) -> str:
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.params)
        return f"{kind} {value.name}({params})" if params else f"{kind} {value.name}"

    parts = [
        component("optimizer", spec.optimizer),
        component("loss", spec.loss),
        component("initializer", spec.initializer),
    ]
    regularizer = spec.regularizer
    active = {k: v for k, v in regularizer.to_dict().items() if v not in (0.0, None)}
    if active:
        parts.append("regularizer " + ", ".join(f"{k}={v:g}" for k, v in active.items()))
    layers = []
    for layer in spec.model.layers:
        params = dict(layer.params)
        if layer.kind == "dense":
            layers.append(f"dense({params['units']}, {params['activation'].name})")
        elif layer.kind == "dropout":
            layers.append(f"dropout({params['rate']:g})")
        elif layer.kind == "activation":
            layers.append(f"activation({params['activation'].name})")
        else:  # every other family: its kind and the parameters that tell layers apart
            shown = {
                k: v for k, v in params.items() if k in ("filters", "units", "heads", "pool_size", "kernel_size", "dim")
            }
            layers.append(f"{layer.kind}({', '.join(f'{k}={v}' for k, v in shown.items())})")
    if spec.model.python:  # the user's code: the harness sees its paired tensors, not its layers
        factories = ", ".join(f"{key} {reference}" for key, reference in spec.model.python)
        parts.append(f"Python model ({factories}; {len(spec.model.names)} paired tensors)")
        return "; ".join(parts)
    joiner = " > " if spec.model.graph is None else ", "  # graph nodes are not a chain
    parts.append(("layers " if spec.model.graph is None else "graph nodes ") + joiner.join(layers))
    return "; ".join(parts)


def check_backends(backends: Sequence[str]) -> None:
    """Refuse two different Keras backends in one process (Keras reads KERAS_BACKEND once).

    Raises:
        HarnessError: naming the backends and how to compare them instead.
    """
    from harness.adapters import check_backend

    keras_backends = {name: check_backend(name).keras_backend for name in backends}
    distinct = {value for value in keras_backends.values() if value is not None}
    if len(distinct) > 1:
        named = ", ".join(f"{name} (Keras on {value})" for name, value in keras_backends.items() if value)
        raise HarnessError(
            f"parity: backends {list(backends)} use {len(distinct)} different Keras backends ({named}). Keras "
            "reads its backend once per process, so one parity run can compare torch with ONE Keras backend. "
            "Compare each Keras backend with torch in its own run, e.g. backends ['torch', 'keras-tensorflow'] "
            "then ['torch', 'keras-torch'] in a new process."
        )


def parity_spec(spec: TrialSpec) -> tuple[TrialSpec, str]:
    """The spec parity runs (every dropout at rate 0, shared init) and a note saying what changed."""
    notes = []
    layers = []
    silenced = []
    for layer in spec.model.layers:
        if layer.kind == "dropout" and layer["rate"] > 0:
            layers.append(LayerSpec("dropout", (("rate", 0.0),)))
            silenced.append("dropout layers ran as identity (rate 0)")
        elif layer.kind == "transformer_encoder" and layer["dropout"] > 0:
            # the block's inner dropout (after attention and after the feed-forward) draws masks too
            params = tuple((key, 0.0 if key == "dropout" else value) for key, value in layer.params)
            layers.append(LayerSpec(layer.kind, params))
            silenced.append("transformer_encoder's inner dropout ran at rate 0")
        else:
            layers.append(layer)
    if silenced:
        notes.append(
            f"{' and '.join(dict.fromkeys(silenced))}: masks come from each framework's own RNG and can never "
            "match; dropout's rate and scale are checked statistically in tests/test_parity.py."
        )
    if spec.init_mode != "shared":
        notes.append("native init mode replaced by shared initial weights (native draws cannot match).")
    changed = dataclasses.replace(spec, model=dataclasses.replace(spec.model, layers=tuple(layers)), init_mode="shared")
    return changed, " ".join(notes)


def parity_batches(data: Dataset, spec: TrialSpec, steps: int) -> list[np.ndarray]:
    """The first `steps` minibatches of the trial, epoch after epoch, as the loop would draw them."""
    batches: list[np.ndarray] = []
    epoch = 1
    while len(batches) < steps:
        epoch_list = epoch_batches(len(data.y_train), spec.training, spec.seed, epoch)
        if not epoch_list:
            raise HarnessError(
                f"parity: the training split has {len(data.y_train)} samples, too few for one batch of "
                f"{spec.training.batch_size} with drop_last; lower training.batch_size."
            )
        batches.extend(epoch_list)
        epoch += 1
    return batches[:steps]


@dataclass
class _Run:
    """What one backend produced: loaded weights, outputs on one batch, losses and weights per step."""

    loaded: dict[str, np.ndarray]
    outputs: np.ndarray
    losses: np.ndarray
    weights: list[dict[str, np.ndarray]] = field(default_factory=list)
    initial: dict[str, np.ndarray] = field(default_factory=dict)  # the weights it was given (or drew)


def parity_rates(data: Dataset, spec: TrialSpec, steps: int) -> np.ndarray | None:
    """The learning rate of each of the first `steps` optimizer steps under the trial's lr_schedule, as the
    loop sets them (None: no schedule). reduce_on_plateau changes its rate only between epochs, from an
    evaluation parity does not run: its steps use the optimizer's lr (its epoch rule is common code,
    harness.spec.schedules.PlateauState, the same for every backend)."""
    training = spec.training
    if training.lr_schedule is None:
        return None
    per_epoch = steps_per_epoch(len(data.y_train), training.batch_size, training.drop_last)
    rates = LearningRates(training, spec.optimizer["lr"], per_epoch)
    indices = np.arange(steps)
    epochs = indices // max(per_epoch, 1) + 1
    return np.concatenate([rates.epoch_rates(int(epoch), int(np.sum(epochs == epoch))) for epoch in np.unique(epochs)])


def _run_backend(
    spec: TrialSpec,
    backend: str,
    data: Dataset,
    weights: dict[str, np.ndarray] | None,
    batches: list[np.ndarray],
    rates: np.ndarray | None = None,
) -> _Run:
    """One backend's run; `weights` None: a paired Python model's shared draws over its own canonical tensors."""
    from harness.adapters import get_adapter

    adapter = get_adapter(backend)
    # one thread: parity models are tiny, and two frameworks' pools fighting over the cores made
    # a torch step 10x slower here; configure also switches deterministic kernels on
    adapter.configure(PARITY_THREADS)
    model = adapter.build(dataclasses.replace(spec, backend=backend), data.info)
    if weights is None:
        from harness.adapters.python_models import shared_initial_weights

        shapes = {key: value.shape for key, value in model.get_weights().items()}
        weights = shared_initial_weights(shapes, spec.initializer, spec.seed)
    model.set_weights(weights)
    loaded = model.get_weights()
    outputs = model.predict(data.x_train[batches[0]])
    model.set_training_data(data.x_train, data.y_train)
    losses = []
    per_step = []
    for step, batch in enumerate(batches):
        if rates is None:
            losses.append(float(model.train_epoch([batch])[0]))
        else:
            losses.append(float(model.train_epoch([batch], rates[step : step + 1])[0]))
        per_step.append(model.get_weights())
    return _Run(
        loaded=loaded, outputs=outputs, losses=np.array(losses, dtype=np.float64), weights=per_step, initial=weights
    )


def _excess(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> tuple[float, float]:
    """(max |a - b|, max of |a - b| / (atol + rtol*max(|a|, |b|))); NaN in the same places counts as equal."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    difference = np.where(both_nan | same_inf, 0.0, np.abs(a - b))
    difference = np.where(np.isnan(difference), np.inf, difference)
    allowed = atol + rtol * np.maximum(np.abs(np.nan_to_num(a)), np.abs(np.nan_to_num(b)))
    if difference.size == 0:
        return 0.0, 0.0
    return float(difference.max()), float((difference / allowed).max())


def parity_check(
    spec: TrialSpec,
    backends: Sequence[str],
    data: Dataset,
    steps: int = 20,
    tolerance: ParityTolerance | None = None,
    label: str = "",
) -> ParityResult:
    """Run a trial in two backends from the same weights and batches and compare them step by step.

    Args:
        spec: the trial (its backend field is replaced per backend).
        backends: exactly two backend names, e.g. ('torch', 'keras').
        data: the trial's dataset (harness.data.load_dataset(spec.dataset)).
        steps: optimizer steps to compare.
        tolerance: overrides `tolerance_for(spec)`.
        label: names the check in messages.

    Raises:
        HarnessError: not two backends, two different Keras backends, or too few samples for a batch.
    """
    backends = tuple(backends)
    if len(backends) != 2 or backends[0] == backends[1]:
        raise HarnessError(f"parity: expected two different backends, e.g. ['torch', 'keras'], got {list(backends)}.")
    if steps < 1:
        raise HarnessError(f"parity: steps must be >= 1, got {steps}.")
    check_backends(backends)
    run_spec, note = parity_spec(spec)
    tolerance = tolerance or tolerance_for(run_spec)
    batches = parity_batches(data, run_spec, steps)
    rates = parity_rates(data, run_spec, steps)
    if run_spec.model.python:  # a paired Python model: shared draws over the tensors the built models hold
        if not run_spec.model.paired:
            raise HarnessError(
                "parity: this Python model's torch and Keras parameters are not paired (model.names), so the two "
                "cannot start from the same weights; pair them to check parity."
            )
        runs = {backend: _run_backend(run_spec, backend, data, None, batches, rates) for backend in backends}
        weights = runs[backends[0]].initial
    else:
        plans = run_spec.model.plan(data.info.input_shape)
        weights = initial_weights(plans, run_spec.initializer, run_spec.seed)
        runs = {backend: _run_backend(run_spec, backend, data, weights, batches, rates) for backend in backends}
    first, second = (runs[b] for b in backends)

    def result(passed: bool, failure: str = "", **values: Any) -> ParityResult:
        fields: dict[str, Any] = {
            "max_loss_delta": 0.0,
            "max_param_delta": 0.0,
            "worst_step": 0,
            "worst_tensor": "",
            "first_failed_step": None,
        }
        fields.update(values)
        return ParityResult(
            label=label,
            backends=backends,
            steps=steps,
            losses={b: runs[b].losses for b in backends},
            tolerance=tolerance,
            passed=passed,
            note=note,
            components=describe_components(spec),
            failure=failure,
            **fields,
        )

    # 1. the same tensors
    shapes = {b: {k: v.shape for k, v in runs[b].loaded.items()} for b in backends}
    expected = {k: v.shape for k, v in weights.items()}
    for backend in backends:
        if shapes[backend] != expected:
            return result(
                False,
                f"{backend} has tensors {shapes[backend]}, the spec defines {expected} "
                f"({sum(math.prod(s) for s in expected.values())} parameters).",
                worst_tensor="structure",
                first_failed_step=0,
            )
    # 2. identical weights after loading, and the same outputs on one batch
    for backend in backends:
        for key, value in weights.items():
            if not np.array_equal(runs[backend].loaded[key], value):
                return result(
                    False,
                    f"after loading the shared initial weights, {backend} returns a different "
                    f"{key!r}: set_weights/get_weights must round-trip exactly.",
                    worst_tensor=key,
                    first_failed_step=0,
                )
    forward_delta, forward_excess = _excess(first.outputs, second.outputs, tolerance.forward, tolerance.forward)
    if forward_excess > 1.0:
        return result(
            False,
            f"before training, the outputs on the first batch differ by {forward_delta:.3g} "
            f"(allowed {tolerance.forward:g} + {tolerance.forward:g}*|output|): the forward passes disagree.",
            worst_tensor="outputs",
            first_failed_step=0,
        )
    # 3. every step: loss, then every parameter after the step's update
    worst = (forward_excess, 0, "outputs")
    first_failure: tuple[int, str, float, float] | None = None  # step, tensor, delta, excess
    max_loss_delta = max_param_delta = 0.0
    for step in range(steps):
        loss_delta, loss_excess = _excess(
            first.losses[step], second.losses[step], tolerance.loss_rtol, tolerance.loss_atol
        )
        max_loss_delta = max(max_loss_delta, loss_delta)
        candidates = [("loss", loss_delta, loss_excess)]
        for key in weights:
            delta, excess = _excess(
                first.weights[step][key], second.weights[step][key], tolerance.param_rtol, tolerance.param_atol
            )
            max_param_delta = max(max_param_delta, delta)
            candidates.append((key, delta, excess))
        for tensor, delta, excess in candidates:
            if excess > worst[0]:
                worst = (excess, step + 1, tensor)
            if excess > 1.0 and first_failure is None:
                first_failure = (step + 1, tensor, delta, excess)
    failure = ""
    if first_failure is not None:
        step, tensor, delta, excess = first_failure
        if tensor == "loss":
            what = (
                f"the loss of step {step} is {first.losses[step - 1]:.8g} in {backends[0]} and "
                f"{second.losses[step - 1]:.8g} in {backends[1]}"
            )
        else:
            what = f"parameter {tensor!r} after step {step} differs"
        failure = (
            f"First exceeded the tolerance at step {step}: {what} (difference {delta:.3g}, "
            f"{excess:.3g}x the allowed difference)."
        )
    return result(
        first_failure is None,
        failure,
        max_loss_delta=max_loss_delta,
        max_param_delta=max_param_delta,
        worst_step=worst[1],
        worst_tensor=worst[2],
        first_failed_step=first_failure[0] if first_failure else None,
    )


def parity_for_suite(suite: Any, steps: int = 20, backends: Sequence[str] | None = None) -> list[ParityResult]:
    """One parity check per arm of a suite (its first seed), comparing its backends.

    With more than two backends, each is compared with the first. The dataset of each arm
    is loaded through harness.data.load_dataset (cached per process). Arms whose model is the
    user's Python code (model.python) are checked when its parameters are paired (model.names)
    and left out otherwise: they have no shared initial weights.

    Args:
        suite: a harness.suite.Suite.
        steps: optimizer steps per check.
        backends: overrides the suite's backends.

    Raises:
        HarnessError: fewer than two backends, or two different Keras backends.
    """
    from harness.data import load_dataset

    chosen = tuple(backends) if backends is not None else tuple(suite.backends)
    if len(chosen) < 2:
        raise HarnessError(
            f"parity: suite {suite.name!r} runs on {list(chosen)}; parity compares two backends. "
            "Add one to the suite's `backends` (e.g. [torch, keras]) or pass two with --backend."
        )
    check_backends(chosen)
    reference = chosen[0]
    first_seed = suite.seeds[0]
    results = []
    for arm in suite.arms:
        trial = next((t for t in suite.trials if t.arm == arm and t.spec.seed == first_seed), None)
        if trial is None:  # every arm has every seed; an empty arm would be a suite-loader bug
            raise ValueError(f"suite {suite.name!r} has no trial for arm {arm!r} and seed {first_seed}")
        if trial.spec.model.python and not trial.spec.model.paired:
            continue  # the user's Python model: no shared weights to start both from (parity not checked)
        data = load_dataset(trial.spec.dataset, trial.spec.seed)
        for other in chosen[1:]:
            results.append(parity_check(trial.spec, (reference, other), data, steps=steps, label=arm))
    return results
