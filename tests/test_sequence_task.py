"""Sequence labelling end to end: the ctc loss, the symbol_sequences dataset, per-step
heads, the shape checks that guard them, and a real run in both backends.

The numpy ctc (harness.adapters.ctc) is the evaluation every backend shares, so it is checked
twice independently: against an enumeration of every alignment on tiny cases (the definition
itself), and against PyTorch's F.ctc_loss on random strings with repeats and empty strings.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.suites import write_suite
from scipy.special import log_softmax

from harness.adapters.ctc import ctc_negative_log_likelihood, greedy_decode, label_lengths, sequence_metrics
from harness.cli import cli
from harness.data import dataset_info, load_dataset, resolve_dataset
from harness.data.sources import make_symbol_sequences, symbol_sequence_frames
from harness.errors import DatasetError, SpecError
from harness.spec import resolve_model
from harness.spec.model import check_model_against_task
from harness.suite import load_suite


def random_strings(rng: np.random.Generator, count: int, width: int, classes: int, repeats: bool = True) -> np.ndarray:
    """0-padded label strings of lengths 0..width; with `repeats`, some strings repeat a label back to back."""
    labels = np.zeros((count, width), dtype=np.int64)
    for row, length in enumerate(rng.integers(0, width + 1, size=count)):
        labels[row, :length] = rng.integers(1, classes, size=length)
        if repeats and length >= 2 and row % 3 == 0:
            labels[row, 1] = labels[row, 0]
    return labels


def collapse(path: tuple[int, ...]) -> list[int]:
    """CTC's many-to-one map B: merge repeats, then drop blanks."""
    merged = [label for i, label in enumerate(path) if i == 0 or label != path[i - 1]]
    return [label for label in merged if label != 0]


# --- the numpy ctc ---------------------------------------------------------------------------------


@pytest.mark.parametrize("string", [[], [1], [2, 2], [1, 2], [2, 1, 2]], ids=["empty", "one", "repeat", "two", "three"])
def test_ctc_equals_the_sum_over_every_alignment(string) -> None:
    """-log of the summed probability of every path B maps to the string (T=5, C=3: 243 paths)."""
    rng = np.random.default_rng(len(string))
    steps, classes = 5, 3
    logits = rng.standard_normal((1, steps, classes)) * 1.5
    log_probs = log_softmax(logits[0], axis=-1)
    total = sum(
        np.exp(sum(log_probs[t, path[t]] for t in range(steps)))
        for path in itertools.product(range(classes), repeat=steps)
        if collapse(path) == string
    )
    labels = np.zeros((1, 3), dtype=np.int64)
    labels[0, : len(string)] = string
    assert ctc_negative_log_likelihood(logits, labels)[0] == pytest.approx(-np.log(total), rel=1e-12)


def test_ctc_matches_pytorch_per_sample() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(0)
    count, steps, classes, width = 64, 12, 6, 5
    logits = rng.standard_normal((count, steps, classes)) * 2.0
    labels = random_strings(rng, count, width, classes)
    expected = functional.ctc_loss(
        functional.log_softmax(torch.tensor(logits), dim=-1).transpose(0, 1),
        torch.tensor(labels),
        torch.full((count,), steps),
        torch.tensor(label_lengths(labels)),
        blank=0,
        reduction="none",
    ).numpy()
    # both in float64: the same recursion summed in a different order
    np.testing.assert_allclose(ctc_negative_log_likelihood(logits, labels), expected, rtol=1e-12)


def test_an_impossible_string_costs_infinity() -> None:
    """Four equal labels need 7 steps (a blank between each pair); 6 steps cannot spell them."""
    labels = np.array([[3, 3, 3, 3]])
    logits = np.zeros((1, 6, 4))
    assert np.isinf(ctc_negative_log_likelihood(logits, labels)[0])
    assert np.isfinite(ctc_negative_log_likelihood(np.zeros((1, 7, 4)), labels)[0])


def one_hot_logits(paths: list[list[int]], classes: int) -> np.ndarray:
    return np.stack([np.eye(classes)[path] * 10.0 for path in paths])


