"""Will each trial fit in memory? Its estimated training footprint (harness.spec.footprint) against the
machine's memory, or its GPU's when the trial runs on one; checked by `validate` and `run` before anything runs.

A trial bigger than the memory it would run in can only fail, after its worker has taken the machine's
memory (or been killed for it); refusing it up front is a bad-input error (exit 2), like any suite error.

Host memory: psutil when installed, else /proc/meminfo's MemTotal (Linux); unknown elsewhere (no check).
GPU memory: `nvidia-smi --query-gpu=memory.total` for the GPUs harness.runner.devices sees.
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.data import dataset_info
from harness.errors import SpecError
from harness.runner.devices import GPU_QUERY_SECONDS, visible_gpu_ids
from harness.spec.footprint import Footprint, format_bytes, trial_footprint
from harness.spec.types import Trial

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Memory:
    """How much memory a trial would run in, and where that number came from (for messages)."""

    bytes: int
    what: str  # 'this machine has', 'GPU 0 (cuda:0) has'
    source: str  # 'MemTotal in /proc/meminfo', 'nvidia-smi'


def host_memory() -> Memory | None:
    """The machine's physical memory, or None when it cannot be read."""
    try:
        psutil = importlib.import_module("psutil")  # optional
        return Memory(int(psutil.virtual_memory().total), "this machine has", "psutil")
    except ImportError:
        pass
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return Memory(int(line.split()[1]) * 1024, "this machine has", f"MemTotal in {MEMINFO}")
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_memories() -> list[int]:
    """Total memory in bytes of each GPU nvidia-smi lists, in its order; [] when it cannot say."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=GPU_QUERY_SECONDS,
            check=False,
        )
        if listing.returncode != 0:
            return []
        return [int(float(line.strip())) * 2**20 for line in listing.stdout.splitlines() if line.strip()]  # MiB
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def device_memory(device: str, gpu_ids: Sequence[str], gpus: Callable[[], list[int]] = gpu_memories) -> Memory | None:
    """The memory a trial on `device` runs in: a GPU's when it gets one (the smallest, for auto and cuda:
    any may be picked), else the host's. None when unknown (no check)."""
    if device == "cpu" or not gpu_ids:
        return _host() if device in ("cpu", "auto") else None  # cuda without a GPU: the device check's case
    sizes = gpus()
    if device.startswith("cuda:"):
        index = int(device.split(":")[1])
        if index < len(sizes):
            return Memory(sizes[index], f"GPU {index} ({device}) has", "nvidia-smi")
        return None
    visible = [sizes[int(gpu)] for gpu in gpu_ids if gpu.isdigit() and int(gpu) < len(sizes)] or sizes
    return Memory(min(visible), "the smallest GPU has", "nvidia-smi") if visible else None


def _host() -> Memory | None:
    return host_memory()  # looked up when called, so a test can replace it


def arm_footprints(trials: Iterable[Trial]) -> dict[str, Footprint]:
    """{arm: Footprint} of each arm's first trial (an arm's trials differ only in seed, backend and device)."""
    footprints: dict[str, Footprint] = {}
    for trial in trials:
        if trial.arm not in footprints:
            footprints[trial.arm] = trial_footprint(trial.spec, dataset_info(trial.spec.dataset).input_shape)
    return footprints


def check_trials_fit(
    trials: Sequence[Trial],
    suite_path: Path,
    *,
    gpu_ids: Callable[[], list[str]] | None = None,
    gpus: Callable[[], list[int]] | None = None,
) -> None:
    """Refuse the suite when a trial's estimated training memory exceeds the memory it would run in.

    Raises:
        SpecError: `<file>:<line>: model: arm 'x' needs about ... to train (...), but this machine has ...`.
    """
    from harness.suite.yaml_source import locate_message

    footprints = arm_footprints(trials)
    devices = sorted({trial.spec.device for trial in trials})
    ids = (gpu_ids or visible_gpu_ids)() if any(device != "cpu" for device in devices) else []
    memories = {device: device_memory(device, ids, gpus or gpu_memories) for device in devices}
    checked: set[tuple[str, str]] = set()
    for trial in trials:
        key = (trial.arm, trial.spec.device)
        memory = memories[trial.spec.device]
        if key in checked or memory is None:
            continue
        checked.add(key)
        footprint = footprints[trial.arm]
        if footprint.total_bytes > memory.bytes:
            raise locate_message(
                suite_path,
                f"model: arm {trial.arm!r} needs about {format_bytes(footprint.total_bytes)} of memory to train "
                f"({footprint.parameters:,} parameters: {footprint.breakdown()}, float32), but {memory.what} "
                f"{format_bytes(memory.bytes)} ({memory.source}). Make the model smaller (fewer or narrower layers) "
                "or the batch smaller, or run it where there is more memory.",
                SpecError,
            )
