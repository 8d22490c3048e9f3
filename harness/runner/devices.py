"""Which devices a worker sees, decided in the driver without importing a framework.

A worker's environment is fixed before it starts (frameworks read these variables once, at
import): its Keras backend, its thread counts, and which GPUs it may see.

    trial device   machine has GPUs              machine has none
    cpu            every GPU hidden              unchanged
    auto, cuda     ONE GPU per worker,           unchanged ('auto' falls back to the CPU,
                   round-robin (least used)      'cuda' fails with the adapter's message)
    cuda:N         every GPU visible (N is the machine's N-th visible GPU)

Inside a worker pinned to one GPU, that GPU is the framework's cuda:0, and `auto` picks it.
TensorFlow workers grow their GPU memory as needed (TF_FORCE_GPU_ALLOW_GROWTH) and JAX ones
do not preallocate it, so a torch worker and a Keras worker can share one card.

The GPU count comes from CUDA_VISIBLE_DEVICES when the driver has it set, else from
`nvidia-smi -L` (NVIDIA only). Tests replace `visible_gpu_ids` to simulate a multi-GPU machine.

Before a run, `resolve_devices` settles each trial's device where the run can see it, BEFORE
the trial's hash is taken, so the same computation has the same hash:

    asked    GPUs the run can use          none
    cpu      cpu                           cpu
    auto     cuda (hashed as 'cuda', run   cpu (the same trial, hash and stored result
             on the worker's one GPU)      as `device: cpu`)
    cuda     cuda                          refused before anything runs (exit 2)
    cuda:N   cuda:N if N is visible, else refused

What a user sees: a suite with `device: auto` run on a laptop stores CPU trials; run again on a
machine with a GPU, its trials are new (GPU arithmetic differs from the CPU's in the last bits, and
its timings differ entirely), so they train on the GPU and are stored beside the CPU ones, which stay
and are reused whenever the suite runs on a CPU-only machine again. `harness report suite.yaml`
resolves `auto` on the machine it runs on; to report what another machine ran, open its results
folder (`harness report results/<suite>`), whose manifest names the trials that ran. A GPU
machine whose framework build has no GPU support now fails `auto` trials with the adapter's
"sees no GPU" message instead of quietly running them on the CPU: pass `--device cpu` there.
With Ray the GPUs are the ones each actor reserves (`--num-gpus`), not the driver's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
from collections.abc import Iterable, Sequence

from harness.adapters import BACKENDS
from harness.errors import HarnessError
from harness.runner.environment import (  # noqa: F401  (what a worker is started with; re-exported)
    DEFAULT_ENVIRONMENT,
    GPU_VARIABLES,
    THREAD_VARIABLES,
    Environment,
    worker_variables,
)
from harness.spec.types import Trial
from harness.suite.schema import DEVICE_PATTERN

GPU_QUERY_SECONDS = 10.0  # nvidia-smi normally answers in well under a second
GPU_GROUPS = ("inherit", "none", "one")


def visible_gpu_ids() -> list[str]:
    """Ids of the GPUs this process may hand to workers: CUDA_VISIBLE_DEVICES's entries when set
    ('' or '-1': none), else 0..n-1 for the n GPUs `nvidia-smi -L` lists, else none."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        ids = [part.strip() for part in declared.split(",") if part.strip()]
        return [] if ids[:1] == ["-1"] else ids
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"],
            capture_output=True,
            text=True,
            timeout=GPU_QUERY_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no NVIDIA driver, or it hangs
        return []
    if listing.returncode != 0:
        return []
    return [
        str(index) for index, line in enumerate(line for line in listing.stdout.splitlines() if line.startswith("GPU "))
    ]


def keras_environment(backend: str) -> str:
    """The KERAS_BACKEND a backend's worker needs, or 'default'."""
    entry = BACKENDS.get(backend)
    return entry.keras_backend if entry is not None and entry.keras_backend else DEFAULT_ENVIRONMENT.keras_backend


def environment_for(trial: Trial, gpu_ids: Sequence[str]) -> Environment:
    """The worker environment a trial needs on a machine with these GPUs (see the module table)."""
    device = trial.spec.device
    if not gpu_ids or device.startswith("cuda:"):
        gpus = "inherit"
    elif device == "cpu":
        gpus = "none"
    else:  # auto, cuda
        gpus = "one"
    return Environment(keras_environment(trial.spec.backend), gpus)


def needs_gpu_query(trials: Iterable[Trial]) -> bool:
    """Whether any trial may use a GPU (only then is the machine asked how many it has)."""
    return any(trial.spec.device != "cpu" for trial in trials)


def pick_gpu(gpu_ids: Sequence[str], in_use: Iterable[str]) -> str:
    """The GPU for a new one-GPU worker: the one fewest live workers are pinned to, lowest first
    (round-robin as workers start; a replaced worker refills the gap it left)."""
    counts = {gpu: 0 for gpu in gpu_ids}
    for gpu in in_use:
        if gpu in counts:
            counts[gpu] += 1
    return min(gpu_ids, key=lambda gpu: counts[gpu])


