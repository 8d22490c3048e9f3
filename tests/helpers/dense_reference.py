"""Float64 numpy reference of training a stack of dense layers: the canonical losses with their
gradients, backpropagation, and the canonical update rules (harness.spec.components.OPTIMIZERS) with
the regularizers in their canonical order. The adapters' optimizer, loss and regularizer tests compare
each step of a float32 adapter with this.

train_side_by_side runs an adapter and this reference from the same weights on the same batches.

Network: dense(tanh) x (num_layers - 1), then a linear dense layer; weights by canonical key
('0.dense.kernel' (in, out), '0.dense.bias' (out,), ...).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from harness.data.batches import epoch_batches
from harness.spec import Component, RegularizerSpec, TrialSpec, initial_weights
from helpers.specs import labelled_arrays


def forward(weights: dict[str, np.ndarray], x: np.ndarray, num_layers: int) -> list[np.ndarray]:
    """Every layer's activation, the input first and the logits last."""
    activations = [x]
    for index in range(num_layers):
        z = activations[-1] @ weights[f"{index}.dense.kernel"] + weights[f"{index}.dense.bias"]
        activations.append(np.tanh(z) if index < num_layers - 1 else z)
    return activations


def loss_and_gradient(loss: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(data loss, d loss / d z) of a canonical loss of the logits z (N, outputs): cross_entropy (integer
    labels), binary_cross_entropy (0/1 labels, one logit), mse (mean over every element)."""
    n = len(z)
    if loss == "cross_entropy":
        log_p = special.log_softmax(z, axis=1)
        gradient = np.exp(log_p)
        gradient[np.arange(n), y] -= 1.0
        return float(-log_p[np.arange(n), y].mean()), gradient / n
    if loss == "binary_cross_entropy":
        logit, label = z[:, 0], y.astype(np.float64)
        value = (np.logaddexp(0.0, logit) - label * logit).mean()
        return float(value), ((special.expit(logit) - label) / n)[:, None]
    error = z - y
    return float((error**2).mean()), 2.0 * error / error.size


def loss_and_gradients(weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, loss: str, num_layers: int):
    """(data loss, {key: d loss / d weight}) by backpropagation through the tanh layers."""
    activations = forward(weights, x, num_layers)
    value, dz = loss_and_gradient(loss, activations[-1], y)
    gradients = {}
    for index in reversed(range(num_layers)):
        gradients[f"{index}.dense.kernel"] = activations[index].T @ dz
        gradients[f"{index}.dense.bias"] = dz.sum(axis=0)
        if index > 0:
            dz = (dz @ weights[f"{index}.dense.kernel"].T) * (1.0 - activations[index] ** 2)  # tanh'
    return value, gradients


class ReferenceOptimizer:
    """The canonical update of `component` with `regularizer`, in the canonical order: penalties (l1, l2 on
    kernels), clip_norm (global), clip_value, decoupled weight decay (kernels), then the rule."""

    def __init__(self, component: Component, regularizer: RegularizerSpec) -> None:
        self.name, self.hyper, self.regularizer = component.name, dict(component.params), regularizer
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.t = 0
        self.norms: list[float] = []  # global gradient norm before clipping, per step

    def step(self, weights: dict[str, np.ndarray], gradients: dict[str, np.ndarray]) -> None:
        """Update `weights` in place by one step of the data-loss `gradients`."""
        h, r = self.hyper, self.regularizer
        self.t += 1
        g = {}
        for key, grad in gradients.items():
            if key.endswith("kernel"):
                grad = grad + r.l1 * np.sign(weights[key]) + r.l2 * weights[key]
            g[key] = grad
        norm = math.sqrt(sum(float((v**2).sum()) for v in g.values()))
        self.norms.append(norm)
        if r.clip_norm is not None and norm > r.clip_norm:
            g = {k: v * (r.clip_norm / norm) for k, v in g.items()}
        if r.clip_value is not None:
            g = {k: np.clip(v, -r.clip_value, r.clip_value) for k, v in g.items()}
        decay = r.weight_decay + (h["weight_decay"] if self.name == "adamw" else 0.0)
        for key, p in weights.items():
            if key.endswith("kernel"):
                weights[key] = p - h["lr"] * decay * p
        for key, p in weights.items():
            weights[key] = p - self.delta(key, g[key])

    def delta(self, key: str, g: np.ndarray) -> np.ndarray:
        h, s = self.hyper, self.state.setdefault(key, {})
        if self.name == "sgd":
            return h["lr"] * g
        if self.name in ("momentum", "nesterov"):
            s["v"] = h["momentum"] * s.get("v", 0.0) + g
            return h["lr"] * (s["v"] if self.name == "momentum" else g + h["momentum"] * s["v"])
        if self.name == "adagrad":
            s["G"] = s.get("G", h["initial_accumulator"]) + g**2
            return h["lr"] * g / (np.sqrt(s["G"]) + h["eps"])
        if self.name == "rmsprop":
            s["s"] = h["rho"] * s.get("s", 0.0) + (1 - h["rho"]) * g**2
            return h["lr"] * g / (np.sqrt(s["s"]) + h["eps"])
        b1, b2 = h["beta1"], h["beta2"]  # adam, adamw
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        m_hat, v_hat = s["m"] / (1 - b1**self.t), s["v"] / (1 - b2**self.t)
        return h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"])


# --- an adapter and the reference side by side -----------------------------------------------------------

# float64 reference vs a float32 adapter: every op rounds at ~6e-8 relative; over 4-5 steps of forward,
# backward and update the measured worst deviation is ~1e-6 relative, and adaptive rules (division by
# the sqrt of small second moments) amplify it, hence rtol 1e-5. The atol covers parameters that pass
# through ~0, where a relative bound is meaningless.
RTOL, ATOL = 1e-5, 1e-6


def parameter_atol(spec: TrialSpec) -> float:
    """ATOL, or 1e-4*lr for adaptive rules: lr*g/sqrt(v) of a small gradient (e.g. one shrunk by
    clipping and penalties) moves by a sizeable fraction of lr for a last-bit change in g (measured:
    1.3e-6 = 2.7e-5*lr on a bias after 4 adam steps with every regularizer on, Keras)."""
    if spec.optimizer.name in ("adam", "adamw", "rmsprop", "adagrad"):
        return max(ATOL, 1e-4 * spec.optimizer["lr"])
    return ATOL


def train_side_by_side(adapter: Any, spec: TrialSpec, steps: int = 4):
    """Train the adapter one step per call, and the numpy reference alongside, from the same shared
    initial weights on the same batches (the trial's own order, batch 8 of 32 samples).

    Returns (adapter losses, reference losses, adapter weights after each step, reference weights
    after each step, the reference optimizer (its per-step gradient norms)).
    """
    info, x, y = labelled_arrays(spec.loss.name)
    plans = spec.model.plan(info.input_shape)
    start = initial_weights(plans, spec.initializer, spec.seed)
    model = adapter.build(spec, info)
    model.set_weights(start)
    model.set_training_data(x, y)
    batches = [batch for epoch in (1, 2) for batch in epoch_batches(len(x), spec.training, spec.seed, epoch)][:steps]
    optimizer = ReferenceOptimizer(spec.optimizer, spec.regularizer)
    weights = {k: v.astype(np.float64) for k, v in start.items()}
    losses, reference_losses, adapter_weights, reference_weights = [], [], [], []
    for batch in batches:
        step_losses = model.train_epoch([batch])
        assert step_losses.dtype == np.float64 and step_losses.shape == (1,)
        losses.append(step_losses[0])
        value, gradients = loss_and_gradients(
            weights, x[batch].astype(np.float64), y[batch], spec.loss.name, len(plans)
        )
        reference_losses.append(value)  # the DATA loss: penalties are not part of the returned value
        optimizer.step(weights, gradients)
        adapter_weights.append(model.get_weights())
        reference_weights.append({k: v.copy() for k, v in weights.items()})
    return np.array(losses), np.array(reference_losses), adapter_weights, reference_weights, optimizer


def assert_matches_reference(spec: TrialSpec, losses, reference_losses, adapter_weights, reference_weights) -> None:
    """Losses and every weight after every step within RTOL and ATOL (parameter_atol for the weights)."""
    np.testing.assert_allclose(losses, reference_losses, rtol=RTOL, atol=ATOL)
    for step, (ours, theirs) in enumerate(zip(adapter_weights, reference_weights)):
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(
                ours[key], theirs[key], rtol=RTOL, atol=parameter_atol(spec), err_msg=f"step {step + 1} {key}"
            )
