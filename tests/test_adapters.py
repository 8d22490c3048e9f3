"""Every adapter realizes the canonical training semantics: each optimizer, loss, regularizer and
activation checked step by step against float64 numpy (tests/helpers/dense_reference.py); weights,
optimizer state, dropout, native initializers, the harness loop end to end, divergence and devices.
Each test runs once per framework (the `adapter` fixture of tests/conftest.py: ids 'torch', 'keras').

Framework-specific checks live in tests/test_torch_adapter.py and tests/test_keras_adapter.py;
agreement of the two frameworks with each other in tests/test_parity.py.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from helpers.dense_reference import (
    assert_matches_reference,
    forward,
    train_side_by_side,
)
from helpers.layer_reference import reference
from helpers.params import cases_per_adapter
from helpers.specs import TASKS, arrays_info, labelled_arrays, trial_spec
from scipy import special, stats

from harness.adapters.loop import train_trial
from harness.data import load_dataset, resolve_dataset
from harness.data.batches import epoch_batches
from harness.data.types import Dataset, DatasetInfo
from harness.errors import BackendError, SpecError
from harness.spec import (
    DatasetSpec,
    RegularizerSpec,
    initial_weights,
    resolve_component,
)


def dense_spec(adapter, **options):
    """dense(6, tanh) -> dense on 5 features (1 output for binary_cross_entropy, else 3); sgd, he_normal."""
    outputs = 1 if options.get("loss") == "binary_cross_entropy" else 3
    return trial_spec(num_outputs=outputs, backend=adapter.name, **options)


def component_id(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value['name']}({','.join(f'{key}={item}' for key, item in value.items() if key != 'name')})"


# --- optimizers, losses, regularizers -------------------------------------------------------------------

OPTIMIZERS = [
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    {"name": "sgd", "lr": 0.3},
    {"name": "momentum", "lr": 0.1, "momentum": 0.5},
    {"name": "momentum", "momentum": 0.0},
    {"name": "nesterov", "lr": 0.1, "momentum": 0.6},
    {"name": "adagrad", "lr": 0.1, "eps": 1e-3, "initial_accumulator": 0.2},
    {"name": "rmsprop", "lr": 0.02, "rho": 0.8, "eps": 1e-3},
    {"name": "adam", "lr": 0.05, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
    {"name": "adam", "beta1": 0.0},
    {"name": "adamw", "lr": 0.05, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.5},
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=[component_id(o) for o in OPTIMIZERS])
def test_optimizer_follows_the_canonical_formula(adapter, optimizer):
    spec = dense_spec(adapter, optimizer=optimizer)
    losses, reference_losses, ours, theirs, _ = train_side_by_side(adapter, spec, steps=5)
    assert_matches_reference(spec, losses, reference_losses, ours, theirs)
    assert not np.allclose(ours[-1]["0.dense.kernel"], ours[0]["0.dense.kernel"])  # it did train


LOSS_CASES = [(loss, optimizer) for optimizer in ({"name": "sgd", "lr": 0.2}, "adam") for loss in sorted(TASKS)]


# Keras: sgd only (the loss gradient does not depend on the rule; adam on Keras: test_optimizer_...)
@cases_per_adapter(
    "loss, optimizer",
    {"torch": LOSS_CASES, "keras": LOSS_CASES[:3]},
    ids=lambda case: f"{component_id(case[1]).split('(')[0]}-{case[0]}",
)
def test_loss_value_and_gradient_follow_the_canonical_formula(adapter, loss, optimizer):
    spec = dense_spec(adapter, optimizer=optimizer, loss=loss)
    assert_matches_reference(spec, *train_side_by_side(adapter, spec, steps=3)[:4])


REGULARIZERS = {
    "l1": RegularizerSpec(l1=0.05),
    "l2": RegularizerSpec(l2=0.3),
    "weight_decay": RegularizerSpec(weight_decay=0.8),
    "clip_norm_active": RegularizerSpec(clip_norm=0.05),
    "clip_value": RegularizerSpec(clip_value=0.01),
    "clip_norm_then_value": RegularizerSpec(clip_norm=0.05, clip_value=0.005),
    "all": RegularizerSpec(l1=0.01, l2=0.1, weight_decay=0.3, clip_norm=0.2, clip_value=0.02),
}


@pytest.mark.parametrize("name", REGULARIZERS, ids=str)
@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 0.05}], ids=["sgd", "adam"])
def test_regularizer_follows_the_canonical_formula(adapter, name, optimizer):
    # fan_in_uniform draws biases too: a penalty or decay wrongly applied to them would show
    spec = dense_spec(adapter, optimizer=optimizer, regularizer=REGULARIZERS[name], initializer="fan_in_uniform")
    losses, reference_losses, ours, theirs, reference_optimizer = train_side_by_side(adapter, spec)
    assert_matches_reference(spec, losses, reference_losses, ours, theirs)
    if spec.regularizer.clip_norm is not None:
        assert min(reference_optimizer.norms) > spec.regularizer.clip_norm  # clipping was active at every step


def test_clip_norm_below_the_norm_leaves_training_bit_identical(adapter):
    _, _, plain, _, reference_optimizer = train_side_by_side(adapter, dense_spec(adapter, optimizer="adam"))
    _, _, clipped, _, _ = train_side_by_side(
        adapter, dense_spec(adapter, optimizer="adam", regularizer=RegularizerSpec(clip_norm=1e3))
    )
    assert max(reference_optimizer.norms) < 1e3
    for ours, theirs in zip(plain, clipped):
        assert all(np.array_equal(ours[key], theirs[key]) for key in ours)


# optimizer -> (the optimizer with penalties and decay, its regularizer, the same optimizer without either)
PENALIZED = {
    "sgd": (
        {"name": "sgd", "lr": 1e-3},
        RegularizerSpec(l1=1.0, l2=10.0, weight_decay=100.0),
        {"name": "sgd", "lr": 1e-3},
    ),
    "adam": (
        {"name": "adam", "lr": 1e-3},
        RegularizerSpec(l1=1.0, l2=10.0, weight_decay=100.0),
        {"name": "adam", "lr": 1e-3},
    ),
    "adamw": (
        {"name": "adamw", "lr": 1e-3, "weight_decay": 100.0},
        RegularizerSpec(l1=1.0, l2=10.0),
        {"name": "adam", "lr": 1e-3},
    ),
}


# Keras: sgd only (its adam and adamw decay are checked against the reference by test_regularizer_...,
# where fan_in_uniform biases would show any decay); two more Keras builds each would add ~1.5 s
@cases_per_adapter("name", {"torch": list(PENALIZED), "keras": ["sgd"]})
def test_penalties_and_decay_touch_kernels_only_and_stay_out_of_the_loss(adapter, name):
    """One step from the same weights: the bias gradient comes from the same forward pass, so if
    l1/l2/decay touched biases they would differ; they are bit-identical, while kernels shrink. The
    returned loss is the data loss of that same forward pass: the penalties are not in it."""
    optimizer, regularizer, plain_optimizer = PENALIZED[name]
    penalized_losses, _, (penalized,), _, _ = train_side_by_side(
        adapter,
        dense_spec(adapter, optimizer=optimizer, regularizer=regularizer, initializer="fan_in_uniform"),
        steps=1,
    )
    plain_losses, _, (plain,), _, _ = train_side_by_side(
        adapter, dense_spec(adapter, optimizer=plain_optimizer, initializer="fan_in_uniform"), steps=1
    )
    np.testing.assert_array_equal(penalized_losses, plain_losses)
    info = labelled_arrays("cross_entropy")[0]
    initial = initial_weights(
        dense_spec(adapter).model.plan(info.input_shape), resolve_component("initializer", "fan_in_uniform", "i"), 0
    )
    for key in plain:
        if key.endswith("bias"):
            np.testing.assert_array_equal(penalized[key], plain[key], err_msg=key)
        else:
            assert not np.allclose(penalized[key], plain[key], rtol=0, atol=1e-7), key
            # decay alone multiplies kernels by 1 - lr*wd = 0.9; l2 and l1 shrink them a little more
            assert np.abs(penalized[key]).sum() < 0.9 * np.abs(initial[key]).sum(), key
            assert np.abs(plain[key]).sum() > 0.97 * np.abs(initial[key]).sum(), key


# --- activations ----------------------------------------------------------------------------------------

ACTIVATIONS = {  # label: (component, float64 formula)
    "linear": ("linear", lambda z: z),
    "relu": ("relu", lambda z: np.maximum(z, 0.0)),
    "sigmoid": ("sigmoid", special.expit),
    "tanh": ("tanh", np.tanh),
    "leaky_relu": (
        "leaky_relu",
        lambda z: np.where(z > 0, z, 0.01 * z),
    ),  # canonical slope 0.01 (keras.layers.LeakyReLU: 0.3)
    "leaky_relu(0.25)": ({"name": "leaky_relu", "negative_slope": 0.25}, lambda z: np.where(z > 0, z, 0.25 * z)),
    "elu": ("elu", lambda z: np.where(z > 0, z, np.expm1(z))),
    "elu(0.5)": ({"name": "elu", "alpha": 0.5}, lambda z: np.where(z > 0, z, 0.5 * np.expm1(z))),
    "gelu": ("gelu", lambda z: 0.5 * z * (1.0 + special.erf(z / math.sqrt(2.0)))),  # exact, not the tanh form
    "softmax": ("softmax", lambda z: special.softmax(z, axis=-1)),
}


@pytest.mark.parametrize("label", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("placement", ["in_dense", "activation_layer"], ids=str)
def test_activation_matches_numpy(adapter, label, placement):
    activation, formula = ACTIVATIONS[label]
    if placement == "in_dense":
        layers = [{"dense": {"units": 5, "activation": activation}}]
    else:
        layers = [{"dense": {"units": 5}}, {"activation": activation}]
    spec = trial_spec(layers, 5, loss="mse", backend=adapter.name)
    model = adapter.build(spec, arrays_info((5,), 5))
    model.set_weights({"0.dense.kernel": np.eye(5, dtype=np.float32), "0.dense.bias": np.zeros(5, np.float32)})
    x = np.linspace(-4, 4, 200, dtype=np.float32).reshape(40, 5)  # the identity dense layer passes x on exactly
    expected = formula(x.astype(np.float64))
    # float32 evaluation of one elementary function: rounding ~1e-7 relative
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6, atol=1e-6)
    if label == "gelu":  # the test can tell the exact form from the tanh approximation
        z = x.astype(np.float64)
        approximate = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
        assert np.abs(approximate - expected).max() > 1e-4


# --- weights, optimizer state, data ------------------------------------------------------------------------


def test_weights_round_trip_exactly_as_copies(adapter):
    spec = dense_spec(adapter)
    info, x, _ = labelled_arrays("cross_entropy")
    model = adapter.build(spec, info)
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, seed=5)
    model.set_weights(weights)
    loaded = model.get_weights()
    assert list(loaded) == ["0.dense.kernel", "0.dense.bias", "1.dense.kernel", "1.dense.bias"]
    assert loaded["0.dense.kernel"].shape == (5, 6)  # canonical (in, out), whatever the framework stores
    for key, value in weights.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], value)
    loaded["0.dense.kernel"][:] = 7.0  # a copy: mutating it leaves the model alone
    np.testing.assert_array_equal(model.get_weights()["0.dense.kernel"], weights["0.dense.kernel"])
    expected = forward({k: v.astype(np.float64) for k, v in weights.items()}, x.astype(np.float64), 2)[-1]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [("drop-bias", r"missing.*1\.dense\.bias"), ("transpose-kernel", r"0\.dense\.kernel.*shape")],
    ids=["missing-key", "transposed-kernel"],
)
def test_set_weights_rejects_mismatched_arrays(adapter, change, message):
    spec = dense_spec(adapter)
    info = labelled_arrays("cross_entropy")[0]
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, 0)
    if change == "drop-bias":
        del weights["1.dense.bias"]
    else:
        weights["0.dense.kernel"] = np.ascontiguousarray(weights["0.dense.kernel"].T)  # (out, in): torch's own layout
    with pytest.raises(ValueError, match=message):
        adapter.build(spec, info).set_weights(weights)


def test_set_weights_resets_optimizer_state(adapter):
    spec = dense_spec(adapter, optimizer={"name": "adam", "lr": 0.05})
    info, x, y = labelled_arrays("cross_entropy")
    weights = initial_weights(spec.model.plan(info.input_shape), spec.initializer, spec.seed)
    model = adapter.build(spec, info)
    model.set_training_data(x, y)
    batches = epoch_batches(len(x), spec.training, spec.seed, 1)
    runs = []
    for _ in range(2):
        model.set_weights(weights)  # fresh Adam moments and step count: the same steps again
        runs.append((model.train_epoch(batches), model.get_weights()))
    assert runs[0][0].dtype == np.float64
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for key in weights:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])


def test_train_epoch_needs_data_and_accepts_no_batches(adapter):
    info, x, y = labelled_arrays("cross_entropy")
    model = adapter.build(dense_spec(adapter), info)
    with pytest.raises(RuntimeError, match="set_training_data"):
        model.train_epoch([np.arange(4)])
    model.set_training_data(x, y)
    empty = model.train_epoch([])
    assert empty.shape == (0,) and empty.dtype == np.float64
    uneven = model.train_epoch([np.arange(8), np.arange(8, 11)])  # a smaller last batch
    assert uneven.shape == (2,) and np.all(np.isfinite(uneven))


# --- dropout, native initialization ---------------------------------------------------------------------


def test_dropout_is_active_in_training_and_identity_in_predict(adapter):
    layers = [{"dense": {"units": 64, "activation": "relu"}}, {"dropout": 0.5}, {"dense": {}}]
    info, x, y = labelled_arrays("cross_entropy")
    losses = {}
    for seed in (0, 0, 1):
        spec = dense_spec(adapter, model=layers, seed=seed, optimizer={"name": "sgd", "lr": 1e-9})
        plans = spec.model.plan(info.input_shape)
        weights = initial_weights(plans, spec.initializer, 0)
        model = adapter.build(spec, info)
        model.set_weights(weights)
        model.set_training_data(x, y)
        losses.setdefault(seed, []).append(model.train_epoch([np.arange(8)] * 4))
        # evaluation: dropout off, so predict is deterministic and equals the dropout-free forward pass
        np.testing.assert_array_equal(model.predict(x), model.predict(x))
        np.testing.assert_allclose(
            model.predict(x), reference(spec.model, plans, weights, x)[0]["output"], rtol=1e-5, atol=1e-6
        )
    first = losses[0][0]
    assert len(set(np.round(first, 6))) == 4  # a fresh mask every step (weights barely move at lr 1e-9)
    np.testing.assert_array_equal(first, losses[0][1])  # the trial seed fixes the masks
    assert not np.array_equal(first, losses[1][0])  # another seed, other masks
    # the rate and 1/(1-rate) scale: tests/test_torch_adapter.py, and against PyTorch in tests/test_parity.py


NATIVE_CASES = {  # name: None (all zeros) or (family, scale of (fan_in, fan_out): std or uniform limit)
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
    "normal": {"name": "normal", "std": 0.05},
    "uniform": {"name": "uniform", "limit": 0.2},
    "xavier_uniform": {"name": "xavier_uniform", "gain": 2.0},
    "xavier_normal": {"name": "xavier_normal", "gain": 2.0},
}


def native_weights(adapter, initializer, fan_in=300, fan_out=200, seed=0):
    spec = trial_spec(
        [{"dense": {"units": fan_out}}],
        fan_out,
        loss="mse",
        initializer=initializer,
        init_mode="native",
        seed=seed,
        backend=adapter.name,
    )
    return adapter.build(spec, arrays_info((fan_in,), fan_out)).get_weights()


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


def test_native_init_is_seeded_and_init_mode_is_checked(adapter):
    first, again = native_weights(adapter, "he_normal", seed=5), native_weights(adapter, "he_normal", seed=5)
    other = native_weights(adapter, "he_normal", seed=6)
    assert np.array_equal(first["0.dense.kernel"], again["0.dense.kernel"])
    assert not np.array_equal(first["0.dense.kernel"], other["0.dense.kernel"])
    with pytest.raises(SpecError, match="init_mode"):
        adapter.build(dense_spec(adapter, init_mode="numpy"), labelled_arrays("cross_entropy")[0])


# --- the harness loop end to end ----------------------------------------------------------------------------


def digits_dataset() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    info = DatasetInfo("digits", "classification", (64,), 10, 10)
    return Dataset(info, x[train], y[train], x[:0], y[:0], x[test], y[test])


def digits_spec(adapter, init_mode="shared", seed=0):
    """MLP 64-32-10 with dropout 0.2 and l2, Adam, 3 epochs of batch 64."""
    return trial_spec(
        {"mlp": {"hidden": [32]}},
        10,
        optimizer={"name": "adam", "lr": 0.01},
        dropout=0.2,
        regularizer=RegularizerSpec(dropout=0.2, l2=1e-4),
        epochs=3,
        batch_size=64,
        seed=seed,
        init_mode=init_mode,
        dataset=DatasetSpec("digits"),
        backend=adapter.name,
    )


# each framework's global seed: the trial must not depend on it (dropout and shuffling use the trial's own)
GLOBAL_SEEDERS = {
    "torch": lambda seed: importlib.import_module("torch").manual_seed(seed),
    "keras": lambda seed: importlib.import_module("keras").utils.set_random_seed(seed),
}


# Keras: shared mode only (native init is seeded: test_native_init_is_seeded_and_init_mode_is_checked)
@cases_per_adapter("init_mode", {"torch": ["shared", "native"], "keras": ["shared"]})
def test_train_trial_end_to_end_learns_and_is_deterministic(adapter, init_mode):
    data = digits_dataset()
    spec = digits_spec(adapter, init_mode)
    first = train_trial(spec, adapter, data)
    GLOBAL_SEEDERS[adapter.name](12345)
    second = train_trial(spec, adapter, data)
    assert first.status == "ok" and first.epochs_completed == 3
    assert first.metrics == second.metrics  # bit-identical, dropout and shuffling included
    assert first.final()["test_accuracy"] > 0.8  # chance is 0.1
    assert 0 < first.train_seconds < first.wall_seconds
    assert first.versions == adapter.versions() and first.device["device"] == "cpu"
    other_seed = train_trial(digits_spec(adapter, init_mode, seed=1), adapter, data)
    assert other_seed.metrics != first.metrics


@pytest.mark.filterwarnings("error")  # e.g. torch's warning about non-writable numpy arrays
def test_train_trial_on_a_harness_dataset(adapter):
    spec = trial_spec(
        {"mlp": {"hidden": [100, 100]}},
        10,
        optimizer={"name": "adam", "lr": 0.01},
        epochs=3,
        batch_size=100,
        shuffle=False,
        dataset=resolve_dataset({"name": "mnist1d"}),
        backend=adapter.name,
    )
    data = load_dataset(spec.dataset)  # read-only arrays, shared in the process
    result = train_trial(spec, adapter, data)
    assert result.status == "ok"
    assert result.final()["test_accuracy"] > 0.3  # chance is 0.1; measured 0.51-0.54 over seeds 0-3 (torch)


def regression_data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 2))).astype(np.float32)
    return Dataset(DatasetInfo("arrays", "regression", (5,), 2, None), x, y, x[:0], y[:0], x[:50], y[:50])


DIVERGING = {  # name: (data, loss, lr, epochs, the epoch it must diverge at or None for any before the last)
    "regression-lr1e4": (regression_data, "mse", 1e4, 20, None),
    "iris-lr1e12": (lambda: load_dataset(resolve_dataset("iris")), "cross_entropy", 1e12, 3, 1),
}


@pytest.mark.parametrize("name", DIVERGING, ids=str)
def test_huge_learning_rate_is_reported_as_diverged(adapter, name):
    make_data, loss, lr, epochs, epoch = DIVERGING[name]
    data = make_data()
    spec = trial_spec(
        {"mlp": {"hidden": [16]}},
        data.info.num_outputs,
        loss=loss,
        optimizer={"name": "sgd", "lr": lr},
        epochs=epochs,
        batch_size=20,
        backend=adapter.name,
    )
    result = train_trial(spec, adapter, data)
    assert result.status == "diverged" and result.diverged_epoch is not None
    assert result.epochs_completed < epochs and not math.isfinite(result.metrics[-1][2])
    if epoch is not None:
        assert result.diverged_epoch == epoch


# --- devices ------------------------------------------------------------------------------------------------


def test_cpu_device(adapter):
    info = adapter.device_info("cpu")
    assert info["device"] == "cpu" and info["name"]


@pytest.mark.parametrize("device", ["cuda", "cuda:1"], ids=str)
def test_gpu_request_without_gpu_raises_backend_error(adapter, device):
    if adapter.device_info("auto")["device"] != "cpu":
        pytest.skip("a GPU is visible: the no-GPU errors cannot be provoked")
    with pytest.raises(BackendError, match="no GPU"):
        adapter.device_info(device)
    with pytest.raises(BackendError, match="no GPU"):
        adapter.build(dense_spec(adapter, device=device), labelled_arrays("cross_entropy")[0])


def test_unknown_device_raises_backend_error(adapter):
    with pytest.raises(BackendError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        adapter.device_info("tpu")
    with pytest.raises(BackendError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        adapter.build(dense_spec(adapter, device="tpu"), labelled_arrays("cross_entropy")[0])
