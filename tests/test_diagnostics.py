"""harness.diagnostics: statistics against hand-computed numpy, the torch probes (layer_outputs,
gradients) against a float64 numpy forward and finite differences, the suite key, the loop
(opt-in: off records nothing), the store table, Results.diagnostics and the report figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.adapters.loop import train_trial
from harness.data import load_dataset
from harness.diagnostics import (
    ACTIVATION_RANGES,
    DiagnosticsSpec,
    activation_rows,
    resolve_diagnostics,
    weight_rows,
)
from harness.errors import SpecError
from harness.spec.init import initial_weights
from harness.suite import load_suite

SUITE = """\
name: diag
dataset: digits
model: {{mlp: {{hidden: [12, 10], activation: {activation}}}}}
loss: cross_entropy
optimizer: {{name: sgd, lr: 0.05}}
initializer: he_normal
training: {{epochs: 3, batch_size: 64}}
{extra}
"""


def write_suite(tmp_path: Path, activation: str = "tanh", extra: str = "", name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SUITE.format(activation=activation, extra=extra))
    return path


def plan_with(tmp_path: Path, activation: str):
    spec = load_suite(write_suite(tmp_path, activation)).trials[0].spec
    return spec.model.plan((64,))[0]


def as_dict(rows) -> dict[str, float]:
    return {statistic: value for _, _, _, statistic, value in rows}


# -- statistics vs hand-computed numpy ---------------------------------------------------------------

KNOWN = {
    # activation: (values, statistic, expected fraction): the thresholds of harness.diagnostics
    "sigmoid": ([0.01, 0.04, 0.5, 0.96, 0.94, 0.05], "fraction_saturated", 3 / 6),  # < 0.05 or > 0.95 (0.05 is not)
    "tanh": ([-0.99, -0.5, 0.0, 0.951, 0.95, 0.2], "fraction_saturated", 2 / 6),  # |a| > 0.95 (0.95 is not)
    "relu": ([0.0, 0.0, 0.0, 1.5, 2.0, 1e-9], "fraction_zero", 3 / 6),  # exactly zero only
}


@pytest.mark.parametrize("activation", list(KNOWN), ids=list(KNOWN))
def test_activation_statistics_match_hand_computation(tmp_path, activation):
    values, statistic, expected = KNOWN[activation]
    output = np.array(values, dtype=np.float32).reshape(2, 3)
    rows = activation_rows(4, plan_with(tmp_path, activation), output, bins=10)
    stats = as_dict(rows)
    assert all(row[0] == 4 and row[1] == 0 and row[2] == "0.dense" for row in rows)
    assert stats[statistic] == pytest.approx(expected, abs=1e-12)
    as64 = np.array(values, dtype=np.float32).astype(np.float64)  # the float32 values as stored
    assert stats["activation_mean"] == pytest.approx(as64.mean(), rel=1e-12)
    assert stats["activation_std"] == pytest.approx(as64.std(), rel=1e-12)
    low, high = ACTIVATION_RANGES[activation]
    assert (stats["histogram_low"], stats["histogram_high"]) == (low, high)
    histogram = np.array([stats[f"histogram.{k}"] for k in range(10)])
    # hand-computed: the bin of each value, values outside the range clipped into the edge bins
    expected_counts = np.zeros(10)
    for value in as64:
        expected_counts[min(9, max(0, math.floor((min(max(value, low), high) - low) / (high - low) * 10)))] += 1
    np.testing.assert_allclose(histogram, expected_counts / len(values), atol=1e-12)
    assert histogram.sum() == pytest.approx(1.0, abs=1e-12)


def test_nonfinite_values_are_left_out(tmp_path):
    output = np.array([[np.nan, 0.0, 2.0, np.inf]], dtype=np.float32)
    stats = as_dict(activation_rows(0, plan_with(tmp_path, "relu"), output, bins=4))
    assert stats["activation_mean"] == pytest.approx(1.0)
    assert stats["fraction_zero"] == pytest.approx(0.5)


def test_weight_rows_norms_and_update_ratio(tmp_path):
    plans = load_suite(write_suite(tmp_path)).trials[0].spec.model.plan((64,))
    rng = np.random.default_rng(0)
    weights = {f"{plan.name}.{t.name}": rng.normal(size=t.shape) for plan in plans for t in plan.tensors}
    gradients = {key: rng.normal(size=value.shape) for key, value in weights.items()}
    previous = {key: value - 0.01 * gradients[key] for key, value in weights.items()}
    rows = weight_rows(2, plans, gradients, weights, previous)
    by_key = {(layer, statistic): value for _, layer, _, statistic, value in rows}
    kernel, bias = weights["1.dense.kernel"], weights["1.dense.bias"]
    grad_kernel, grad_bias = gradients["1.dense.kernel"], gradients["1.dense.bias"]
    assert by_key[(1, "weight_norm")] == pytest.approx(math.sqrt((kernel**2).sum() + (bias**2).sum()), rel=1e-12)
    assert by_key[(1, "gradient_norm")] == pytest.approx(
        math.sqrt((grad_kernel**2).sum() + (grad_bias**2).sum()), rel=1e-12
    )
    before = math.sqrt((previous["1.dense.kernel"] ** 2).sum() + (previous["1.dense.bias"] ** 2).sum())
    change = 0.01 * by_key[(1, "gradient_norm")]
    assert by_key[(1, "update_ratio")] == pytest.approx(change / before, rel=1e-9)
    assert {layer for layer, _ in by_key} == {0, 1, 2}


# -- the suite key --------------------------------------------------------------------------------------


def test_suite_key_resolves_last_and_lives_in_extras(tmp_path):
    on = load_suite(write_suite(tmp_path, extra="diagnostics: {epochs: [last, 0, 1, 1], samples: 200, bins: 20}"))
    off = load_suite(write_suite(tmp_path, name="off.yaml"))
    assert dict(on.trials[0].spec.extras)["diagnostics"] == {"epochs": [0, 1, 3], "samples": 200, "bins": 20}
    assert off.trials[0].spec.extras == ()  # absent: the spec JSON, hence every existing hash, is unchanged
    assert '"extras":{}' in off.trials[0].spec.to_json()
    assert on.trials[0].hash != off.trials[0].hash
    assert DiagnosticsSpec.from_extras(off.trials[0].spec.extras) is None


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("{epochs: [0, 9]}", "diagnostics.epochs[1]: expected an epoch from 0 (before training) to 3"),
        ("{epoch: [0]}", "diagnostics: unknown key 'epoch'"),
        ("{bins: 0}", "diagnostics.bins: expected an integer > 0"),
        ("[0, 1]", "diagnostics: expected a mapping"),
    ],
    ids=["epoch-out-of-range", "unknown-key", "zero-bins", "not-a-mapping"],
)
def test_bad_diagnostics_key_is_located(tmp_path, value, fragment):
    path = write_suite(tmp_path, extra=f"diagnostics: {value}")
    with pytest.raises(SpecError) as error:
        load_suite(path)
    assert fragment in str(error.value)
    assert f"{path}:8:" in str(error.value)  # the line of the diagnostics key


def test_resolve_diagnostics_true_means_defaults():
    assert resolve_diagnostics(True, 7) == DiagnosticsSpec((0, 1, 7), 1000, 50)
    assert resolve_diagnostics(None, 7) is None


# -- torch probes vs numpy ------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def torch_model(tmp_path: Path, extra: str = "", activation: str = "tanh"):
    from harness.adapters.torch import TorchAdapter

    spec = load_suite(write_suite(tmp_path, activation, extra)).trials[0].spec
    data = load_dataset(spec.dataset)
    adapter = TorchAdapter()
    adapter.configure(1)
    model = adapter.build(spec, data.info)
    model.set_weights(initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed))
    return spec, data, model


def numpy_forward(weights: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """float64 forward of the tanh MLP 64-12-10-10: every layer's output (after its activation)."""
    h1 = np.tanh(x @ weights["0.dense.kernel"] + weights["0.dense.bias"])
    h2 = np.tanh(h1 @ weights["1.dense.kernel"] + weights["1.dense.bias"])
    return [h1, h2, h2 @ weights["2.dense.kernel"] + weights["2.dense.bias"]]


