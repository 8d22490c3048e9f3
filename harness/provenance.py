"""Provenance: what code and environment produced a result, read once per process.

Every trial records (the store's `trials.provenance`, JSON):
    git         the git commit and dirty flag of the checkout the worker runs in (its working
                folder: the user's project), when it is one; None otherwise
    harness_git the same for the harness package's own checkout, when it is a different one
    packages    a hash of the name and version of every installed distribution; the full list is
                stored once per distinct hash (the store's `provenance_blobs`, kind 'packages')
    python, platform
    cpu         the CPU model; cpu_flags: a hash of its feature flags (the list, once per hash)
    gpu_driver  the NVIDIA kernel driver's version, where one is loaded (the GPU model is in `device`)
    threads     the thread settings: the environment variables the BLAS and framework thread pools
                read, the cores this process may run on, and the count it was pinned to

Computed once per process (functools.cache) by each worker before its first trial: a few git calls
and one walk of the installed distributions, about 0.1-0.3 s, never per trial. Only the standard
library: workers import it, so it is part of the code fingerprint (runner.code_version).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import harness

DIGEST_LENGTH = 16
GIT_SECONDS = 10.0  # a git call that takes longer (a huge or network checkout) is given up: no git state
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_FLAGS",
)
PACKAGES = "packages"  # provenance_blobs kinds
CPU_FLAGS = "cpu_flags"
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value (sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def _git(folder: Path, *arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            text=True,
            timeout=GIT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(folder: str | Path) -> dict[str, Any] | None:
    """{'root', 'commit', 'dirty'} of the git checkout holding `folder`; None outside one (or without git).

    dirty: tracked files differ from the commit, or untracked files that git does not ignore exist
    (a new plug-in file changes what runs as much as an edit does)."""
    folder = Path(folder)
    if not folder.is_dir():
        folder = folder.parent
    root = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD") if root else None
    if not root or not commit:
        return None
    status = _git(folder, "status", "--porcelain")
    return {"root": root, "commit": commit, "dirty": bool(status) if status is not None else None}


def installed_packages() -> dict[str, str]:
    """name -> version of every distribution installed in this interpreter's environment."""
    packages: dict[str, str] = {}
    for distribution in metadata.distributions():
        name, version = _name_and_version(distribution)
        if name:
            packages[name.lower()] = version
    return dict(sorted(packages.items()))


def _name_and_version(distribution: metadata.Distribution) -> tuple[str, str]:
    """The Name and Version headers of a distribution's metadata, read from its header lines alone: the
    same values as `distribution.metadata["Name"]` and `distribution.version`, which parse the whole file
    as an e-mail message each time (two parses of ~450 files cost a starting worker ~0.3 s)."""
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
            if len(found) == 2:
                break
    return found.get("Name", ""), found.get("Version", "")


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and its feature flags (Linux: /proc/cpuinfo; elsewhere the platform's name, no flags)."""
    model, flags = "", list[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = sorted(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown", flags


def gpu_driver() -> str | None:
    """The loaded NVIDIA kernel driver's version ('550.54.15'), read from /proc; None where there is none."""
    try:
        text = NVIDIA_DRIVER.read_text(errors="replace")
    except OSError:
        return None
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return None


def thread_settings(pinned: int | None = None) -> dict[str, str]:
    """The thread-pool environment variables that are set, the cores this process may use, and `pinned`."""
    settings = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    try:
        settings["affinity"] = str(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        settings["affinity"] = str(os.cpu_count() or "")
    if pinned is not None:
        settings["pinned"] = str(pinned)
    return settings


@functools.cache
def _process_provenance() -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    packages = installed_packages()
    cpu, flags = cpu_description()
    project = git_state(Path.cwd())
    own = git_state(Path(harness.__file__).resolve().parent)
    record: dict[str, Any] = {
        "git": {"commit": project["commit"], "dirty": project["dirty"]} if project else None,
        "packages": digest(packages),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_flags": digest(flags),
    }
    if own is not None and (project is None or own["root"] != project["root"]):
        record["harness_git"] = {"commit": own["commit"], "dirty": own["dirty"]}
    driver = gpu_driver()
    if driver is not None:
        record["gpu_driver"] = driver
    blobs = {
        record["packages"]: (PACKAGES, json.dumps(packages, sort_keys=True)),
        record["cpu_flags"]: (CPU_FLAGS, json.dumps(flags)),
    }
    return record, blobs


def process_provenance(threads: int | None = None) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """This process's provenance record (module docstring) and the blobs it refers to by hash.

    Args:
        threads: the thread count this process's frameworks were pinned to.

    Returns:
        (record, blobs): record is JSON-able; blobs maps each hash in it ('packages', 'cpu_flags')
        to (kind, JSON text), stored once per hash. Computed once per process; `threads` is added per call.
    """
    record, blobs = _process_provenance()
    return {**record, "threads": thread_settings(threads)}, dict(blobs)


def describe_git(state: Mapping[str, Any] | None) -> str:
    """'1a2b3c4d5e6f' or '1a2b3c4d5e6f+dirty'; '' without a git state."""
    if not state or not state.get("commit"):
        return ""
    return str(state["commit"])[:12] + ("+dirty" if state.get("dirty") else "")


__all__ = [
    "CPU_FLAGS",
    "PACKAGES",
    "cpu_description",
    "describe_git",
    "digest",
    "git_state",
    "gpu_driver",
    "installed_packages",
    "process_provenance",
    "thread_settings",
]
