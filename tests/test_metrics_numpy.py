"""The numpy log_softmax every evaluation uses gives scipy.special.log_softmax's bits, alone and stacked."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from harness.adapters.metrics import evaluate_members, evaluate_outputs, picked_log_softmax


@pytest.mark.parametrize("seed", range(5))
def test_log_softmax_gives_scipys_bits(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 10.0 ** rng.uniform(-3, 3), size=(257, 10))
    logits[0] = [1000.0, 1.0, *[0.0] * 8]  # saturating: log(softmax) alone would give -inf
    logits[1, 3] = np.inf
    logits[2, :] = -np.inf
    logits[3, 5] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):  # the +inf row overflows in both
        theirs = scipy_log_softmax(logits, axis=1)
        for label in range(10):  # every entry, picked by a label
            ours = picked_log_softmax(logits, np.full(len(logits), label))
            np.testing.assert_array_equal(ours, theirs[:, label])  # NaN where theirs is NaN, else bit for bit
        labels = rng.integers(0, 10, len(logits))
        stacked = np.stack([logits, logits[::-1]])
        picked = picked_log_softmax(stacked, labels)
    assert picked.flags.c_contiguous
    np.testing.assert_array_equal(picked[0], theirs[np.arange(len(logits)), labels])
    np.testing.assert_array_equal(picked[1], theirs[::-1][np.arange(len(logits)), labels])
    assert picked_log_softmax(logits[:1], np.array([1]))[0] == -999.0


def test_evaluation_loss_is_the_cross_entropy_scipy_gives():
    rng = np.random.default_rng(7)
    logits, labels = rng.normal(size=(100, 10)).astype(np.float32), rng.integers(0, 10, 100)
    expected = -scipy_log_softmax(logits.astype(np.float64), axis=1)[np.arange(100), labels].mean()
    assert evaluate_outputs(logits, labels, "classification")["loss"] == expected


@pytest.mark.parametrize(("task", "outputs"), [("classification", 10), ("binary", 1), ("regression", 3)])
def test_a_stacked_groups_metrics_are_each_members_own_bit_for_bit(task, outputs):
    # harness.adapters.vectorize evaluates all members in one pass; a member's stored metrics must be what
    # evaluate_outputs gives it alone, whatever its companions (wide, saturating, non-finite logits among them)
    rng = np.random.default_rng(3)
    stacked = rng.normal(0.0, 1.0, size=(6, 1001, outputs)) * 10.0 ** rng.uniform(-3, 3, size=(6, 1, 1))
    stacked[1, 0, 0] = 1000.0
    stacked[2, 5, 0] = np.inf
    stacked[3, 7, 0] = np.nan
    stacked = stacked.astype(np.float32)
    if task == "classification":
        y = rng.integers(0, outputs, 1001)
    elif task == "binary":
        y = rng.integers(0, 2, 1001).astype(np.float32)
    else:
        y = rng.normal(size=(1001, outputs)).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        together = evaluate_members(stacked, y, task)
        alone = [evaluate_outputs(member, y, task) for member in stacked]
    assert len(together) == 6
    for mine, theirs in zip(together, alone):
        assert mine.keys() == theirs.keys()
        for name in theirs:
            assert mine[name] == theirs[name] or (np.isnan(mine[name]) and np.isnan(theirs[name])), name
    assert evaluate_members(stacked[:, :0], y[:0], task) == [{}] * 6