def test_greedy_decoding_merges_repeats_then_drops_blanks() -> None:
    paths = [[0, 1, 1, 0, 1, 2, 2, 0], [3, 3, 3, 3, 3, 3, 3, 3], [0] * 8, [1, 0, 1, 0, 2, 0, 0, 2]]
    assert greedy_decode(one_hot_logits(paths, 4)) == [[1, 1, 2], [3], [], [1, 1, 2, 2]]


def test_sequence_metrics_count_exact_strings_and_edit_distance() -> None:
    # decoded: [1, 2], [3], [1, 1, 2]; truths: [1, 2] (exact), [3, 1] (1 deletion), [2, 2] (sub + ins = 2)
    logits = one_hot_logits([[1, 0, 2, 0], [3, 3, 0, 0], [1, 0, 1, 2]], 4)
    labels = np.array([[1, 2, 0], [3, 1, 0], [2, 2, 0]])
    metrics = sequence_metrics(logits, labels)
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["error_rate"] == pytest.approx((0 + 1 + 2) / 6)
    assert metrics["loss"] == pytest.approx(ctc_negative_log_likelihood(logits, labels).mean())


# --- the adapters' ctc equals the numpy one ---------------------------------------------------------


def test_torch_ctc_loss_is_the_canonical_mean() -> None:
    torch = pytest.importorskip("torch")
    from harness.adapters.torch.losses import loss_function, prepare_targets

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((16, 10, 5)).astype(np.float32)
    labels = random_strings(rng, 16, 4, 5)
    value = loss_function("ctc")(torch.tensor(logits), prepare_targets("ctc", labels, torch.device("cpu")))
    # float32 log-softmax and recursion vs float64: relative 1e-6 covers the rounding of ~10 steps
    assert float(value) == pytest.approx(ctc_negative_log_likelihood(logits, labels).mean(), rel=1e-6)


@pytest.mark.keras
def test_keras_ctc_loss_is_the_canonical_mean() -> None:
    pytest.importorskip("keras")
    from keras import ops

    from harness.adapters.keras.losses import loss_function, prepare_targets

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((16, 10, 5)).astype(np.float32)
    labels = random_strings(rng, 16, 4, 5)
    value = loss_function("ctc")(
        ops.convert_to_tensor(logits), ops.convert_to_tensor(prepare_targets("ctc", labels, 5))
    )
    assert float(ops.convert_to_numpy(value)) == pytest.approx(
        ctc_negative_log_likelihood(logits, labels).mean(), rel=1e-6
    )


# --- the symbol_sequences dataset -------------------------------------------------------------------


def test_symbol_sequences_shapes_and_static_facts() -> None:
    spec = resolve_dataset(
        {"name": "symbol_sequences", "num_symbols": 4, "max_length": 3, "timesteps": 20, "features": 5}
    )
    info = dataset_info(spec)
    assert (info.task, info.input_shape, info.num_outputs, info.num_classes, info.target_length) == (
        "sequence",
        (20, 5),
        5,
        5,
        3,
    )
    data = load_dataset(spec)
    assert data.x_train.shape == (1500, 20, 5) and data.x_test.shape == (500, 20, 5)
    assert data.y_train.shape == (1500, 3) and data.y_train.dtype == np.int64
    for labels in (data.y_train, data.y_test):
        lengths = label_lengths(labels)
        assert lengths.min() == 1 and lengths.max() == 3
        # a string first, then only padding: no 0 before a label
        assert np.all(labels == np.where(np.arange(3) < lengths[:, None], labels, 0))
        assert set(np.unique(labels[labels > 0])) == {1, 2, 3, 4}


