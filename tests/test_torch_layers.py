"""What only the PyTorch realization of the canonical layers has to get right: torch's recurrent layers
carry a second bias (bias_hh) that the canonical simple_rnn and lstm do not have. Every framework-neutral
layer check (forward formulas, training steps, native init, diagnostics) is in tests/test_adapter_layers.py."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.layer_reference import numeric_gradient, random_weights, reference
from helpers.specs import arrays_info, trial_spec

pytest.importorskip("torch")


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"], ids=str)
def test_recurrent_biases_move_by_one_gradient(torch_adapter, kind):
    """One SGD step moves each canonical bias by exactly lr * dL/dbias (finite differences in float64):
    torch's second bias (bias_hh) must not add a second gradient for simple_rnn/lstm."""
    lr = 0.5
    spec = trial_spec(
        [{kind: {"units": 3, "bidirectional": True}}, {"dense": {}}], loss="mse", optimizer={"name": "sgd", "lr": lr}
    )
    model = torch_adapter.build(spec, arrays_info((5, 2)))
    plans = spec.model.plan((5, 2))
    rng = np.random.default_rng(3)
    weights = random_weights(plans, rng)
    model.set_weights(weights)
    x = rng.normal(size=(4, 5, 2)).astype(np.float32)
    y = rng.normal(size=(4, 3)).astype(np.float32)
    model.set_training_data(x, y)
    model.train_epoch([np.arange(4)])
    after = model.get_weights()
    for key in (f"0.{kind}.forward_bias", f"0.{kind}.backward_bias"):

        def loss_of(bias, key=key):
            changed = {k: v.astype(np.float64) for k, v in weights.items()}
            changed[key] = bias
            outputs, _ = reference(spec.model, plans, changed, x)
            return np.mean((outputs["output"] - y) ** 2)

        gradient = numeric_gradient(loss_of, weights[key].astype(np.float64))
        step = (weights[key].astype(np.float64) - after[key]) / lr
        # central differences at eps 1e-6 in float64 are exact to ~1e-9; the torch gradient is float32
        np.testing.assert_allclose(step, gradient, rtol=1e-3, atol=1e-5)
        assert np.abs(gradient).max() > 1e-3  # the check is not vacuous
    if kind != "gru":  # the canonical bias lives in bias_ih; bias_hh stays a frozen zero
        rnn = model.network.module[0].rnn
        assert not rnn.bias_hh_l0.requires_grad and not rnn.bias_hh_l0.any() and not rnn.bias_hh_l0_reverse.any()
