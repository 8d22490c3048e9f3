"""The Keras adapter realizes the canonical meaning: every optimizer, loss, activation and
regularizer against float64 numpy formulas; weights, dropout, determinism, devices, backend
selection, and the harness loop end to end. (Agreement with PyTorch: tests/test_parity.py.)"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import special

pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from harness.adapters import get_adapter  # noqa: E402
from harness.adapters.loop import train_trial  # noqa: E402
from harness.data import load_dataset, resolve_dataset  # noqa: E402
from harness.data.batches import epoch_batches  # noqa: E402
from harness.data.types import Dataset, DatasetInfo  # noqa: E402
from harness.errors import BackendError, SpecError  # noqa: E402
from harness.spec import (  # noqa: E402
    DatasetSpec, RegularizerSpec, TrainingSpec, TrialSpec, initial_weights, resolve_component, resolve_model,
)

pytestmark = pytest.mark.keras

# float64 reference vs float32 Keras: each op rounds at ~6e-8 relative; over 4 steps of forward,
# backward and update the measured worst deviation is ~1e-6 relative (adaptive rules divide by
# sqrt of second moments, which amplifies it), hence rtol 1e-5. The atol covers values passing
# through ~0, where a relative bound means nothing.
RTOL, ATOL = 1e-5, 1e-6
FEATURES, HIDDEN, OUTPUTS, SAMPLES, BATCH, STEPS = 5, 6, 3, 32, 8, 4
TASKS = {"cross_entropy": "classification", "binary_cross_entropy": "binary", "mse": "regression"}


@pytest.fixture(scope="module")
def adapter():
    adapter = get_adapter("keras")
    adapter.configure(1)
    return adapter


def make_spec(optimizer="sgd", loss="cross_entropy", regularizer=None, initializer="xavier_uniform", layers=None,
              seed=0, init_mode="shared", epochs=1, batch_size=BATCH, backend="keras") -> TrialSpec:
    outputs = 1 if loss == "binary_cross_entropy" else OUTPUTS
    layers = layers or [{"dense": {"units": HIDDEN, "activation": "tanh"}}, {"dense": {}}]
    return TrialSpec(
        dataset=DatasetSpec("arrays"),
        model=resolve_model({"layers": layers}, outputs),
        loss=resolve_component("loss", loss, "loss"),
        optimizer=resolve_component("optimizer", optimizer, "optimizer"),
        initializer=resolve_component("initializer", initializer, "initializer"),
        regularizer=regularizer or RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=batch_size),
        seed=seed, backend=backend, init_mode=init_mode,
    )


def make_data(loss="cross_entropy", samples=SAMPLES, seed=1) -> tuple[DatasetInfo, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    outputs = 1 if loss == "binary_cross_entropy" else OUTPUTS
    x = rng.normal(size=(samples, FEATURES)).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, OUTPUTS, samples).astype(np.int64)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, samples).astype(np.int64)
    else:
        y = rng.normal(size=(samples, OUTPUTS)).astype(np.float32)
    classes = {"cross_entropy": OUTPUTS, "binary_cross_entropy": 2}.get(loss)
    return DatasetInfo("arrays", TASKS[loss], (FEATURES,), outputs, classes), x, y


# --- float64 numpy reference of the canonical formulas (dense-tanh-dense) ----------------------


def reference_loss(loss: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(data loss, d loss / d logits)."""
    n = len(z)
    if loss == "cross_entropy":
        probabilities = special.softmax(z, axis=1)
        value = -np.log(probabilities[np.arange(n), y]).mean()
        gradient = probabilities.copy()
        gradient[np.arange(n), y] -= 1.0
        return value, gradient / n
    if loss == "binary_cross_entropy":
        target = y.reshape(-1, 1).astype(np.float64)
        value = (np.logaddexp(0.0, z) - target * z).mean()
        return value, (special.expit(z) - target) / n
    return ((z - y) ** 2).mean(), 2.0 * (z - y) / z.size


