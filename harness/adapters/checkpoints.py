"""Checkpoints inside a trial: a killed trial resumes at its last checkpoint and ends exactly as if never stopped.

A checkpoint is taken at an epoch boundary and holds everything the rest of the trial reads:
- the model's training state (`Model.training_state`): every tensor, the optimizer's state, the
  framework RNG states (dropout masks);
- the loop's state: the metrics, diagnostics and kept predictions so far, the weights kept for
  `save_weights: best`, the timings, and the epoch. The position in the batch order is the epoch:
  each epoch's order is a pure function of (seed, epoch) (harness.data.batches), so the next epoch's
  batches are drawn anew exactly as an uninterrupted trial draws them.

File: `<store>/checkpoints/<hash>.ckpt`, one safetensors file (arrays under `model/...` and `loop/...`,
the rest as JSON metadata), written atomically (a temporary file renamed over the last one) so a
kill while writing leaves the previous checkpoint whole. Its metadata carries the trial hash, the backend and
its framework versions, the epoch and a SHA-256 of every array. A file that is cut short, damaged,
from another trial spec, backend or framework version, or that does not fit the model is never
loaded: the trial starts from zero, says why on stderr and records it (TrialResult.events). At most
one checkpoint per trial exists (each replaces the last), and it is removed when the trial ends.

When: `training.checkpoint_every: N` every N epochs; by default (null) at the end of the first
epoch that ends AUTO_CHECKPOINT_SECONDS or more after the last checkpoint (or the start of
training), so short trials never write one. Never after the final epoch (the trial is ending).
A checkpoint that cannot be written (a full disk, an unwritable folder) is reported and the trial
goes on without further checkpoints: it costs resumability, never the result.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.spec.types import TrialSpec
from harness.weights import decode, encode, write_atomically

CHECKPOINT_FORMAT = "1"  # the metadata's 'format'; a checkpoint of another format is not loaded
CHECKPOINT_SUFFIX = ".ckpt"
AUTO_CHECKPOINT_SECONDS = 60.0  # checkpoint_every: null: at most one checkpoint per this much training
MODEL, LOOP = "model/", "loop/"

# TrialResult.events kinds
RESUMED = "resumed"
DISCARDED = "checkpoint_discarded"
NOT_WRITTEN = "checkpoint_not_written"

# A test hook (tests/test_weights.py): HARNESS_TEST_KILL_AFTER_EPOCH="<hash>:<epoch>[,<hash>:<epoch>...]" makes
# the process running that trial SIGKILL itself at the end of that epoch, before its checkpoint, on a run that
# did not resume (so the run that resumes goes past it). Inert unless set; one environment lookup per epoch.
KILL_VARIABLE = "HARNESS_TEST_KILL_AFTER_EPOCH"


def checkpoint_file(directory: str | Path, trial_hash: str) -> Path:
    return Path(directory) / f"{trial_hash}{CHECKPOINT_SUFFIX}"


@dataclass
class Checkpoint:
    """What a checkpoint holds, decoded (see the module docstring)."""

    epoch: int
    model_arrays: dict[str, np.ndarray]
    model_meta: dict[str, Any]
    loop_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    loop_meta: dict[str, Any] = field(default_factory=dict)


def digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    hasher = hashlib.sha256()
    for key in sorted(arrays):
        array = np.asarray(arrays[key], order="C")
        hasher.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def write_checkpoint(path: Path, spec: TrialSpec, versions: Mapping[str, str], checkpoint: Checkpoint) -> int:
    """Write (atomically) and return the file's size in bytes. Raises OSError when it cannot be written."""
    arrays = {MODEL + key: value for key, value in checkpoint.model_arrays.items()}
    arrays.update({LOOP + key: value for key, value in checkpoint.loop_arrays.items()})
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "trial": spec.hash,
        "backend": spec.backend,
        "versions": json.dumps(dict(versions), sort_keys=True),
        "epoch": str(checkpoint.epoch),
        "model": json.dumps(checkpoint.model_meta),
        "loop": json.dumps(checkpoint.loop_meta),
        "sha256": digest(arrays),
    }
    data = encode(arrays, metadata)
    # no fsync: it costs more than the rest of the write (~20 ms), and a file a power cut tears fails
    # its SHA-256 and is not loaded; against a killed process the rename alone is enough
    write_atomically(path, data, durable=False)
    return len(data)


