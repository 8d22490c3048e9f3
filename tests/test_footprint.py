"""Parameter counts and training-memory estimates from the spec alone (harness.spec.footprint), and the
refusal of a trial too big for the machine's or the GPU's memory (harness.capacity) by validate and run."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.specs import arrays_info, trial_spec
from helpers.suites import BASE_SUITE, write_suite

import harness.capacity
from harness.capacity import Memory, arm_footprints, check_trials_fit, device_memory
from harness.cli import cli
from harness.data import dataset_info
from harness.errors import SpecError
from harness.spec import OPTIMIZERS
from harness.spec.footprint import BYTES_PER_VALUE, OPTIMIZER_SLOTS, format_bytes, trial_footprint
from harness.suite import load_suite

REPO = Path(__file__).parent.parent
HUGE = BASE_SUITE.replace("hidden: [8]", "hidden: [100000000000]")  # 10^11 units: 4 * 10^13 parameters


def torch_trainable_count(spec, info) -> int:
    from harness.adapters import get_adapter

    model = get_adapter("torch").build(spec, info)
    return sum(p.numel() for p in model.network.module.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "suite_name", ["architectures", "lenet_digits", "sequence_labelling", "regularization", "depth_width", "smoke"]
)
def test_parameter_counts_equal_the_built_torch_models(suite_name):
    pytest.importorskip("torch")
    suite = load_suite(REPO / "suites" / f"{suite_name}.yaml", backends=["torch"])
    footprints = arm_footprints(suite.trials)
    for arm in suite.arms:
        spec = next(trial.spec for trial in suite.trials if trial.arm == arm)
        assert footprints[arm].parameters == torch_trainable_count(spec, dataset_info(spec.dataset)), arm


LAYER_MODELS = {
    "batch-norm-conv2d": (
        (8, 8, 2),
        [
            {"conv2d": {"filters": 3, "kernel_size": 3}},
            {"batch_norm": {}},
            {"max_pool2d": {}},
            {"flatten": {}},
            {"dense": {}},
        ],
    ),
    "lstm-bidirectional": ((6, 4), [{"lstm": {"units": 5, "bidirectional": True}}, {"dense": {}}]),
    "simple-rnn-then-gru": (
        (6, 4),
        [{"simple_rnn": {"units": 3, "return_sequences": True}}, {"gru": {"units": 4}}, {"dense": {}}],
    ),
    "attention-and-encoder": (
        (5, 8),
        [
            {"transformer_encoder": {"heads": 2, "ffn_units": 16}},
            {"multi_head_attention": {"heads": 2, "key_dim": 3}},
            {"layer_norm": {}},
            {"global_avg_pool": {}},
            {"dense": {}},
        ],
    ),
}


@pytest.mark.parametrize("name", LAYER_MODELS)
def test_parameter_counts_of_stateful_recurrent_and_attention_layers(name):
    pytest.importorskip("torch")
    input_shape, layers = LAYER_MODELS[name]
    spec = trial_spec(layers, 3, loss="mse", input_shape=input_shape)
    footprint = trial_footprint(spec, input_shape)
    assert footprint.parameters == torch_trainable_count(spec, arrays_info(input_shape, 3, "mse"))
    if name == "batch-norm-conv2d":
        assert footprint.state == 6  # running mean and variance of 3 channels: state, not trained


def test_the_estimate_adds_weights_gradients_optimizer_state_and_activations():
    spec = trial_spec(
        ({"dense": {"units": 6, "activation": "tanh"}}, {"dense": {}}), 3, optimizer="adam", batch_size=10
    )
    footprint = trial_footprint(spec, (4,))
    parameters = 4 * 6 + 6 + 6 * 3 + 3
    assert footprint.parameters == parameters and footprint.state == 0
    assert footprint.weights_bytes == footprint.gradients_bytes == parameters * BYTES_PER_VALUE
    assert footprint.optimizer_bytes == 2 * parameters * BYTES_PER_VALUE  # adam: m and v
    assert footprint.activations_bytes == 10 * (4 + 6 + 3) * BYTES_PER_VALUE
    assert footprint.total_bytes == (4 * parameters + 130) * BYTES_PER_VALUE
    assert (
        footprint.describe()
        == f"{parameters} parameters, ~{format_bytes(footprint.total_bytes)} to train at batch size 10"
    )


def test_every_optimizer_has_its_state_size():
    assert set(OPTIMIZER_SLOTS) == set(OPTIMIZERS)


@pytest.mark.parametrize(
    "count, text", [(0, "0 B"), (999, "999 B"), (1234, "1.2 KB"), (45_600, "46 KB"), (4 * 10**11, "400 GB")]
)
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_validate_prints_each_arms_parameters_and_memory():
    result = CliRunner().invoke(cli, ["validate", str(REPO / "suites" / "smoke.yaml")])
    assert result.exit_code == 0, result.output
    assert "      sgd  (12 trials)  2,410 parameters, ~" in result.output  # 2 backends x 6 seeds (3 explore, 3 confirm)
    assert "to train at batch size 64" in result.output


def test_a_hidden_layer_of_10_to_the_11_is_refused_quickly_without_allocating(tmp_path):
    path = write_suite(tmp_path, HUGE)
    CliRunner().invoke(cli, ["validate", str(REPO / "suites" / "smoke.yaml")])  # imports, outside the timing
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = CliRunner().invoke(cli, ["validate", str(path)])
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{path}:3: model: arm 'base' needs about " in result.output
    assert "(5,100,000,000,010 parameters: " in result.output  # mnist1d: 40 inputs, 10 classes
    assert "parameters: weights " in result.output and "but this machine has " in result.output
    assert seconds < 3.0 and peak < 20 * 2**20, (seconds, peak)

    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(store), "--quiet"])
    assert result.exit_code == 2 and "needs about" in result.output, result.output
    assert not store.exists()  # refused before anything was written


def test_the_machines_memory_is_what_the_estimate_is_held_to(monkeypatch, tmp_path):
    path = write_suite(tmp_path, BASE_SUITE)
    suite = load_suite(path)
    monkeypatch.setattr(harness.capacity, "host_memory", lambda: Memory(1_000, "this machine has", "a test"))
    with pytest.raises(SpecError, match=r"needs about .* but this machine has 1.0 KB \(a test\)"):
        check_trials_fit(suite.trials, path)
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(tmp_path / "store"), "--quiet"])
    assert result.exit_code == 2 and "this machine has 1.0 KB" in result.output
    monkeypatch.setattr(harness.capacity, "host_memory", lambda: None)  # unknown: no check
    check_trials_fit(suite.trials, path)


def test_a_cuda_trial_is_held_to_its_gpus_memory(tmp_path):
    wide = BASE_SUITE.replace("hidden: [8]", "hidden: [100000000]") + "device: cuda\n"  # ~4e9 parameters: 16 GB each
    path = write_suite(tmp_path, wide)
    suite = load_suite(path)
    with pytest.raises(SpecError, match=r"but the smallest GPU has 8\.6 GB \(nvidia-smi\)"):
        check_trials_fit(suite.trials, path, gpu_ids=lambda: ["0", "1"], gpus=lambda: [80 * 2**30, 8 * 2**30])
    check_trials_fit(suite.trials, path, gpu_ids=lambda: [], gpus=lambda: [])  # no GPU: the device check's case


def test_device_memory_picks_the_gpu_the_trial_gets():
    sizes = [8 * 10**9, 80 * 10**9]
    assert device_memory("cuda:1", ["0", "1"], lambda: sizes) == Memory(sizes[1], "GPU 1 (cuda:1) has", "nvidia-smi")
    assert device_memory("auto", ["1"], lambda: sizes).bytes == sizes[1]  # CUDA_VISIBLE_DEVICES=1
    assert device_memory("cuda:5", ["0", "1"], lambda: sizes) is None
    assert device_memory("cuda", [], lambda: sizes) is None
