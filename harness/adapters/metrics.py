"""Evaluation metrics computed in numpy from model outputs: one definition for every backend."""

from __future__ import annotations

import numpy as np

from harness.measures import TASK_MEASURES


def picked_log_softmax(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy.special.log_softmax(x, axis=-1)[..., arange(N), y] for x (..., N, C) and labels y (N,), C-contiguous:
    scipy's arithmetic step for step (the same bits; tests/test_metrics_numpy.py), in numpy alone (importing
    scipy.special cost a starting worker ~0.2 s), with the logarithm and the last subtraction run on the picked
    entries only (a third of an evaluation's metric time, measured on 10 classes)."""
    x_max = np.max(x, axis=-1, keepdims=True)
    x_max[~np.isfinite(x_max)] = 0
    shifted = x - x_max
    rows = np.arange(len(y))
    with np.errstate(divide="ignore"):
        return np.ascontiguousarray(shifted[..., rows, y] - np.log(np.sum(np.exp(shifted), axis=-1)))


__all__ = [
    "TASK_MEASURES",
    "evaluate_members",
    "evaluate_outputs",
]  # TASK_MEASURES: the keys evaluate_outputs returns per task


def evaluate_outputs(outputs: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """Data loss (the canonical loss of the task, penalties excluded) and task metrics, keyed by the
    measure names of `harness.measures.TASK_MEASURES[task]`, in that order.

    classification: cross entropy of logits (N, C) vs integer labels; accuracy of the argmax.
    binary: cross entropy of one logit (N, 1) vs 0/1 labels; accuracy of logit > 0.
    regression: mse (= loss), mae, r2 = 1 - SS_res/SS_tot over all targets.
    sequence: ctc of logits (N, T, C) vs 0-padded label strings; exact-string accuracy and label
    error rate of the greedy decoding (harness.adapters.ctc.sequence_metrics).
    """
    if len(y) == 0:
        return {}
    if task in ("classification", "binary"):  # one member: the same bits as a 1-D pass (each row sums alone)
        return evaluate_members(outputs[np.newaxis], y, task)[0]
    z = outputs.astype(np.float64)
    if task == "regression":
        target = y.astype(np.float64).reshape(z.shape)
        error = z - target
        total = ((target - target.mean(axis=0)) ** 2).sum()
        r2 = 1.0 - (error**2).sum() / total if total > 0 else float("nan")
        return {"loss": float((error**2).mean()), "mae": float(np.abs(error).mean()), "r2": float(r2)}
    if task == "sequence":
        from harness.adapters.ctc import sequence_metrics  # scipy and rapidfuzz: sequence tasks only

        return sequence_metrics(z, y)
    raise ValueError(f"unknown task {task!r}")


def evaluate_members(outputs: np.ndarray, y: np.ndarray, task: str) -> list[dict[str, float]]:
    """`evaluate_outputs` of each member of a stacked model, outputs (members, N, ...) against the same y: the
    same values, bit for bit (tests/test_metrics_numpy.py), computed in one pass over all members for the
    classification and binary tasks (K calls on small arrays cost a K = 32 group ~6% of its time, measured),
    where evaluate_outputs is this with one member."""
    if len(y) == 0:
        return [{} for _ in range(len(outputs))]
    if task == "classification":
        z = outputs.astype(np.float64)  # (K, N, C)
        losses = -picked_log_softmax(z, y).mean(axis=1)  # (K, N) C-contiguous: each row summed as alone
        accuracies = (z.argmax(axis=2) == y).mean(axis=1)
        return [{"loss": float(loss), "accuracy": float(acc)} for loss, acc in zip(losses, accuracies)]
    if task == "binary":
        logits = np.ascontiguousarray(outputs.astype(np.float64).reshape(len(outputs), -1))
        # -[y log s(z) + (1-y) log(1-s(z))] = softplus(z) - y*z, computed stably
        losses = (np.logaddexp(0.0, logits) - y * logits).mean(axis=1)
        accuracies = ((logits > 0).astype(y.dtype) == y).mean(axis=1)
        return [{"loss": float(loss), "accuracy": float(acc)} for loss, acc in zip(losses, accuracies)]
    return [evaluate_outputs(member, y, task) for member in outputs]