def with_device(trials: Iterable[Trial], device: str, where: str = "--device") -> tuple[Trial, ...]:
    """The trials with every spec's device replaced (the CLI's --device). The device is part of a
    trial's content hash; resolve_devices then settles 'auto' (cpu on a machine without a GPU is the
    same trial as `device: cpu`).

    Raises:
        HarnessError: `device` is not cpu, auto, cuda or cuda:N.
    """
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise HarnessError(
            f"{where}: expected cpu, auto (a GPU if the backend sees one, else cpu), cuda or cuda:N (N a GPU index), "
            f"got {device!r}. Fix: pass --device auto, for example."
        )
    return tuple(dataclasses.replace(trial, spec=dataclasses.replace(trial.spec, device=device)) for trial in trials)


def resolve_auto(trials: Iterable[Trial], gpu_ids: Sequence[str] | None = None) -> tuple[Trial, ...]:
    """The trials with 'auto' replaced by what it runs on: 'cuda' when `gpu_ids` is not empty, else 'cpu'
    (the table in the module docstring). Other devices are kept as they are.

    gpu_ids None: this machine's (`visible_gpu_ids`, asked only when a trial says 'auto'); how
    `harness report suite.yaml` finds the trials `harness run suite.yaml` ran here.
    """
    trials = tuple(trials)
    if gpu_ids is None:
        gpu_ids = visible_gpu_ids() if any(trial.spec.device == "auto" for trial in trials) else []
    resolved = "cuda" if gpu_ids else "cpu"
    return tuple(
        dataclasses.replace(trial, spec=dataclasses.replace(trial.spec, device=resolved))
        if trial.spec.device == "auto"
        else trial
        for trial in trials
    )


def check_gpus_exist(trials: Iterable[Trial], gpu_ids: Sequence[str], where: str, seen_by: str, fix: str) -> None:
    """Refuse trials whose device names a GPU the run cannot use, before anything runs.

    Args:
        trials: the trials of the run.
        gpu_ids: the GPUs the run's workers can use (cuda:0 .. cuda:len-1).
        where: what set the device, for the message ('--device', 'suites/x.yaml: device').
        seen_by: who sees `gpu_ids` ('this machine', 'each Ray actor').
        fix: how else to get a GPU, appended to the message.

    Raises:
        HarnessError: a trial asks for 'cuda' with no GPU, or for 'cuda:N' past the last GPU.
    """
    missing: dict[str, set[str]] = {}
    for trial in trials:
        device = trial.spec.device
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            if index >= len(gpu_ids):
                missing.setdefault(device, set()).add(trial.arm)
    if not missing:
        return
    existing = ", ".join(["cpu", *(f"cuda:{index}" for index in range(len(gpu_ids)))])
    asked = "; ".join(f"{device!r} (arms: {', '.join(sorted(arms))})" for device, arms in sorted(missing.items()))
    sees = f"sees {len(gpu_ids)} GPU(s)" if gpu_ids else "sees no GPU"
    raise HarnessError(
        f"{where}: the trials ask for {asked}, but {seen_by} {sees}; the devices there are: {existing}. "
        f"Nothing was run. Fix: pass --device cpu, or --device auto (a GPU where there is one, else the CPU){fix}."
    )


def resolve_devices(
    trials: Iterable[Trial], where: str, executor: str = "local", num_gpus: float | None = None
) -> tuple[Trial, ...]:
    """The trials with their devices settled for this run before anything is hashed or run: 'auto'
    resolved and GPUs checked to exist (the module docstring's table).

    Args:
        trials: the run's trials (after --device).
        where: what set the device, for messages ('--device', 'suites/x.yaml: device').
        executor: 'local' (this machine's GPUs, `visible_gpu_ids`) or 'ray' (the GPUs each actor
            reserves: `num_gpus`, rounded up).
        num_gpus: Ray only: GPUs each actor reserves (None: 0).

    Raises:
        HarnessError: a trial asks for a GPU the run cannot use.
    """
    trials = tuple(trials)
    if not needs_gpu_query(trials):
        return trials
    if executor == "ray":
        gpu_ids: Sequence[str] = [str(index) for index in range(math.ceil(num_gpus or 0))]
        seen_by, fix = "each Ray actor (--num-gpus)", ", or reserve GPUs per trial with --num-gpus 1"
    else:
        gpu_ids = visible_gpu_ids()
        seen_by, fix = "this machine (CUDA_VISIBLE_DEVICES, nvidia-smi -L)", ", or run on a machine with a GPU"
    check_gpus_exist(trials, gpu_ids, where, seen_by, fix)
    return resolve_auto(trials, gpu_ids)
