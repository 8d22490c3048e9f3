"""Vectorized trials: several trials of one architecture trained as ONE stacked model (framework-free part).

Trials that differ only in their seed and in scalar hyperparameters (the optimizer's, the initializer,
l1/l2, weight decay, dropout rates) can share every step: the weights of K members get a leading
member axis and one batched forward/backward pass serves all of them. Each member still draws its own
initial weights (harness.spec.init), sees its own seed's batches (harness.data.batches), its own
dropout masks (from its own generator, as alone) and its own optimizer hyperparameters, and is stored
as its own trial with the hash, metrics and status it would have had alone (to float32 rounding:
a batched matmul sums in another order than a single one). A member whose epoch loss is not finite is
recorded 'diverged' at that epoch, as `harness.adapters.loop.train_trial` records it, and dropped from
the stack; the others go on.

What can be stacked is a WHITELIST (harness.adapters.stackable): anything it does not list trains one
trial at a time, with the reason.

A time limit (training.max_seconds) is read on the group's clock: the members train at the same time,
so after each epoch a member whose limit the group's elapsed time exceeds stops as a lone trial stops
at that point (that epoch evaluated, status 'timeout', harness.adapters.loop.time_limit_error) and is
dropped from the stack. The limit is part of group_key, so today every member of a group stops after
the same epoch; a member trained in a group reaches fewer epochs within its limit than alone would if
the group's epochs take longer than its own would.

Timings of a member are its share of the group's: each epoch's step and evaluation time divided by
the members that took part in it; `device['vectorized']` is 'stacked' (the engine) and `device['group_size']`
how many members started together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from harness.adapters.loop import _PredictionKeeper, _Probe
from harness.adapters.metrics import evaluate_members
from harness.adapters.result import TrialResult, now, time_limit_error
from harness.adapters.stackable import group_key, ineligible_reason
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.measures import DIVERGED, MINIBATCH_LOSS, OK, SPLITS, TIMEOUT, metric_name
from harness.spec.init import initial_weights
from harness.spec.types import TrialSpec


class StackedModel(Protocol):
    """What an adapter's stacked model offers the group loop (harness.adapters.torch.vectorized)."""

    def set_weights(self, weights: Sequence[dict[str, np.ndarray]]) -> None:
        """Each member's canonical initial weights, in member order; resets optimizer state."""

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training split on the device once."""

    def train_epoch(self, batches: Sequence[list[np.ndarray]]) -> np.ndarray:
        """One step per batch, every live member at once (member m takes batches[m]): (steps, members) losses."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Evaluation-mode outputs of every live member: float32 (members, N, outputs)."""

    def keep(self, members: Sequence[int]) -> None:
        """Drop every live member not listed (positions among the live members, ascending)."""


class _Member:
    """One trial's bookkeeping inside a group."""

    def __init__(self, spec: TrialSpec, result: TrialResult, data: Dataset) -> None:
        self.spec = spec
        self.result = result
        self.keeper = _PredictionKeeper(data)
        self.probe = _Probe(spec, data, result)  # diagnostics, when the spec asks for them (all members do or none)


class _MemberView:
    """One member of a stacked model as a lone model's diagnostics probe reads it (get_weights,
    layer_outputs, gradients): the stacked model answers for every member at once, once per probe
    round (`shared`), and each view takes its member's slice."""

    def __init__(self, model: Any, position: int, shared: dict[str, Any]) -> None:
        self.model, self.position, self.shared = model, position, shared

    def _all(self, name: str, *arguments: Any) -> Any:
        if name not in self.shared:
            self.shared[name] = getattr(self.model, name)(*arguments)
        return self.shared[name]

    def get_weights(self) -> dict[str, np.ndarray]:
        return {key: value[self.position] for key, value in self._all("get_weights").items()}

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return [value[self.position] for value in self._all("layer_outputs", x)]

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {key: value[self.position] for key, value in self._all("gradients", x, y).items()}


def _probe(model: Any, live: list[_Member], epoch: int, before: bool) -> None:
    """Every live member's diagnostics probe at this epoch (before its training: the weights it compares
    against; after: its rows), from one stacked pass of each kind."""
    if live[0].probe.config is None or epoch not in live[0].probe.epochs:
        return
    shared: dict[str, Any] = {}
    for position, member in enumerate(live):
        view = _MemberView(model, position, shared)
        if before:
            member.probe.before_epoch(view, epoch)
        else:
            member.probe.after_epoch(view, epoch)