def numpy_objective(weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, l2: float) -> float:
    logits = numpy_forward(weights, x)[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    penalty = 0.5 * l2 * sum((weights[k] ** 2).sum() for k in weights if k.endswith("kernel"))
    return float(-log_probabilities[np.arange(len(y)), y].mean() + penalty)


def test_torch_layer_outputs_match_a_numpy_forward(tmp_path):
    _, data, model = torch_model(tmp_path)
    x = data.x_train[:50]
    weights = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    outputs = model.layer_outputs(x)
    assert [o.shape for o in outputs] == [(50, 12), (50, 10), (50, 10)] and all(o.dtype == np.float32 for o in outputs)
    for got, expected in zip(outputs, numpy_forward(weights, x.astype(np.float64))):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # float32 vs float64 arithmetic


def test_torch_gradients_match_finite_differences(tmp_path):
    l2 = 0.1
    _, data, model = torch_model(tmp_path, extra=f"regularizer: {{l2: {l2}}}")
    x, y = data.x_train[:40].astype(np.float64), data.y_train[:40]
    weights = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    gradients = model.gradients(data.x_train[:40], y)
    assert set(gradients) == set(weights)
    rng = np.random.default_rng(1)
    step = 1e-6  # central differences in float64: truncation ~step^2, rounding ~1e-16/step
    for key, array in weights.items():
        for flat in rng.choice(array.size, size=min(5, array.size), replace=False):
            index = np.unravel_index(flat, array.shape)
            plus = {k: v.copy() for k, v in weights.items()}
            minus = {k: v.copy() for k, v in weights.items()}
            plus[key][index] += step
            minus[key][index] -= step
            numeric = (numpy_objective(plus, x, y, l2) - numpy_objective(minus, x, y, l2)) / (2 * step)
            # torch computes in float32: agreement to ~1e-6 absolute on gradients of order 1e-2..1
            assert gradients[key][index] == pytest.approx(numeric, rel=1e-3, abs=2e-6), (key, index)


def test_gradients_change_nothing_even_with_dropout(tmp_path):
    extra = "regularizer: {dropout: 0.3}"
    _, data, probed = torch_model(tmp_path, extra)
    _, _, untouched = torch_model(tmp_path, extra)
    probed.gradients(data.x_train[:100], data.y_train[:100])
    for model in (probed, untouched):
        model.set_training_data(data.x_train, data.y_train)
    batches = [np.arange(i, i + 64) for i in range(0, 640, 64)]
    losses_probed, losses_untouched = probed.train_epoch(batches), untouched.train_epoch(batches)
    np.testing.assert_array_equal(losses_probed, losses_untouched)  # same dropout masks: generator restored
    for key, value in untouched.get_weights().items():
        np.testing.assert_array_equal(probed.get_weights()[key], value)


# -- the loop: opt-in ---------------------------------------------------------------------------------


def test_loop_off_records_nothing_and_on_leaves_training_unchanged(tmp_path):
    from harness.adapters.torch import TorchAdapter

    adapter = TorchAdapter()
    adapter.configure(1)
    off = load_suite(write_suite(tmp_path, "relu")).trials[0].spec
    on = (
        load_suite(
            write_suite(tmp_path, "relu", "diagnostics: {epochs: [0, 2, last], samples: 300, bins: 10}", name="on.yaml")
        )
        .trials[0]
        .spec
    )
    data = load_dataset(off.dataset)
    result_off, result_on = train_trial(off, adapter, data), train_trial(on, adapter, data)
    assert result_off.diagnostics == [] and result_off.diagnostics_seconds == 0.0
    assert result_on.metrics == result_off.metrics  # probing changes no weight, batch or dropout mask
    epochs = sorted({row[0] for row in result_on.diagnostics})
    assert epochs == [0, 2, 3]
    seconds = [row[4] for row in result_on.diagnostics if row[3] == "seconds"]
    assert len(seconds) == 3 and result_on.diagnostics_seconds >= sum(seconds) > 0
    zero_fraction = {(row[0], row[1]): row[4] for row in result_on.diagnostics if row[3] == "fraction_zero"}
    assert set(zero_fraction) == {(e, layer) for e in epochs for layer in (0, 1)}
    assert all(0.0 < value < 1.0 for value in zero_fraction.values())
    assert not any(row[3] == "update_ratio" for row in result_on.diagnostics if row[0] == 0)


# -- store, Results, figures ------------------------------------------------------------------------


def test_store_results_and_figures(tmp_path):
    from harness.adapters.torch import TorchAdapter
    from harness.report.gallery import activation_histogram_figures, activation_scale_figures, gradient_norm_figures
    from harness.results_folder import SuiteRecord, record_results
    from harness.store import Store

    grid = "diagnostics: {epochs: [0, last], samples: 200, bins: 8}\nseeds: 2\ngrid: {initializer: {small: {name: normal, std: 0.01}, he: he_normal}}"
    suite = load_suite(write_suite(tmp_path, "relu", grid))
    adapter = TorchAdapter()
    adapter.configure(1)
    data = load_dataset(suite.trials[0].spec.dataset)
    with Store(tmp_path / "store") as store:
        results_by_hash = {}
        for trial in suite.trials:
            results_by_hash[trial.hash] = train_trial(trial.spec, adapter, data)
            store.record(trial, results_by_hash[trial.hash])
        frame = store.diagnostics_frame()
        first = suite.trials[0]
        stored = frame[frame["hash"] == first.hash]
        expected = results_by_hash[first.hash].diagnostics
        assert len(stored) == len(expected)
        lookup = {(e, layer, s): v for e, layer, _, s, v in expected}
        for row in stored.itertuples():
            assert row.value == pytest.approx(lookup[(row.epoch, row.layer, row.statistic)], rel=0, abs=0)
        results = record_results(SuiteRecord.from_suite(suite), store)
    table = results.diagnostics()
    assert set(table["arm"]) == {"small", "he"} and set(table["seed"]) == {0, 1}
    assert len(table) == len(frame)
    # std=0.01 through two ReLU layers: activations shrink ~100x per layer, gradients of the first layer vanish
    norms = table[(table["statistic"] == "gradient_norm") & (table["epoch"] == 0) & (table["layer"] == 0)]
    assert norms[norms["arm"] == "small"]["value"].max() < 0.01 * norms[norms["arm"] == "he"]["value"].min()
    histograms = activation_histogram_figures(results)
    assert [f.key for f in histograms] == ["activations_epoch_0", "activations_epoch_3"]
    assert len(histograms[0].figure.axes) == 2 * 2  # 2 hidden layers x 2 arms
    (gradient,) = gradient_norm_figures(results)
    assert len([axis for axis in gradient.figure.axes if axis.get_visible()]) == 2  # one panel per probed epoch
    # the activation std per layer at epoch 0: each arm's line is the mean over seeds of the stored rows
    (scale,) = activation_scale_figures(results)
    stds = table[(table["statistic"] == "activation_std") & (table["epoch"] == 0)]
    for line in scale.figure.axes[0].get_lines():
        expected = stds[stds["arm"] == line.get_label()].groupby("layer")["value"].mean()
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy(), rtol=1e-12)
    small = stds[stds["arm"] == "small"].groupby("layer")["value"].mean()
    assert small.iloc[1] < 0.1 * small.iloc[0]  # std=0.01 over 12 inputs: ~0.035x per ReLU layer


