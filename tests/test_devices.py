"""Tests of harness.runner.devices: which GPUs and variables each worker gets.

There is no GPU here. The selection logic is tested as pure functions, and once end to end
with the machine's GPU query (`visible_gpu_ids`) replaced to report two GPUs: real workers
start with the environment chosen for them and record it with their trials. Tests that need
a real GPU carry the `gpu` marker and are skipped where none is visible.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.suites import optimizer_grid_suite, write_suite
from test_runner import make_trial, no_workers_left

from harness.cli import cli
from harness.errors import HarnessError
from harness.results_folder import Results, load
from harness.runner import devices, resolve_devices, run_trials, with_device
from harness.runner.devices import (
    GPU_VARIABLES,
    THREAD_VARIABLES,
    Environment,
    environment_for,
    pick_gpu,
    visible_gpu_ids,
    worker_variables,
)
from harness.store import Store


@pytest.mark.parametrize(
    ("device", "backend", "gpu_ids", "expected"),
    [
        ("cpu", "torch", [], Environment("default", "inherit")),
        ("auto", "torch", [], Environment("default", "inherit")),
        ("cuda", "torch", [], Environment("default", "inherit")),
        ("cpu", "torch", ["0", "1"], Environment("default", "none")),
        ("auto", "torch", ["0", "1"], Environment("default", "one")),
        ("cuda", "keras", ["0", "1"], Environment("tensorflow", "one")),
        ("cuda:1", "torch", ["0", "1"], Environment("default", "inherit")),
        ("auto", "keras-torch", ["0"], Environment("torch", "one")),
    ],
    ids=[
        "cpu-no-gpu",
        "auto-no-gpu",
        "cuda-no-gpu",
        "cpu-hides-gpus",
        "auto-one-gpu",
        "keras-cuda-one-gpu",
        "indexed-sees-all",
        "keras-torch-auto",
    ],
)
def test_environment_for_a_trial(device: str, backend: str, gpu_ids: list[str], expected: Environment) -> None:
    trial = make_trial("a", 0, device=device)
    trial = dataclasses.replace(trial, spec=dataclasses.replace(trial.spec, backend=backend))
    assert environment_for(trial, gpu_ids) == expected


def test_one_gpu_workers_are_spread_round_robin_and_refill_gaps() -> None:
    gpus = ["0", "1", "2"]
    pinned: list[str] = []
    for _ in range(5):  # workers start one after another
        pinned.append(pick_gpu(gpus, pinned))
    assert pinned == ["0", "1", "2", "0", "1"]
    pinned.remove("2")  # the worker on GPU 2 died: its replacement takes the GPU left free
    assert pick_gpu(gpus, pinned) == "2"
    assert pick_gpu(["GPU-a1", "GPU-b2"], ["GPU-a1"]) == "GPU-b2"  # UUIDs as CUDA_VISIBLE_DEVICES gives them


@pytest.mark.parametrize(
    ("environment", "visible", "expected_cuda", "expected_keras"),
    [
        (Environment("default", "inherit"), None, None, None),
        (Environment("tensorflow", "none"), None, "", "tensorflow"),
        (Environment("jax", "one"), "1", "1", "jax"),
    ],
    ids=["inherit", "hidden", "pinned"],
)
def test_worker_variables(
    environment: Environment, visible: str | None, expected_cuda: str | None, expected_keras: str | None
) -> None:
    variables = worker_variables(environment, threads=3, visible_devices=visible)
    assert {name: variables[name] for name in THREAD_VARIABLES} == {name: "3" for name in THREAD_VARIABLES}
    assert variables["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and variables["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert GPU_VARIABLES.items() <= variables.items()
    assert variables.get("CUDA_VISIBLE_DEVICES") == expected_cuda
    assert variables.get("KERAS_BACKEND") == expected_keras


def test_a_one_gpu_worker_needs_its_gpu() -> None:
    with pytest.raises(ValueError, match="GPU id"):
        worker_variables(Environment("default", "one"), threads=1)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [("0,2", ["0", "2"]), (" 3 ", ["3"]), ("", []), ("-1", []), ("GPU-5e1a,GPU-77f0", ["GPU-5e1a", "GPU-77f0"])],
    ids=["two", "spaces", "empty-hides-all", "minus-one-hides-all", "uuids"],
)
def test_visible_gpus_follow_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, declared: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", declared)
    assert visible_gpu_ids() == expected


def _tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            'echo "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)"\necho "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)"\n',
            ["0", "1"],
        ),
        ('echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2\nexit 9\n', []),
        (None, []),
    ],
    ids=["two-gpus", "driver-missing", "no-nvidia-smi"],
)
def test_visible_gpus_from_nvidia_smi(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str | None, expected: list[str]
) -> None:
    # A stand-in nvidia-smi (there is no NVIDIA driver here) printing what the real one prints.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if script is not None:
        _tool(tmp_path, "nvidia-smi", script)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpu_ids() == expected


def test_with_device_replaces_the_device_and_so_the_hash() -> None:
    trial = make_trial("a", 0)
    (moved,) = with_device([trial], "auto")
    assert moved.spec.device == "auto" and moved.hash != trial.hash
    assert (moved.suite, moved.arm, moved.cell, moved.spec.seed) == (
        trial.suite,
        trial.arm,
        trial.cell,
        trial.spec.seed,
    )
    with pytest.raises(HarnessError) as caught:
        with_device([trial], "gpu0")
    assert "--device" in str(caught.value) and "'gpu0'" in str(caught.value) and "cuda:N" in str(caught.value)


def test_workers_on_a_two_gpu_machine_get_one_gpu_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The machine's GPU query says two GPUs. The workers really start with the chosen
    # CUDA_VISIBLE_DEVICES; torch inside them sees no GPU (there is none), so 'auto' runs on the CPU.
    # (A CPU trial's worker would get CUDA_VISIBLE_DEVICES='': test_worker_variables[hidden].)
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: ["0", "1"])
    trials = with_device([make_trial("auto", seed, epochs=2) for seed in range(4)], "auto")
    with Store(tmp_path) as store:
        summary = run_trials(trials, store, jobs=2, quiet=True)
        assert summary.ok == 4, store.trials_frame()["error"].tolist()
        frame, metrics = store.trials_frame(), store.metrics_frame()
    device = [json.loads(text) for text in frame["device"]]
    assert {d["cuda_visible_devices"] for d in device} == {"0", "1"}  # two one-GPU workers, one on each GPU
    assert all(d["device"] == "cpu" and d["name"] and d["threads"] == "1" for d in device)
    assert no_workers_left()

    # The device reaches the report's environment table, one row per distinct device.
    environment = Results(trials=frame, metrics=metrics, arms=("auto",), axes=(), name="devices").environment()
    assert sorted(json.loads(text)["cuda_visible_devices"] for text in environment["device"]) == ["0", "1"]
    assert environment["n_trials"].sum() == 4


@pytest.mark.gpu
@pytest.mark.skipif(not visible_gpu_ids(), reason="no GPU visible (nvidia-smi / CUDA_VISIBLE_DEVICES)")
@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:0"], ids=["auto", "cuda", "cuda-0"])
def test_a_real_gpu_runs_the_trial(tmp_path: Path, device: str) -> None:
    driver_view = os.environ.get("CUDA_VISIBLE_DEVICES")
    trial = resolve_devices(with_device([make_trial("gpu", 0, epochs=2)], device), "--device")[0]
    assert trial.spec.device == ("cuda" if device == "auto" else device)  # settled before its hash is taken
    with Store(tmp_path) as store:
        summary = run_trials([trial], store, jobs=1, quiet=True)
        assert summary.ok == 1, store.trials_frame()["error"].tolist()
        recorded = json.loads(store.trials_frame().loc[0, "device"])
    assert recorded["device"].startswith("cuda:") and recorded["name"]
    if device != "cuda:0":
        assert recorded["device"] == "cuda:0" and recorded["cuda_visible_devices"] == visible_gpu_ids()[0]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == driver_view  # the driver's own environment is untouched


# --- settling the device before the hash (resolve_devices) ---------------------------------------

ONE_ARM = optimizer_grid_suite(
    "devices",
    "One arm, one seed, on whichever device the run says.",
    dataset="{name: iris, validation: 0.2}",
    model="{mlp: {hidden: [4]}}",
    training="{epochs: 1, batch_size: 32}",
    seeds=1,
    arms={"sgd": "{name: sgd, lr: 0.1}"},
)


@pytest.mark.parametrize(
    ("gpu_ids", "expected"), [([], "cpu"), (["0", "1"], "cuda")], ids=["no-gpu-is-cpu", "gpus-are-cuda"]
)
def test_auto_is_settled_before_hashing(monkeypatch: pytest.MonkeyPatch, gpu_ids: list[str], expected: str) -> None:
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: gpu_ids)
    cpu, auto = make_trial("a", 0), make_trial("a", 0, device="auto")
    (settled,) = resolve_devices([auto], "--device")
    assert settled.spec.device == expected
    assert settled.hash == with_device([cpu], expected)[0].hash  # the same computation, the same hash
    assert resolve_devices([cpu], "--device") == (cpu,)  # cpu stays cpu, GPUs or not


def test_resolving_asks_for_gpus_only_when_a_trial_may_use_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_query() -> list[str]:
        raise AssertionError("the GPU query ran for CPU-only trials")

    monkeypatch.setattr(devices, "visible_gpu_ids", no_query)
    trials = (make_trial("a", 0), make_trial("b", 1))
    assert resolve_devices(trials, "--device") == trials
    assert devices.resolve_auto(trials) == trials


@pytest.mark.parametrize(
    ("device", "gpu_ids", "named"),
    [("cuda", [], "sees no GPU; the devices there are: cpu."), ("cuda:2", ["0", "1"], "cpu, cuda:0, cuda:1.")],
    ids=["cuda-without-gpu", "index-past-the-last"],
)
def test_a_gpu_the_machine_lacks_is_refused(
    monkeypatch: pytest.MonkeyPatch, device: str, gpu_ids: list[str], named: str
) -> None:
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: gpu_ids)
    with pytest.raises(HarnessError) as caught:
        resolve_devices([make_trial("wide", 0, device=device)], "--device")
    message = str(caught.value)
    assert message.startswith(f"--device: the trials ask for {device!r} (arms: wide)") and named in message
    assert "--device cpu" in message and "--device auto" in message


def test_on_ray_the_gpus_are_the_ones_each_actor_reserves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: ["0"])  # the driver's GPU is not the actors'
    auto, cuda = make_trial("a", 0, device="auto"), make_trial("a", 0, device="cuda")
    assert resolve_devices([auto], "--device", "ray")[0].spec.device == "cpu"
    assert resolve_devices([auto], "--device", "ray", num_gpus=0.5)[0].spec.device == "cuda"
    with pytest.raises(HarnessError, match=r"each Ray actor \(--num-gpus\) sees no GPU.*--num-gpus 1"):
        resolve_devices([cuda], "--device", "ray")


@pytest.mark.parametrize("where", ["flag", "suite"])
def test_cli_refuses_cuda_without_a_gpu_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: [])
    text = ONE_ARM if where == "flag" else ONE_ARM.replace("backends:", "device: cuda\nbackends:")
    suite = write_suite(tmp_path, text, "devices.yaml")
    flags = ["--device", "cuda"] if where == "flag" else []
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store"), "--quiet", *flags])
    assert result.exit_code == 2, result.output
    origin = "--device" if where == "flag" else f"{suite}: device"
    assert f"{origin}: the trials ask for 'cuda' (arms: sgd)" in result.output
    assert "the devices there are: cpu." in result.output and "Fix: pass --device cpu" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "store").exists()  # nothing written


def test_auto_on_a_cpu_machine_reuses_the_stored_cpu_trials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # `harness run` with device cpu, then again with --device auto on this GPU-less machine: nothing to train,
    # and the suite YAML opens the same results (harness report / harness.load settle 'auto' the same way).
    monkeypatch.setattr(devices, "visible_gpu_ids", lambda: [])
    suite, store = write_suite(tmp_path, ONE_ARM, "devices.yaml"), tmp_path / "store"
    first = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store), "--quiet", "--jobs", "1"])
    assert first.exit_code == 0 and "1 trials: 0 already in the store, 1 ok" in first.output, first.output
    again = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store), "--quiet", "--device", "auto"])
    assert again.exit_code == 0 and "1 trials: 1 already in the store, 0 ok" in again.output, again.output
    auto_suite = write_suite(tmp_path, ONE_ARM.replace("backends:", "device: auto\nbackends:"), "auto.yaml")
    assert len(load(auto_suite, store).trials) == 1