def reference_step_gradients(w: dict, x: np.ndarray, y: np.ndarray, loss: str) -> tuple[float, dict]:
    hidden = np.tanh(x @ w["0.dense.kernel"] + w["0.dense.bias"])
    logits = hidden @ w["1.dense.kernel"] + w["1.dense.bias"]
    value, d_logits = reference_loss(loss, logits, y)
    d_hidden = (d_logits @ w["1.dense.kernel"].T) * (1.0 - hidden**2)
    return value, {
        "1.dense.kernel": hidden.T @ d_logits, "1.dense.bias": d_logits.sum(0),
        "0.dense.kernel": x.T @ d_hidden, "0.dense.bias": d_hidden.sum(0),
    }


def reference_training(spec: TrialSpec, x, y, weights: dict, batches: list) -> tuple[list[float], dict]:
    """Losses and final weights of the canonical rules: penalties, clip_norm, clip_value, decay, rule."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    o, r = dict(spec.optimizer.params), spec.regularizer
    name, lr = spec.optimizer.name, o["lr"]
    decay = r.weight_decay + o.get("weight_decay", 0.0)
    state: dict[str, dict] = {k: {"v": np.zeros_like(p), "m": np.zeros_like(p),
                                  "G": np.full_like(p, o.get("initial_accumulator", 0.0))} for k, p in w.items()}
    losses = []
    for t, batch in enumerate(batches, start=1):
        value, g = reference_step_gradients(w, x[batch].astype(np.float64), y[batch], spec.loss.name)
        losses.append(value)
        for key in g:
            if key.endswith("kernel"):
                g[key] = g[key] + r.l1 * np.sign(w[key]) + r.l2 * w[key]
        norm = math.sqrt(sum((v**2).sum() for v in g.values()))
        if r.clip_norm is not None and norm > r.clip_norm:
            g = {k: v * (r.clip_norm / norm) for k, v in g.items()}
        if r.clip_value is not None:
            g = {k: np.clip(v, -r.clip_value, r.clip_value) for k, v in g.items()}
        for key, grad in g.items():
            p, s = w[key], state[key]
            if key.endswith("kernel") and decay:
                p = p - lr * decay * p
            if name == "sgd":
                p = p - lr * grad
            elif name in ("momentum", "nesterov"):
                s["v"] = o["momentum"] * s["v"] + grad
                p = p - lr * (s["v"] if name == "momentum" else grad + o["momentum"] * s["v"])
            elif name == "adagrad":
                s["G"] = s["G"] + grad**2
                p = p - lr * grad / (np.sqrt(s["G"]) + o["eps"])
            elif name == "rmsprop":
                s["v"] = o["rho"] * s["v"] + (1 - o["rho"]) * grad**2
                p = p - lr * grad / (np.sqrt(s["v"]) + o["eps"])
            else:  # adam, adamw
                s["m"] = o["beta1"] * s["m"] + (1 - o["beta1"]) * grad
                s["v"] = o["beta2"] * s["v"] + (1 - o["beta2"]) * grad**2
                m_hat, v_hat = s["m"] / (1 - o["beta1"] ** t), s["v"] / (1 - o["beta2"] ** t)
                p = p - lr * m_hat / (np.sqrt(v_hat) + o["eps"])
            w[key] = p
    return losses, w


def train_keras(adapter, spec: TrialSpec, steps: int = STEPS, seed: int = 1):
    """(losses, final weights, initial weights, reference losses, reference weights)."""
    info, x, y = make_data(spec.loss.name, seed=seed)
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, spec.seed)
    model = adapter.build(spec, info)
    model.set_weights(weights)
    model.set_training_data(x, y)
    batches = epoch_batches(len(x), spec.training, spec.seed, 1)[:steps]
    losses = model.train_epoch(batches)
    reference_losses, reference_weights = reference_training(spec, x, y, weights, batches)
    return losses, model.get_weights(), weights, reference_losses, reference_weights


def parameter_atol(spec: TrialSpec) -> float:
    """ATOL, or 1e-4*lr for adaptive rules: lr*g/sqrt(v) of a small gradient (e.g. one shrunk by
    clipping and penalties) moves by a sizeable fraction of lr for a last-bit change in g (measured:
    1.3e-6 = 2.7e-5*lr on a bias after 4 adam steps with every regularizer on)."""
    if spec.optimizer.name in ("adam", "adamw", "rmsprop", "adagrad"):
        return max(ATOL, 1e-4 * spec.optimizer["lr"])
    return ATOL


def assert_matches_reference(losses, final, reference_losses, reference_weights, atol: float = ATOL) -> None:
    assert losses.dtype == np.float64 and losses.shape == (len(reference_losses),)
    np.testing.assert_allclose(losses, reference_losses, rtol=RTOL, atol=ATOL)
    for key, value in reference_weights.items():
        np.testing.assert_allclose(final[key], value, rtol=RTOL, atol=atol, err_msg=key)


# --- optimizers, losses, regularizers -------------------------------------------------------------

OPTIMIZERS = [
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
    {"name": "sgd", "lr": 0.3},
    {"name": "momentum", "lr": 0.1, "momentum": 0.5},
    {"name": "nesterov", "lr": 0.1, "momentum": 0.6},
    {"name": "adagrad", "lr": 0.1, "eps": 1e-3, "initial_accumulator": 0.2},
    {"name": "rmsprop", "lr": 0.02, "rho": 0.8, "eps": 1e-3},
    {"name": "adam", "lr": 0.05, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
    {"name": "adamw", "lr": 0.05, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.5},
]


def component_id(value) -> str:
    return value if isinstance(value, str) else "-".join(str(v) if k == "name" else f"{k}={v}" for k, v in value.items())


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=[component_id(o) for o in OPTIMIZERS])
def test_optimizer_follows_the_canonical_rule(adapter, optimizer) -> None:
    spec = make_spec(optimizer=optimizer)
    losses, final, initial, reference_losses, reference_weights = train_keras(adapter, spec)
    assert_matches_reference(losses, final, reference_losses, reference_weights, parameter_atol(spec))
    assert not np.allclose(final["0.dense.kernel"], initial["0.dense.kernel"])  # it trained


def test_keras_builtin_adam_would_not_match(adapter, monkeypatch) -> None:
    """The reference is sharp enough to see Keras' epsilon-hat Adam (why the adapter has its own rule)."""
    import keras

    import harness.adapters.keras.adapter as keras_adapter

    monkeypatch.setattr(
        keras_adapter, "make_optimizer",
        lambda optimizer, regularizer, biases: keras.optimizers.Adam(learning_rate=optimizer["lr"], epsilon=optimizer["eps"]),
    )
    spec = make_spec(optimizer={"name": "adam", "lr": 0.05, "eps": 1e-3})
    losses, final, _, reference_losses, reference_weights = train_keras(adapter, spec)
    np.testing.assert_allclose(losses[0], reference_losses[0], rtol=RTOL)  # the first loss precedes any update
    deviation = max(np.abs(final[key] - value).max() for key, value in reference_weights.items())
    assert deviation > 100 * parameter_atol(spec)