def read_checkpoint(path: Path, spec: TrialSpec, versions: Mapping[str, str]) -> tuple[Checkpoint | None, str]:
    """(the checkpoint, '') when the file is one this trial may resume from, else (None, why not)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})"
    try:
        arrays, metadata = decode(data)
    except ValueError as error:
        return None, f"cut short or damaged: {error}"
    checks = (
        (
            metadata.get("format") == CHECKPOINT_FORMAT,
            f"format {metadata.get('format')!r}, expected {CHECKPOINT_FORMAT!r}",
        ),
        (
            metadata.get("trial") == spec.hash,
            f"from another trial spec (hash {metadata.get('trial')}, this trial {spec.hash})",
        ),
        (
            metadata.get("backend") == spec.backend,
            f"from backend {metadata.get('backend')!r}, this trial {spec.backend!r}",
        ),
        (
            metadata.get("versions") == json.dumps(dict(versions), sort_keys=True),
            f"written with framework versions {metadata.get('versions')}, now {json.dumps(dict(versions), sort_keys=True)}",
        ),
        (metadata.get("sha256") == digest(arrays), "damaged: its arrays do not match their SHA-256"),
    )
    for passed, reason in checks:
        if not passed:
            return None, reason
    try:
        epoch = int(metadata["epoch"])
        model_meta, loop_meta = json.loads(metadata["model"]), json.loads(metadata["loop"])
    except (KeyError, ValueError) as error:
        return None, f"damaged metadata ({error})"
    if not 0 < epoch < spec.training.epochs:
        return None, f"epoch {epoch} is outside this trial's 1..{spec.training.epochs - 1}"
    split = {
        prefix: {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)} for prefix in (MODEL, LOOP)
    }
    return Checkpoint(epoch, split[MODEL], model_meta, split[LOOP], loop_meta), ""


class Checkpointer:
    """The loop's view of checkpoints: resume once, save when due, remove at the end.

    Args:
        spec: the trial.
        directory: where checkpoints go (None: no checkpoints at all, e.g. `parity`).
        versions: the adapter's framework versions (a checkpoint of other versions is not resumed).
        report: receives (epoch, event, detail) for TrialResult.events.
    """

    def __init__(
        self,
        spec: TrialSpec,
        directory: str | Path | None,
        versions: Mapping[str, str],
        report: Callable[[int, str, str], None],
    ) -> None:
        self.spec = spec
        self.path = checkpoint_file(directory, spec.hash) if directory is not None else None
        self.versions = dict(versions)
        self.report = report
        self.every = spec.training.checkpoint_every
        self.last = time.perf_counter()
        self.resumed = False
        self.seconds = 0.0  # wall time spent writing checkpoints (part of the trial's wall time, not train time)

    def resume(self) -> Checkpoint | None:
        """The checkpoint to resume from, or None (no file; or an unusable one, removed, reported)."""
        if self.path is None or not self.path.exists():
            return None
        checkpoint, reason = read_checkpoint(self.path, self.spec, self.versions)
        if checkpoint is None:
            self.discard(reason)
        return checkpoint

    def discard(self, reason: str) -> None:
        """Drop an unusable checkpoint: the trial starts from zero; say why."""
        detail = f"checkpoint {self.path} not loaded, the trial starts from zero: {reason}"
        print(f"harness: trial {self.spec.hash}: {detail}", file=sys.stderr, flush=True)
        self.report(0, DISCARDED, detail)
        self.remove()

    def resumed_at(self, epoch: int) -> None:
        self.resumed = True
        self.report(epoch, RESUMED, f"resumed from the checkpoint of epoch {epoch} ({self.path})")

    def due(self, epoch: int) -> bool:
        """Whether to checkpoint after this (completed, not final) epoch."""
        if self.path is None or epoch >= self.spec.training.epochs:
            return False
        if self.every is not None:
            return epoch % self.every == 0
        return time.perf_counter() - self.last >= AUTO_CHECKPOINT_SECONDS

    def save(self, epoch: int, build: Callable[[], Checkpoint]) -> None:
        """Write the checkpoint of this epoch; on failure, report it and take no more."""
        assert self.path is not None
        started = time.perf_counter()
        try:
            write_checkpoint(self.path, self.spec, self.versions, build())
        except OSError as error:
            detail = f"checkpoint {self.path} not written ({error.strerror or error}); the trial goes on without"
            print(f"harness: trial {self.spec.hash}: {detail}", file=sys.stderr, flush=True)
            self.report(epoch, NOT_WRITTEN, detail)
            self.path = None
        self.last = time.perf_counter()
        self.seconds += self.last - started

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def kill_if_planned(self, epoch: int) -> None:
        """The test hook (KILL_VARIABLE): SIGKILL this process at the end of the planned epoch of a fresh run."""
        import os

        planned = os.environ.get(KILL_VARIABLE, "").split(",")
        if not self.resumed and f"{self.spec.hash}:{epoch}" in planned:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def remove_checkpoint(directory: str | Path, trial_hash: str) -> None:
    """Delete a trial's checkpoint, if any (the driver calls it once the trial is recorded)."""
    checkpoint_file(directory, trial_hash).unlink(missing_ok=True)