def _evaluate(model: StackedModel, members: list[_Member], data: Dataset, epoch: int, record: list[int]) -> None:
    """Every split's metrics for the live members at positions `record` (ascending), from one stacked forward
    pass per split over all live `members` (the arithmetic of harness.adapters.loop.evaluate_splits for a
    one-output model)."""
    kept: list[dict[str, np.ndarray] | None] = [members[position].keeper.outputs() for position in record]
    rows: list[list[tuple[int, str, float]]] = [[] for _ in record]
    for split in SPLITS:
        x, y = data.split(split)
        if len(y) == 0:
            continue
        outputs = model.predict(x)
        values = evaluate_members(outputs[record], y, data.info.task)
        for slot, position in enumerate(record):
            member_kept = kept[slot]
            if member_kept is not None:
                member_kept[split] = outputs[position]
            rows[slot].extend((epoch, metric_name(split, name), value) for name, value in values[slot].items())
    for slot, position in enumerate(record):
        member = members[position]
        member.result.metrics.extend(rows[slot])
        member.keeper.after_evaluation(epoch, kept[slot], rows[slot])


def train_group(specs: Sequence[TrialSpec], adapter: Any, data: Dataset) -> list[TrialResult]:
    """Train the trials as one stacked model; one TrialResult per spec, in order (ok, diverged or timeout).

    Raises:
        ValueError: a spec is ineligible, or the specs do not share one group_key.
        Exceptions of the adapter propagate (the worker then trains the members one by one).
    """
    if not specs:
        return []
    for spec in specs:
        reason = ineligible_reason(spec)
        if reason is not None:
            raise ValueError(f"trial {spec.hash} cannot be stacked: {reason}")
    if len({group_key(spec) for spec in specs}) != 1:
        raise ValueError("stacked trials must share architecture, data, loss, optimizer rule and training settings")
    started = time.perf_counter()
    first = specs[0]
    # the engine is part of the environment (its rounding differs from a lone trial's); the group size is not (a
    # member's numbers do not depend on it) and is left out of environment comparisons (harness.analysis.environment)
    device = {**adapter.device_info(first.device), "vectorized": "stacked", "group_size": str(len(specs))}
    versions = adapter.versions()
    members = [
        _Member(spec, TrialResult(status=OK, started_at=now(), versions=versions, device=device), data)
        for spec in specs
    ]
    model: StackedModel = adapter.build_stacked(specs, data.info)
    plans = first.model.plan(data.info.input_shape)
    model.set_weights([initial_weights(plans, spec.initializer, spec.seed) for spec in specs])
    model.set_training_data(data.x_train, data.y_train)
    live = list(members)

    def evaluate(epoch: int, record: list[int]) -> None:
        """_evaluate, its time shared among the members it records."""
        clock = time.perf_counter()
        _evaluate(model, live, data, epoch, record)
        seconds = (time.perf_counter() - clock) / len(record)
        for position in record:
            live[position].result.eval_seconds += seconds

    def drop(gone: list[int]) -> None:
        """Take the live members at positions `gone` out of the stack."""
        nonlocal live
        leaving = set(gone)
        survivors = [position for position in range(len(live)) if position not in leaving]
        model.keep(survivors)
        live = [live[position] for position in survivors]

    setup = time.perf_counter() - started  # wall_seconds: this share, then each member's training and evaluation
    for member in members:
        member.result.wall_seconds = setup / len(members)
    evaluate(0, list(range(len(live))))
    _probe(model, live, 0, before=False)
    num_samples = len(data.y_train)
    for epoch in range(1, first.training.epochs + 1):
        batches = [epoch_batches(num_samples, member.spec.training, member.spec.seed, epoch) for member in live]
        _probe(model, live, epoch, before=True)
        clock = time.perf_counter()
        losses = model.train_epoch(batches)
        seconds = (time.perf_counter() - clock) / len(live)
        diverged = []
        for position, member in enumerate(live):
            member.result.train_seconds += seconds
            mean_loss = float(np.mean(losses[:, position])) if len(losses) else float("nan")
            member.result.metrics.append((epoch, MINIBATCH_LOSS, mean_loss))
            if not math.isfinite(mean_loss):
                member.result.status, member.result.diverged_epoch = DIVERGED, epoch
                diverged.append(position)
        if diverged:
            drop(diverged)
        if not live:
            break
        evaluated = first.training.evaluates(epoch)  # training.eval_every; the last epoch always
        if evaluated:
            evaluate(epoch, list(range(len(live))))
        for member in live:
            member.result.epochs_completed = epoch
        _probe(model, live, epoch, before=False)
        # training.max_seconds on the group's clock: the members train at the same time
        elapsed = time.perf_counter() - started
        over = {
            position: limit
            for position, member in enumerate(live)
            if (limit := member.spec.training.max_seconds) is not None and elapsed > limit
        }
        if over:
            if not evaluated:  # the epoch a member stops after is its final one: always evaluated
                evaluate(epoch, list(over))
            for position, limit in over.items():
                live[position].result.status, live[position].result.error = TIMEOUT, time_limit_error(limit, epoch)
            drop(list(over))
            if not live:
                break
    finished = now()
    for member in members:
        result = member.result
        result.predictions = member.keeper.rows()
        result.wall_seconds += result.train_seconds + result.eval_seconds + result.diagnostics_seconds
        result.finished_at = finished
    return [member.result for member in members]