@pytest.mark.parametrize("loss", sorted(TASKS), ids=sorted(TASKS))
def test_loss_follows_the_canonical_formula(adapter, loss) -> None:
    spec = make_spec(loss=loss, optimizer={"name": "sgd", "lr": 0.2})
    assert_matches_reference(*[v for i, v in enumerate(train_keras(adapter, spec)) if i != 2])


REGULARIZERS = {
    "l1": RegularizerSpec(l1=0.05),
    "l2": RegularizerSpec(l2=0.3),
    "weight_decay": RegularizerSpec(weight_decay=0.8),
    "clip_norm_active": RegularizerSpec(clip_norm=0.05),
    "clip_norm_inactive": RegularizerSpec(clip_norm=1e3),
    "clip_value": RegularizerSpec(clip_value=0.01),
    "all": RegularizerSpec(l1=0.01, l2=0.1, weight_decay=0.3, clip_norm=0.2, clip_value=0.02),
}


@pytest.mark.parametrize("name", sorted(REGULARIZERS), ids=sorted(REGULARIZERS))
@pytest.mark.parametrize("optimizer", ["sgd", {"name": "adam", "lr": 0.05}], ids=["sgd", "adam"])
def test_regularizer_follows_the_canonical_formula(adapter, name, optimizer) -> None:
    spec = make_spec(optimizer=optimizer, regularizer=REGULARIZERS[name], initializer="fan_in_uniform")
    losses, final, initial, reference_losses, reference_weights = train_keras(adapter, spec)
    assert_matches_reference(losses, final, reference_losses, reference_weights, parameter_atol(spec))