def test_every_symbol_is_visible_where_the_string_says() -> None:
    """Without noise each frame is exactly one prototype or silence, and reading the frames left to
    right (runs of one prototype, split by silence) gives back the label string."""
    arrays = make_symbol_sequences(n_samples=200, num_symbols=6, max_length=4, timesteps=19, features=7, noise=0.0)
    frames = arrays["x"].reshape(200, 19, 7)
    silent = np.all(frames == 0.0, axis=2)
    for row in range(200):
        runs, previous_silent = [], True
        for step in range(19):
            if not silent[row, step] and previous_silent:
                runs.append(tuple(frames[row, step]))
            previous_silent = silent[row, step]
        string = arrays["y"][row][arrays["y"][row] > 0]
        assert len(runs) == len(string)
        # the same symbol always has the same prototype, different symbols different ones
        assert len({(label, run) for label, run in zip(string, runs)}) == len(set(zip(string, runs)))
    assert symbol_sequence_frames(4) == 19


def test_symbol_sequences_are_fixed_by_the_dataset_seed() -> None:
    first = make_symbol_sequences(50, 5, 4, 24, 3, 0.5)
    second = make_symbol_sequences(50, 5, 4, 24, 3, 0.5)
    assert all(np.array_equal(first[key], second[key]) for key in ("x", "y"))


def test_too_few_timesteps_is_a_dataset_error_naming_the_fix() -> None:
    with pytest.raises(DatasetError, match=r"data.timesteps: 10 frames cannot hold 3 symbols .* at least 14"):
        resolve_dataset({"name": "symbol_sequences", "max_length": 3, "timesteps": 10}, "data")


# --- models: per-step heads and the shape checks ----------------------------------------------------

SEQUENCE_SHAPE = (32, 8)