def test_torch_gradients_leave_batch_norm_moving_statistics_untouched() -> None:
    """batch_norm's moving statistics are non-trainable Parameters, not buffers: gradients() must restore them too."""
    from harness.adapters import get_adapter
    from harness.data import dataset_info, load_dataset, resolve_dataset
    from harness.spec import RegularizerSpec, TrainingSpec, TrialSpec, initial_weights, resolve_component, resolve_model

    dataset = resolve_dataset("digits")
    info = dataset_info(dataset)
    layers = [{"dense": {"units": 16}}, {"batch_norm": {}}, {"activation": "relu"}, {"dense": {}}]
    model = resolve_model({"layers": layers}, 10, input_shape=info.input_shape)
    spec = TrialSpec(
        dataset,
        model,
        resolve_component("loss", "cross_entropy", "l"),
        resolve_component("optimizer", "sgd", "o"),
        resolve_component("initializer", "he_normal", "i"),
        RegularizerSpec(),
        TrainingSpec(1, 32),
        0,
        "torch",
    )
    data = load_dataset(dataset)
    built = get_adapter("torch").build(spec, info)
    built.set_weights(initial_weights(model.plan(info.input_shape), spec.initializer, 0))
    before = built.get_weights()
    gradients = built.gradients(data.x_train[:64], data.y_train[:64])
    after = built.get_weights()
    assert any(np.abs(g).max() > 0 for g in gradients.values())  # a real gradient was taken
    for key in before:  # includes '1.batch_norm.moving_mean' / 'moving_variance'
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