def test_penalties_and_decay_leave_biases_alone(adapter) -> None:
    """One step from the same weights: the bias gradient comes from the same forward pass, so if
    l1/l2/decay touched biases they would differ; they are bit-identical, while kernels shrink."""
    strong = RegularizerSpec(l1=1.0, l2=10.0, weight_decay=100.0)
    sgd = {"name": "sgd", "lr": 1e-3}
    regularized = train_keras(adapter, make_spec(optimizer=sgd, regularizer=strong, initializer="fan_in_uniform"), steps=1)
    plain = train_keras(adapter, make_spec(optimizer=sgd, initializer="fan_in_uniform"), steps=1)
    for key in ("0.dense.bias", "1.dense.bias"):
        np.testing.assert_array_equal(regularized[1][key], plain[1][key], err_msg=key)
    initial = regularized[2]["0.dense.kernel"]
    # decay alone multiplies kernels by 1 - lr*wd = 0.9; l2 and l1 shrink them a little more
    assert np.abs(regularized[1]["0.dense.kernel"]).sum() < 0.9 * np.abs(initial).sum()
    assert np.abs(plain[1]["0.dense.kernel"]).sum() > 0.97 * np.abs(initial).sum()


def test_returned_loss_excludes_penalties(adapter) -> None:
    plain = train_keras(adapter, make_spec(), steps=1)[0]
    penalized = train_keras(adapter, make_spec(regularizer=RegularizerSpec(l1=5.0, l2=5.0)), steps=1)[0]
    np.testing.assert_array_equal(plain, penalized)  # same forward pass, penalty not in the value


# --- activations ----------------------------------------------------------------------------

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),  # canonical slope 0.01 (keras.layers.LeakyReLU: 0.3)
    "leaky_relu-negative_slope=0.25": lambda x: np.where(x > 0, x, 0.25 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "elu-alpha=0.5": lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0))),  # exact, not the tanh form
    "softmax": lambda x: special.softmax(x, axis=-1),
}


def parse_activation(label: str):
    name, _, param = label.partition("-")
    if not param:
        return name
    key, value = param.split("=")
    return {"name": name, key: float(value)}


@pytest.mark.parametrize("label", sorted(ACTIVATIONS), ids=sorted(ACTIVATIONS))
@pytest.mark.parametrize("as_layer", [False, True], ids=["in_dense", "activation_layer"])
def test_activation_matches_numpy(adapter, label, as_layer) -> None:
    activation = parse_activation(label)
    if as_layer:
        layers = [{"dense": {"units": FEATURES}}, {"activation": activation}]
    else:
        layers = [{"dense": {"units": FEATURES, "activation": activation}}]
    spec = make_spec(layers=layers, loss="mse")
    info = DatasetInfo("arrays", "regression", (FEATURES,), FEATURES, None)
    model = adapter.build(spec, info)
    model.set_weights({"0.dense.kernel": np.eye(FEATURES, dtype=np.float32), "0.dense.bias": np.zeros(FEATURES, np.float32)})
    x = np.linspace(-4, 4, 40 * FEATURES, dtype=np.float32).reshape(40, FEATURES)
    # float32 evaluation of one elementary function: rounding ~1e-7 relative
    np.testing.assert_allclose(model.predict(x), ACTIVATIONS[label](x.astype(np.float64)), rtol=1e-6, atol=1e-6)


# --- weights, state, data ---------------------------------------------------------------------------


def test_weights_round_trip_exactly_and_are_checked(adapter) -> None:
    spec = make_spec()
    info, _, _ = make_data()
    model = adapter.build(spec, info)
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, seed=5)
    model.set_weights(weights)
    loaded = model.get_weights()
    assert list(loaded) == ["0.dense.kernel", "0.dense.bias", "1.dense.kernel", "1.dense.bias"]
    assert loaded["0.dense.kernel"].shape == (FEATURES, HIDDEN)  # canonical (in, out) = Keras' own layout
    for key, value in weights.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], value)
    loaded["0.dense.kernel"][:] = 7.0  # a copy: mutating it leaves the model alone
    np.testing.assert_array_equal(model.get_weights()["0.dense.kernel"], weights["0.dense.kernel"])
    with pytest.raises(ValueError, match="missing keys"):
        model.set_weights({k: v for k, v in weights.items() if k != "1.dense.bias"})
    with pytest.raises(ValueError, match="expects"):
        model.set_weights({**weights, "0.dense.kernel": np.zeros((HIDDEN, FEATURES), np.float32)})