@pytest.mark.parametrize(
    "model, shape",
    [
        ({"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "sequence"}}, (32, 9)),
        ({"rnn": {"cell": "lstm", "units": 6, "depth": 2, "readout": "sequence", "dense": [10]}}, (32, 9)),
        (
            {"cnn": {"filters": [4, 4], "kernel_size": 3, "strides": [2, 1], "padding": "same", "readout": "sequence"}},
            (16, 9),
        ),
        ({"transformer": {"depth": 1, "heads": 2, "width": 8, "readout": "sequence"}}, (32, 9)),
        ({"layers": [{"dense": {"units": 5, "activation": "relu"}}, {"dense": {}}]}, (32, 9)),
    ],
    ids=["bigru", "lstm-depth2-head", "cnn-stride", "transformer", "per-frame-dense"],
)
def test_sequence_readout_keeps_the_time_axis(model, shape) -> None:
    spec = resolve_model(model, 9, input_shape=SEQUENCE_SHAPE)
    assert spec.plan(SEQUENCE_SHAPE)[-1].output_shape == shape
    check_model_against_task(spec, SEQUENCE_SHAPE, "ctc", "sequence", 9, target_length=5)


def test_a_per_step_dense_kernel_is_shared_across_steps() -> None:
    spec = resolve_model({"layers": [{"dense": {"units": 3}}]}, 3)
    (plan,) = spec.plan((7, 4))
    assert plan.output_shape == (7, 3)
    assert [tensor.shape for tensor in plan.tensors] == [(4, 3), (3,)]


@pytest.mark.parametrize(
    "model, fragment",
    [
        (
            {"rnn": {"cell": "gru", "units": 6, "readout": "flatten"}},
            r"output shape is \(9,\), but loss 'ctc' needs one score per class at every step, \(steps, 9\)",
        ),
        ({"rnn": {"cell": "gru", "units": 6}}, r"Keep the time axis \(return_sequences: true"),
        (
            {"cnn": {"filters": [4, 4, 4], "strides": 2, "padding": "same", "readout": "sequence"}},
            r"emits 4 steps, but loss 'ctc' needs at least 9 to spell the longest label string \(5 symbols",
        ),
        (
            {"layers": [{"gru": {"units": 4, "return_sequences": True}}, {"dense": {"activation": "softmax"}}]},
            r"applies 'softmax', but loss 'ctc' takes logits",
        ),
    ],
    ids=["flatten", "last-state", "too-much-striding", "softmax"],
)
def test_ctc_output_errors_name_the_fix(model, fragment) -> None:
    spec = resolve_model(model, 9, input_shape=SEQUENCE_SHAPE)
    with pytest.raises(SpecError, match=fragment):
        check_model_against_task(spec, SEQUENCE_SHAPE, "ctc", "sequence", 9, target_length=5)


def test_dense_on_an_image_still_asks_for_a_flatten() -> None:
    spec = resolve_model({"layers": [{"dense": {"units": 4}}]}, 4)
    with pytest.raises(
        SpecError,
        match=r"dense expects a vector \(features,\) or a sequence \(steps, features\), got shape \(8, 8, 1\)",
    ):
        spec.plan((8, 8, 1))


def test_classification_output_with_a_time_axis_suggests_a_readout() -> None:
    spec = resolve_model({"layers": [{"conv1d": {"filters": 4, "kernel_size": 3}}, {"dense": {}}]}, 10)
    with pytest.raises(
        SpecError, match=r"output shape is \(38, 10\).*Put a flatten or global pooling layer before the output"
    ):
        check_model_against_task(spec, (40, 1), "cross_entropy", "classification", 10)


def test_a_2d_cnn_has_no_sequence_readout() -> None:
    with pytest.raises(SpecError, match=r"model.cnn.readout: 'sequence' keeps the time axis of a conv1d stack"):
        resolve_model({"cnn": {"filters": [4], "readout": "sequence"}}, 10, where="model", input_shape=(8, 8, 1))


# --- suites: loading, errors with exit 2, and a real run in both backends ---------------------------

SUITE = """\
name: ctc_tiny
dataset: {name: symbol_sequences, n_samples: 120, max_length: 3, timesteps: 16, features: 4}
model: {rnn: {cell: gru, units: 8, bidirectional: true, readout: sequence}}
loss: ctc
optimizer: {name: adam, lr: 0.01}
initializer: xavier_uniform
training: {epochs: 2, batch_size: 30}
seeds: 1
backends: BACKENDS
grid:
  model:
    frames: {layers: [{dense: {units: 8, activation: relu}}, {dense: {}}]}
    bigru: {rnn: {cell: gru, units: 8, bidirectional: true, readout: sequence}}
expect:  # validated at load: error_rate is a metric claims may name
  - "bigru.test_error_rate < frames.test_error_rate"
"""


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        (
            "loss: ctc",
            "loss: cross_entropy",
            "loss 'cross_entropy' needs a classification dataset, but 'symbol_sequences' is a sequence dataset",
        ),
        (
            "dataset: {name: symbol_sequences, n_samples: 120, max_length: 3, timesteps: 16, features: 4}",
            "dataset: digits",
            "loss 'ctc' needs a sequence dataset, but 'digits' is a classification dataset",
        ),
        ("timesteps: 16", "timesteps: 12", "dataset.timesteps: 12 frames cannot hold 3 symbols"),
    ],
    ids=["ce-on-sequences", "ctc-on-digits", "timesteps"],
)
def test_validate_reports_sequence_mistakes_with_exit_2(tmp_path, old, new, fragment) -> None:
    path = write_suite(tmp_path, SUITE.replace("BACKENDS", "[torch]").replace(old, new))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_a_ctc_suite_runs_in_both_backends_and_reports_error_rates(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    import harness

    path = write_suite(tmp_path, SUITE.replace("BACKENDS", "[torch, keras]"))
    assert len(load_suite(path).trials) == 4
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(store), "--jobs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "test_error_rate" in result.output  # the primary metric of a sequence suite
    results = harness.load(path, store)
    final = results.final()
    assert set(final["status"]) == {"ok"}
    for metric in ("train_loss", "test_loss", "test_accuracy", "test_error_rate"):
        assert np.all(np.isfinite(final[metric].to_numpy(dtype=float))), metric
    assert np.all((final["test_accuracy"] >= 0) & (final["test_accuracy"] <= 1))
    assert np.all(final["test_error_rate"] >= 0)
    # the same weights and batches: the two backends' losses after 2 epochs agree closely
    by_backend = final.set_index(["arm", "backend"])["train_loss"]
    for arm in ("frames", "bigru"):
        assert by_backend[(arm, "torch")] == pytest.approx(by_backend[(arm, "keras")], rel=1e-3)
