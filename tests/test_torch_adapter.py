"""The PyTorch adapter realizes the canonical meaning: every optimizer, loss, activation,
regularizer, dropout and native initializer checked against numpy (float64) formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

torch = pytest.importorskip("torch")

from harness.adapters import get_adapter  # noqa: E402
from harness.adapters.loop import train_trial  # noqa: E402
from harness.data.types import Dataset, DatasetInfo  # noqa: E402
from harness.errors import BackendError  # noqa: E402
from harness.spec import (  # noqa: E402
    DatasetSpec,
    RegularizerSpec,
    TrainingSpec,
    TrialSpec,
    initial_weights,
    resolve_component,
    resolve_model,
)

# float64 reference vs float32 torch: every op rounds at ~6e-8 relative; over 4 steps of
# forward, backward and update the measured worst deviation is ~1e-6 relative, and adaptive
# rules (division by sqrt of small second moments) amplify it, hence rtol 1e-5. The atol
# covers parameters that pass through ~0, where a relative bound is meaningless.
RTOL, ATOL = 1e-5, 1e-6
TASKS = {"cross_entropy": "classification", "binary_cross_entropy": "binary", "mse": "regression"}


@pytest.fixture(scope="module")
def adapter():
    adapter = get_adapter("torch")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    adapter.configure(1)
    yield adapter
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def make_spec(
    optimizer="sgd", loss="cross_entropy", layers=None, num_outputs=3, regularizer=None,
    initializer="he_normal", init_mode="shared", seed=0, epochs=1, batch_size=8, device="cpu",
) -> TrialSpec:
    if layers is None:
        layers = [{"dense": {"units": 6, "activation": "tanh"}}, {"dense": {}}]
    return TrialSpec(
        dataset=DatasetSpec("arrays"),
        model=resolve_model({"layers": layers}, num_outputs),
        loss=resolve_component("loss", loss, "loss"),
        optimizer=resolve_component("optimizer", optimizer, "optimizer"),
        initializer=resolve_component("initializer", initializer, "initializer"),
        regularizer=regularizer or RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=batch_size),
        seed=seed,
        backend="torch",
        init_mode=init_mode,
        device=device,
    )


def make_arrays(loss: str, num_samples: int = 32, features: int = 5, outputs: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_samples, features)).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, outputs, num_samples).astype(np.int64)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, num_samples).astype(np.int64)
    else:
        y = rng.normal(size=(num_samples, outputs)).astype(np.float32)
    classes = outputs if loss == "cross_entropy" else (2 if loss == "binary_cross_entropy" else None)
    info = DatasetInfo("arrays", TASKS[loss], (features,), outputs, classes)
    return info, x, y


# --- numpy reference (float64): dense/tanh network, losses, penalties, clipping, rules ----------


def reference_forward(weights, x, num_layers):
    """Activations of dense(tanh) x (num_layers-1) then a linear dense layer; returns the list."""
    activations = [x]
    for index in range(num_layers):
        z = activations[-1] @ weights[f"{index}.dense.kernel"] + weights[f"{index}.dense.bias"]
        activations.append(np.tanh(z) if index < num_layers - 1 else z)
    return activations


def reference_loss(loss, z, y):
    """(data loss, d loss / d z) of a canonical loss, float64."""
    n = len(z)
    if loss == "cross_entropy":
        log_p = special.log_softmax(z, axis=1)
        gradient = np.exp(log_p)
        gradient[np.arange(n), y] -= 1.0
        return -log_p[np.arange(n), y].mean(), gradient / n
    if loss == "binary_cross_entropy":
        logit, label = z[:, 0], y.astype(np.float64)
        value = (np.logaddexp(0.0, logit) - label * logit).mean()
        return value, ((special.expit(logit) - label) / n)[:, None]
    error = z - y
    return (error**2).mean(), 2.0 * error / error.size


def reference_gradients(weights, x, y, loss, num_layers):
    activations = reference_forward(weights, x, num_layers)
    value, dz = reference_loss(loss, activations[-1], y)
    gradients = {}
    for index in reversed(range(num_layers)):
        gradients[f"{index}.dense.kernel"] = activations[index].T @ dz
        gradients[f"{index}.dense.bias"] = dz.sum(axis=0)
        if index > 0:
            dz = (dz @ weights[f"{index}.dense.kernel"].T) * (1.0 - activations[index] ** 2)  # tanh'
    return value, gradients


class ReferenceOptimizer:
    """components.OPTIMIZERS formulas, written out; regularizer order: penalties, clip, decay, rule."""

    def __init__(self, component, regularizer):
        self.name, self.hyper, self.regularizer = component.name, dict(component.params), regularizer
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.t = 0
        self.norms: list[float] = []  # global gradient norm before clipping, per step

    def step(self, weights, gradients):
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
        for key in weights:
            if key.endswith("kernel"):
                weights[key] = weights[key] - h["lr"] * decay * weights[key]
        for key, p in weights.items():
            weights[key] = p - self.delta(key, g[key])

    def delta(self, key, g):
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


def run_steps(adapter, spec, steps=4, batch_size=8):
    """Train torch one step per call and the numpy reference side by side from the same weights.

    Returns (torch losses, reference losses, torch weights per step, reference weights per step, reference).
    """
    info, x, y = make_arrays(spec.loss.name, outputs=spec.model.plan((5,))[-1].output_shape[0])
    plans = spec.model.plan(info.input_shape)
    start = initial_weights(plans, spec.initializer, spec.seed)
    model = adapter.build(spec, info)
    model.set_weights(start)
    model.set_training_data(x, y)
    reference = ReferenceOptimizer(spec.optimizer, spec.regularizer)
    weights = {k: v.astype(np.float64) for k, v in start.items()}
    batches = [np.arange(i * batch_size, (i + 1) * batch_size) % len(y) for i in range(steps)]
    torch_losses, reference_losses, torch_weights, reference_weights = [], [], [], []
    for batch in batches:
        torch_losses.append(model.train_epoch([batch])[0])
        value, gradients = reference_gradients(weights, x[batch].astype(np.float64), y[batch], spec.loss.name, len(plans))
        reference_losses.append(value)
        reference.step(weights, gradients)
        torch_weights.append(model.get_weights())
        reference_weights.append({k: v.copy() for k, v in weights.items()})
    return np.array(torch_losses), np.array(reference_losses), torch_weights, reference_weights, reference


def assert_matches_reference(torch_losses, reference_losses, torch_weights, reference_weights):
    np.testing.assert_allclose(torch_losses, reference_losses, rtol=RTOL, atol=ATOL)
    for step, (ours, theirs) in enumerate(zip(torch_weights, reference_weights)):
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=RTOL, atol=ATOL, err_msg=f"step {step + 1} {key}")


OPTIMIZER_CASES = [
    "sgd", {"name": "sgd", "lr": 0.3},
    "momentum", {"name": "momentum", "lr": 0.05, "momentum": 0.5}, {"name": "momentum", "momentum": 0.0},
    "nesterov", {"name": "nesterov", "lr": 0.05, "momentum": 0.7},
    "adagrad", {"name": "adagrad", "lr": 0.1, "eps": 1e-3, "initial_accumulator": 0.1},
    "rmsprop", {"name": "rmsprop", "lr": 0.003, "rho": 0.9, "eps": 1e-4},
    "adam", {"name": "adam", "lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-4}, {"name": "adam", "beta1": 0.0},
    "adamw", {"name": "adamw", "lr": 0.01, "weight_decay": 0.5},
]


def case_id(case) -> str:
    if isinstance(case, str):
        return case
    params = ",".join(f"{key}={value}" for key, value in case.items() if key != "name")
    return f"{case['name']}({params})"


@pytest.mark.parametrize("optimizer", OPTIMIZER_CASES, ids=[case_id(c) for c in OPTIMIZER_CASES])
def test_optimizer_follows_canonical_formula(adapter, optimizer):
    torch_losses, reference_losses, ours, theirs, _ = run_steps(adapter, make_spec(optimizer=optimizer), steps=5)
    assert_matches_reference(torch_losses, reference_losses, ours, theirs)
    assert not np.allclose(ours[-1]["0.dense.kernel"], ours[0]["0.dense.kernel"])  # it did train


@pytest.mark.parametrize("loss", sorted(TASKS), ids=str)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"], ids=str)
def test_loss_value_and_gradient_match_numpy(adapter, loss, optimizer):
    outputs = 1 if loss == "binary_cross_entropy" else 3
    spec = make_spec(optimizer=optimizer, loss=loss, num_outputs=outputs)
    assert_matches_reference(*run_steps(adapter, spec, steps=3)[:4])


REGULARIZER_CASES = {
    "l1": RegularizerSpec(l1=0.01),
    "l2": RegularizerSpec(l2=0.1),
    "weight_decay": RegularizerSpec(weight_decay=0.2),
    "clip_norm_above": RegularizerSpec(clip_norm=0.05),
    "clip_value": RegularizerSpec(clip_value=0.01),
    "clip_norm_then_value": RegularizerSpec(clip_norm=0.05, clip_value=0.005),
    "all": RegularizerSpec(l1=0.01, l2=0.1, weight_decay=0.2, clip_norm=0.05, clip_value=0.02),
}


@pytest.mark.parametrize("regularizer", REGULARIZER_CASES.values(), ids=REGULARIZER_CASES.keys())
@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1}, "adam"], ids=["sgd", "adam"])
def test_regularizer_follows_canonical_formula(adapter, regularizer, optimizer):
    spec = make_spec(optimizer=optimizer, regularizer=regularizer)
    torch_losses, reference_losses, ours, theirs, reference = run_steps(adapter, spec)
    # the returned loss is the DATA loss: the reference's values exclude the penalties
    assert_matches_reference(torch_losses, reference_losses, ours, theirs)
    if regularizer.clip_norm is not None:
        assert min(reference.norms) > regularizer.clip_norm  # clipping was active at every step


def test_clip_norm_below_threshold_leaves_gradients_bit_identical(adapter):
    _, _, plain, _, reference = run_steps(adapter, make_spec(optimizer="adam"))
    _, _, clipped, _, _ = run_steps(adapter, make_spec(optimizer="adam", regularizer=RegularizerSpec(clip_norm=1e3)))
    assert max(reference.norms) < 1e3
    for ours, theirs in zip(plain, clipped):
        assert all(np.array_equal(ours[key], theirs[key]) for key in ours)


def test_clip_norm_scales_by_exactly_c_over_norm():
    from harness.adapters.torch.optimizers import CanonicalUpdate

    parameters = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    parameters[0].grad = torch.tensor([3e-5, 0.0, 0.0])
    parameters[1].grad = torch.tensor([0.0, 4e-5])  # global norm 5e-5
    sgd = resolve_component("optimizer", {"name": "sgd", "lr": 1.0}, "optimizer")
    CanonicalUpdate(sgd, RegularizerSpec(clip_norm=1e-5), parameters, kernels=[]).step()
    # p = -g * c/norm = -g/5; torch's clip_grad_norm_ (c/(norm + 1e-6)) would be 2% smaller
    np.testing.assert_allclose(parameters[0].detach().numpy(), [-6e-6, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(parameters[1].detach().numpy(), [0.0, -8e-6], rtol=1e-6)


@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1}, "adam", "adamw"], ids=["sgd", "adam", "adamw"])
def test_weight_decay_touches_kernels_only(adapter, optimizer):
    decay = RegularizerSpec(weight_decay=0.0 if optimizer == "adamw" else 0.3)
    _, _, decayed, _, _ = run_steps(adapter, make_spec(optimizer=optimizer, regularizer=decay), steps=1)
    undecayed_optimizer = {"name": "adam"} if optimizer == "adamw" else optimizer  # adamw minus its decay
    _, _, plain, _, _ = run_steps(adapter, make_spec(optimizer=undecayed_optimizer), steps=1)
    for key in plain[0]:
        if key.endswith("bias"):  # after one step the biases saw the same gradient: bit-identical
            assert np.array_equal(decayed[0][key], plain[0][key]), key
        else:
            assert not np.allclose(decayed[0][key], plain[0][key], rtol=0, atol=1e-7), key


ACTIVATION_CASES = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "leaky_relu(0.2)": lambda z: np.where(z > 0, z, 0.2 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "elu(0.5)": lambda z: np.where(z > 0, z, 0.5 * np.expm1(z)),
    "gelu": lambda z: z * 0.5 * (1.0 + special.erf(z / np.sqrt(2.0))),
    "softmax": lambda z: special.softmax(z, axis=-1),
}
ACTIVATION_COMPONENTS = {
    "leaky_relu(0.2)": {"name": "leaky_relu", "negative_slope": 0.2},
    "elu(0.5)": {"name": "elu", "alpha": 0.5},
}


@pytest.mark.parametrize("name", ACTIVATION_CASES, ids=str)
@pytest.mark.parametrize("placement", ["dense", "layer"], ids=str)
def test_activation_matches_numpy(adapter, name, placement):
    activation = ACTIVATION_COMPONENTS.get(name, name)
    if placement == "dense":
        layers = [{"dense": {"units": 7, "activation": activation}}]
    else:
        layers = [{"dense": {"units": 7}}, {"activation": activation}]
    spec = make_spec(loss="mse", layers=layers, num_outputs=7, initializer={"name": "normal", "std": 1.0})
    info, x, _ = make_arrays("mse", num_samples=64, outputs=7)
    model = adapter.build(spec, info)
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, seed=3)
    model.set_weights(weights)
    z = x.astype(np.float64) @ weights["0.dense.kernel"] + weights["0.dense.bias"]  # spans about +-6
    expected = ACTIVATION_CASES[name](z)
    # float32 rounding of the pre-activation (|z| up to ~6) propagates at ~1e-6 relative
    np.testing.assert_allclose(model.predict(x), expected, rtol=2e-6, atol=2e-6)
    if name == "gelu":  # the test can tell the exact form from the tanh approximation
        approximate = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
        assert np.abs(approximate - expected).max() > 1e-4


def test_dropout_rate_scale_and_identity_in_predict(adapter):
    rate, width = 0.3, 50_000
    spec = make_spec(loss="mse", layers=[{"dense": {"units": width}}, {"dropout": rate}, {"dense": {}}], num_outputs=1)
    info = DatasetInfo("arrays", "regression", (3,), 1, None)
    model = adapter.build(spec, info)
    dropout = model.network.module[1]
    ones = torch.ones(1, width)
    dropout.train()
    outputs = dropout(ones).numpy()
    zero_fraction = float((outputs == 0).mean())
    # binomial: std of the fraction is sqrt(0.3*0.7/50000) = 0.002; 5 std
    assert abs(zero_fraction - rate) < 0.011
    np.testing.assert_allclose(outputs[outputs != 0], 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(outputs.mean() - 1.0) < 0.02  # expected activation scale kept: 5 std of the mean
    dropout.eval()
    assert torch.equal(dropout(ones), ones)
    # predict runs the model in evaluation mode: dropout is the identity
    weights = initial_weights(spec.model.plan((3,)), spec.initializer, 0)
    model.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    hidden = x.astype(np.float64) @ weights["0.dense.kernel"] + weights["0.dense.bias"]
    expected = hidden @ weights["2.dense.kernel"] + weights["2.dense.bias"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-4, atol=1e-5)  # sum over 50k terms
    np.testing.assert_array_equal(model.predict(x), model.predict(x))


NATIVE_CASES = {
    "zeros": None,
    "normal": ("normal", lambda fan_in, fan_out: 0.05),
    "uniform": ("uniform", lambda fan_in, fan_out: 0.2),
    "xavier_uniform": ("uniform", lambda fan_in, fan_out: 2.0 * np.sqrt(6 / (fan_in + fan_out))),
    "xavier_normal": ("normal", lambda fan_in, fan_out: 2.0 * np.sqrt(2 / (fan_in + fan_out))),
    "he_normal": ("normal", lambda fan_in, fan_out: np.sqrt(2 / fan_in)),
    "he_uniform": ("uniform", lambda fan_in, fan_out: np.sqrt(6 / fan_in)),
    "lecun_normal": ("normal", lambda fan_in, fan_out: np.sqrt(1 / fan_in)),
    "fan_in_uniform": ("uniform", lambda fan_in, fan_out: 1 / np.sqrt(fan_in)),
}
NATIVE_COMPONENTS = {
    "normal": {"name": "normal", "std": 0.05}, "uniform": {"name": "uniform", "limit": 0.2},
    "xavier_uniform": {"name": "xavier_uniform", "gain": 2.0}, "xavier_normal": {"name": "xavier_normal", "gain": 2.0},
}


def native_weights(adapter, initializer, fan_in=300, fan_out=200, seed=0):
    spec = make_spec(loss="mse", layers=[{"dense": {"units": fan_out}}], num_outputs=fan_out,
                     initializer=initializer, init_mode="native", seed=seed)
    return adapter.build(spec, DatasetInfo("arrays", "regression", (fan_in,), fan_out, None)).get_weights()


@pytest.mark.parametrize("name", NATIVE_CASES, ids=str)
def test_native_initializer_draws_the_canonical_distribution(adapter, name):
    weights = native_weights(adapter, NATIVE_COMPONENTS.get(name, name))
    kernel, bias = weights["0.dense.kernel"].astype(np.float64), weights["0.dense.bias"]
    assert kernel.shape == (300, 200)
    if NATIVE_CASES[name] is None:
        assert not kernel.any() and not bias.any()
        return
    family, scale_of = NATIVE_CASES[name]
    scale = scale_of(300, 200)
    samples = kernel.ravel()  # 60,000 draws
    if family == "normal":
        distribution = stats.norm(0.0, scale)
        assert abs(samples.std() / scale - 1) < 0.02  # std of the sample std ~ 1/sqrt(2n) = 0.003
        assert np.abs(samples).max() > 3.5 * scale  # plain, NOT truncated (a 2-sigma truncation stops at 2.27)
    else:
        distribution = stats.uniform(-scale, 2 * scale)
        assert np.abs(samples).max() <= scale * (1 + 1e-6) and np.abs(samples).max() > 0.999 * scale
    assert abs(samples.mean()) < 5 * distribution.std() / np.sqrt(samples.size)
    # deterministic draw (seeded), so this threshold cannot flake; a wrong scale gives p ~ 0
    assert stats.kstest(samples, distribution.cdf).pvalue > 1e-3
    if name == "fan_in_uniform":  # the one initializer that draws biases
        assert stats.kstest(bias, distribution.cdf).pvalue > 1e-3 and np.abs(bias).max() <= scale
    else:
        assert not bias.any()


@pytest.mark.parametrize("fan_in, fan_out", [(300, 200), (200, 400)], ids=["tall", "wide"])
def test_native_orthogonal_is_orthogonal_with_gain(adapter, fan_in, fan_out):
    kernel = native_weights(adapter, {"name": "orthogonal", "gain": 1.5}, fan_in, fan_out)["0.dense.kernel"]
    gram = kernel.T @ kernel if fan_in >= fan_out else kernel @ kernel.T  # along the smaller dimension
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(min(fan_in, fan_out)), atol=2e-5)  # float32 sums of 300 terms


def test_native_init_is_seeded(adapter):
    first, again = native_weights(adapter, "he_normal", seed=5), native_weights(adapter, "he_normal", seed=5)
    other = native_weights(adapter, "he_normal", seed=6)
    assert np.array_equal(first["0.dense.kernel"], again["0.dense.kernel"])
    assert not np.array_equal(first["0.dense.kernel"], other["0.dense.kernel"])


def test_shared_weights_round_trip_exactly_and_reset_optimizer_state(adapter):
    spec = make_spec(optimizer="adam")
    info, x, y = make_arrays("cross_entropy")
    start = initial_weights(spec.model.plan(info.input_shape), spec.initializer, 0)
    model = adapter.build(spec, info)
    model.set_weights(start)
    loaded = model.get_weights()
    assert loaded.keys() == start.keys()
    for key in start:
        assert loaded[key].dtype == np.float32 and np.array_equal(loaded[key], start[key]), key
    expected = reference_forward({k: v.astype(np.float64) for k, v in start.items()}, x.astype(np.float64), 2)[-1]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    model.set_training_data(x, y)
    batches = [np.arange(0, 8), np.arange(8, 16)]
    first = model.train_epoch(batches)
    model.set_weights(start)  # fresh Adam moments and step count: the same two steps again
    assert np.array_equal(model.train_epoch(batches), first) and first.dtype == np.float64


@pytest.mark.parametrize(
    "weights, fragment",
    [({"0.dense.kernel": np.zeros((5, 6))}, "missing"), ({"0.dense.kernel": np.zeros((6, 5))}, "shape")],
    ids=["missing-key", "transposed-kernel"],
)
def test_set_weights_rejects_mismatched_arrays(adapter, weights, fragment):
    spec = make_spec()
    info, _, _ = make_arrays("cross_entropy")
    full = initial_weights(spec.model.plan(info.input_shape), spec.initializer, 0)
    if fragment == "shape":
        weights = {**full, **weights}
    with pytest.raises(ValueError, match=fragment):
        adapter.build(spec, info).set_weights(weights)


def digits_dataset() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    info = DatasetInfo("digits", "classification", (64,), 10, 10)
    return Dataset(info, x[train], y[train], x[:0], y[:0], x[test], y[test])


def digits_spec(**changes) -> TrialSpec:
    fields = dict(
        dataset=DatasetSpec("digits"),
        model=resolve_model({"mlp": {"hidden": [32]}}, 10, dropout=0.2),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", {"name": "adam", "lr": 0.01}, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(dropout=0.2, l2=1e-4),
        training=TrainingSpec(epochs=3, batch_size=64),
        seed=0,
        backend="torch",
    )
    fields.update(changes)
    return TrialSpec(**fields)


@pytest.mark.parametrize("init_mode", ["shared", "native"], ids=str)
def test_train_trial_end_to_end_learns_and_is_deterministic(adapter, init_mode):
    data = digits_dataset()
    spec = digits_spec(init_mode=init_mode)
    first = train_trial(spec, adapter, data)
    torch.manual_seed(12345)  # the global torch RNG must not matter: dropout uses the trial's own
    second = train_trial(spec, adapter, data)
    assert first.status == "ok" and first.epochs_completed == 3
    assert first.metrics == second.metrics  # bit-identical, dropout and shuffling included
    assert first.final()["test_accuracy"] > 0.8  # chance is 0.1
    assert first.train_seconds > 0 and first.versions["torch"] == torch.__version__
    other_seed = train_trial(digits_spec(init_mode=init_mode, seed=1), adapter, data)
    assert other_seed.metrics != first.metrics


@pytest.mark.filterwarnings("error")  # e.g. torch's warning about non-writable numpy arrays
def test_train_trial_on_a_harness_dataset(adapter):
    from harness.data import load_dataset, resolve_dataset

    spec = digits_spec(
        dataset=resolve_dataset({"name": "mnist1d"}), model=resolve_model({"mlp": {"hidden": [100, 100]}}, 10),
        regularizer=RegularizerSpec(), training=TrainingSpec(epochs=3, batch_size=100, shuffle=False),
    )
    data = load_dataset(spec.dataset)  # read-only arrays, shared in the process
    result = train_trial(spec, adapter, data)
    assert result.status == "ok"
    assert result.final()["test_accuracy"] > 0.3  # chance is 0.1; measured 0.51-0.54 over seeds 0-3


def test_huge_learning_rate_is_reported_as_diverged(adapter):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 2))).astype(np.float32)
    info = DatasetInfo("arrays", "regression", (5,), 2, None)
    data = Dataset(info, x, y, x[:0], y[:0], x[:50], y[:50])
    spec = digits_spec(
        model=resolve_model({"mlp": {"hidden": [16]}}, 2), loss=resolve_component("loss", "mse", "loss"),
        optimizer=resolve_component("optimizer", {"name": "sgd", "lr": 1e4}, "optimizer"),
        regularizer=RegularizerSpec(), training=TrainingSpec(epochs=20, batch_size=20),
    )
    result = train_trial(spec, adapter, data)
    assert result.status == "diverged" and result.diverged_epoch is not None
    assert result.epochs_completed < 20 and not math.isfinite(result.metrics[-1][2])


def test_adapter_identity_versions_and_cpu_device(adapter):
    assert adapter.name == "torch"
    assert set(adapter.versions()) == {"torch", "numpy"}
    info = adapter.device_info("cpu")
    assert info["device"] == "cpu" and info["name"]
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"], ids=str)
def test_gpu_request_without_gpu_raises_backend_error(adapter, device):
    assert adapter.device_info("auto")["device"] == "cpu"
    with pytest.raises(BackendError, match="no GPU"):
        adapter.device_info(device)
    with pytest.raises(BackendError, match="no GPU"):
        adapter.build(make_spec(device=device), make_arrays("cross_entropy")[0])


def test_unknown_device_raises_backend_error(adapter):
    with pytest.raises(BackendError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        adapter.device_info("tpu")