def test_set_weights_resets_optimizer_state(adapter) -> None:
    spec = make_spec(optimizer={"name": "adam", "lr": 0.05})
    info, x, y = make_data()
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, spec.seed)
    model = adapter.build(spec, info)
    model.set_training_data(x, y)
    batches = epoch_batches(len(x), spec.training, spec.seed, 1)
    runs = []
    for _ in range(2):
        model.set_weights(weights)
        runs.append((model.train_epoch(batches), model.get_weights()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # moments and step count started over
    for key in weights:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])


def test_train_epoch_needs_data_and_accepts_no_batches(adapter) -> None:
    info, x, y = make_data()
    model = adapter.build(make_spec(), info)
    with pytest.raises(RuntimeError, match="set_training_data"):
        model.train_epoch([np.arange(4)])
    model.set_training_data(x, y)
    empty = model.train_epoch([])
    assert empty.shape == (0,) and empty.dtype == np.float64
    uneven = model.train_epoch([np.arange(8), np.arange(8, 11)])  # a smaller last batch
    assert uneven.shape == (2,) and np.all(np.isfinite(uneven))


# --- dropout, native init, determinism -----------------------------------------------------------


def test_dropout_is_active_in_training_and_identity_in_predict(adapter) -> None:
    layers = [{"dense": {"units": 64, "activation": "relu"}}, {"dropout": 0.5}, {"dense": {}}]
    info, x, y = make_data()
    losses = {}
    for seed in (0, 0, 1):
        spec = make_spec(layers=layers, seed=seed, optimizer={"name": "sgd", "lr": 1e-9})
        model = adapter.build(spec, info)
        model.set_weights(initial_weights(spec.model.plan(info.input_shape), spec.initializer, 0))
        model.set_training_data(x, y)
        same_batch = [np.arange(BATCH)] * 4
        losses.setdefault(seed, []).append(model.train_epoch(same_batch))
        # evaluation: dropout off, so predict is deterministic and equals the dropout-free forward pass
        np.testing.assert_array_equal(model.predict(x), model.predict(x))
    first = losses[0][0]
    assert len(set(np.round(first, 6))) == 4  # a fresh mask every step (weights barely move at lr 1e-9)
    np.testing.assert_array_equal(first, losses[0][1])  # the trial seed fixes the masks
    assert not np.array_equal(first, losses[1][0])  # another seed, other masks
    # the statistics (rate, 1/(1-rate) scale) are checked against PyTorch in tests/test_parity.py


def test_native_init_is_seeded_and_shared_init_ignores_it(adapter) -> None:
    info, _, _ = make_data()
    draws = [adapter.build(make_spec(init_mode="native", initializer="he_normal", seed=s), info).get_weights() for s in (3, 3, 4)]
    np.testing.assert_array_equal(draws[0]["0.dense.kernel"], draws[1]["0.dense.kernel"])
    assert not np.array_equal(draws[0]["0.dense.kernel"], draws[2]["0.dense.kernel"])
    assert not draws[0]["0.dense.bias"].any()  # he_normal leaves biases at zero
    with pytest.raises(SpecError, match="init_mode"):
        adapter.build(make_spec(init_mode="numpy"), info)


def real_spec(optimizer, epochs=3, seed=0) -> tuple[TrialSpec, Dataset]:
    dataset = resolve_dataset("iris")
    data = load_dataset(dataset)
    spec = TrialSpec(
        dataset=dataset, model=resolve_model({"mlp": {"hidden": [16], "activation": "relu"}}, data.info.num_outputs),
        loss=resolve_component("loss", "cross_entropy", "loss"), optimizer=resolve_component("optimizer", optimizer, "o"),
        initializer=resolve_component("initializer", "he_normal", "i"), regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=16), seed=seed, backend="keras",
    )
    return spec, data


