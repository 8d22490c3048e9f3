"""The numpy log_softmax every evaluation uses gives scipy.special.log_softmax's bits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from harness.adapters.metrics import evaluate_outputs, log_softmax


@pytest.mark.parametrize("seed", range(5))
def test_log_softmax_gives_scipys_bits(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 10.0 ** rng.uniform(-3, 3), size=(257, 10))
    logits[0] = [1000.0, 1.0, *[0.0] * 8]  # saturating: log(softmax) alone would give -inf
    logits[1, 3] = np.inf
    logits[2, :] = -np.inf
    logits[3, 5] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):  # the +inf row overflows in both
        ours, theirs = log_softmax(logits, axis=1), scipy_log_softmax(logits, axis=1)
    np.testing.assert_array_equal(ours, theirs)  # NaN where theirs is NaN, every other value bit for bit
    assert ours[0, 1] == -999.0


def test_evaluation_loss_is_the_cross_entropy_scipy_gives():
    rng = np.random.default_rng(7)
    logits, labels = rng.normal(size=(100, 10)).astype(np.float32), rng.integers(0, 10, 100)
    expected = -scipy_log_softmax(logits.astype(np.float64), axis=1)[np.arange(100), labels].mean()
    assert evaluate_outputs(logits, labels, "classification")["loss"] == expected
