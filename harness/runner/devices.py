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
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.adapters import BACKENDS
from harness.errors import HarnessError
from harness.spec.types import Trial
from harness.suite.schema import DEVICE_PATTERN

THREAD_VARIABLES = (  # read by OpenMP, MKL, OpenBLAS (torch, numpy) and TensorFlow at import
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
GPU_VARIABLES = {
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # TensorFlow takes GPU memory as it needs it, not all of it at start
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # JAX: the same (it preallocates 75% by default)
}
GPU_QUERY_SECONDS = 10.0  # nvidia-smi normally answers in well under a second
GPU_GROUPS = ("inherit", "none", "one")


@dataclass(frozen=True)
class Environment:
    """What a worker process is started with; a trial runs only on a worker of its environment.

    keras_backend: KERAS_BACKEND of the worker ('default': not set, for torch trials).
    gpus: 'inherit' (sees what the driver sees), 'none' (sees no GPU), 'one' (pinned to one GPU,
        chosen when the worker starts).
    """

    keras_backend: str = "default"
    gpus: str = "inherit"

    def __str__(self) -> str:
        return self.keras_backend if self.gpus == "inherit" else f"{self.keras_backend}/gpus={self.gpus}"


DEFAULT_ENVIRONMENT = Environment()


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


def worker_variables(environment: Environment, threads: int, visible_devices: str | None = None) -> dict[str, str]:
    """Environment variables of a worker: pinned thread counts, its Keras backend, GPU memory growth,
    and CUDA_VISIBLE_DEVICES when it is restricted ('' hides every GPU)."""
    variables = {name: str(threads) for name in THREAD_VARIABLES}
    variables["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # keep TF's info logs off the progress bar
    variables.update(GPU_VARIABLES)
    if environment.keras_backend != DEFAULT_ENVIRONMENT.keras_backend:
        variables["KERAS_BACKEND"] = environment.keras_backend
    if environment.gpus == "none":
        variables["CUDA_VISIBLE_DEVICES"] = ""
    elif environment.gpus == "one":
        if visible_devices is None:
            raise ValueError("a one-GPU worker needs the GPU id it is pinned to")
        variables["CUDA_VISIBLE_DEVICES"] = visible_devices
    return variables


def with_device(trials: Iterable[Trial], device: str, where: str = "--device") -> tuple[Trial, ...]:
    """The trials with every spec's device replaced (the CLI's --device). The device is part of a
    trial's content hash, so these are new trials to the store.

    Raises:
        HarnessError: `device` is not cpu, auto, cuda or cuda:N.
    """
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise HarnessError(
            f"{where}: expected cpu, auto (a GPU if the backend sees one, else cpu), cuda or cuda:N (N a GPU index), "
            f"got {device!r}. Fix: pass --device auto, for example."
        )
    return tuple(dataclasses.replace(trial, spec=dataclasses.replace(trial.spec, device=device)) for trial in trials)