def test_train_trial_end_to_end_and_deterministic(adapter) -> None:
    spec, data = real_spec({"name": "adam", "lr": 0.02}, epochs=15)
    first, second = train_trial(spec, adapter, data), train_trial(spec, adapter, data)
    assert first.status == "ok" and first.epochs_completed == 15
    assert first.final()["test_accuracy"] > 0.8  # 3 balanced classes: chance is 1/3
    assert first.metrics == second.metrics  # bit-identical: same weights, batches and kernels
    assert first.versions["keras_backend"] == "tensorflow" and first.device["device"] == "cpu"
    assert 0 < first.train_seconds < first.wall_seconds


def test_huge_learning_rate_is_reported_as_diverged(adapter) -> None:
    spec, data = real_spec({"name": "sgd", "lr": 1e12})
    result = train_trial(spec, adapter, data)
    assert result.status == "diverged" and result.diverged_epoch == 1


# --- backend selection, versions, devices ----------------------------------------------------------


def test_backend_names_and_versions(adapter) -> None:
    import keras
    import tensorflow as tf

    assert adapter.name == "keras" and adapter.keras_backend == "tensorflow"
    assert get_adapter("keras-tensorflow").name == "keras-tensorflow"
    assert adapter.versions() == {"keras": keras.__version__, "keras_backend": "tensorflow",
                                  "tensorflow": tf.__version__, "numpy": np.__version__}


def test_a_second_keras_backend_in_one_process_is_refused() -> None:
    with pytest.raises(BackendError, match="already imported in this process on 'tensorflow'.*own worker process"):
        get_adapter("keras-torch")
    from harness.adapters.keras import make_adapter

    with pytest.raises(BackendError, match="not a Keras backend"):
        make_adapter("torch")


def test_devices(adapter) -> None:
    import tensorflow as tf

    assert adapter.device_info("cpu")["device"] == "cpu" and adapter.device_info("cpu")["name"]
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the no-GPU errors cannot be provoked")
    assert adapter.device_info("auto")["device"] == "cpu"
    with pytest.raises(BackendError, match="sees no GPU"):
        adapter.device_info("cuda:0")
    with pytest.raises(BackendError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        adapter.build(dataclasses.replace(make_spec(), device="tpu"), make_data()[0])


OTHER_BACKEND_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from harness.adapters import get_adapter
    from harness.adapters.loop import train_trial
    from harness.data import load_dataset, resolve_dataset
    from harness.parity import parity_check
    from harness.spec import RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model
    name = sys.argv[1]
    adapter = get_adapter(name)
    adapter.configure(1)
    import keras
    dataset = resolve_dataset("iris")
    data = load_dataset(dataset)
    report = {"backend": keras.backend.backend(), "parity": {}}
    for optimizer in ("sgd", "adam"):
        spec = TrialSpec(
            dataset=dataset, model=resolve_model({"mlp": {"hidden": [8], "activation": "gelu"}}, 3),
            loss=resolve_component("loss", "cross_entropy", "l"), optimizer=resolve_component("optimizer", optimizer, "o"),
            initializer=resolve_component("initializer", "he_normal", "i"),
            regularizer=RegularizerSpec(l2=1e-3, clip_norm=1.0, weight_decay=0.01),
            training=TrainingSpec(epochs=3, batch_size=16), seed=2, backend=name,
        )
        report["parity"][optimizer] = parity_check(spec, ["torch", name], data, steps=10).message()
    result = train_trial(spec, adapter, data)
    report["status"], report["accuracy"] = result.status, result.final()["test_accuracy"]
    print(json.dumps(report))
""")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keras-torch", "keras-jax"], ids=["keras-torch", "keras-jax"])
def test_other_keras_backends_in_their_own_process(name) -> None:
    """make_adapter sets KERAS_BACKEND before Keras is imported; the same code trains and matches torch."""
    needed = {"keras-torch": "torch", "keras-jax": "jax"}[name]
    if importlib.util.find_spec(needed) is None or importlib.util.find_spec("torch") is None:
        pytest.skip(f"{name} needs {needed} and torch installed")
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    completed = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT, name], capture_output=True, text=True, timeout=300,
        env=environment, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["backend"] == needed
    for optimizer, message in report["parity"].items():
        assert message.startswith("parity OK"), message
    assert report["status"] == "ok" and report["accuracy"] > 0.6
