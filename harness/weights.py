"""Trained weights kept per trial (`training: {save_weights: final | best}`), and `harness.load_weights`.

Format: ONE safetensors file per trial, `<store>/weights/<hash>.safetensors`, beside
`harness.sqlite`. Its tensors are the canonical weights (`harness.spec.init.weight_key` names,
'0.dense.kernel', in the canonical channels-last layout, float32; batch_norm's moving statistics
included), the same dictionary both adapters' `get_weights`/`set_weights` speak, so a file written
by a torch trial loads into Keras and back. Its metadata: the trial hash, which weights (final or
best) and their epoch, and the trial's spec as JSON. The store stays the index: the `weights`
table holds one row per saved file (hash, which, epoch, path, bytes, SHA-256), written in the
same transaction as the trial's results, and only the driver writes either.

Framework-free at import; `load_weights` imports the requested backend's adapter when called.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError, StoreError
from harness.measures import LOSS, OK, TIMEOUT, VALIDATION_SPLIT, metric_name
from harness.paths import WEIGHTS_FOLDER

if TYPE_CHECKING:
    from harness.adapters.base import Model

WEIGHTS_SUFFIX = ".safetensors"
WEIGHTS_FORMAT = "1"  # the metadata's 'format'; bump when the file's meaning changes


def weights_file(store_directory: str | Path, trial_hash: str) -> Path:
    """Where a trial's saved weights live: `<store>/weights/<hash>.safetensors`."""
    return Path(store_directory) / WEIGHTS_FOLDER / f"{trial_hash}{WEIGHTS_SUFFIX}"


def encode(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors bytes of named arrays (C order) with string metadata."""
    from safetensors.numpy import save

    return bytes(save({key: np.asarray(value, order="C") for key, value in arrays.items()}, metadata=dict(metadata)))


def decode(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of safetensors bytes. Raises ValueError on a file cut short or damaged."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(data)
        header_length = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_length]).get("__metadata__", {})
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"not a complete safetensors file ({error})") from None
    return arrays, metadata


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write the whole file or nothing: a temporary file beside it, then renamed over it.

    durable: flush it to the disk first (fsync), so it survives a power cut too; without it a killed
    process still leaves the old file or the new one whole (the kernel keeps what was written), and a
    power cut may leave a torn file, which checkpoints detect (their SHA-256) and do not load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_trial_weights(
    store_directory: Path, trial_hash: str, which: str, epoch: int, weights: Mapping[str, np.ndarray], spec_json: str
) -> tuple[str, int, str]:
    """Write a trial's weights file; returns its (path relative to the store, bytes, SHA-256) for the index.

    Raises:
        StoreError: the file cannot be written (names the path, the cause and the fix).
    """
    path = weights_file(store_directory, trial_hash)
    metadata = {"format": WEIGHTS_FORMAT, "trial": trial_hash, "which": which, "epoch": str(epoch), "spec": spec_json}
    data = encode({key: np.asarray(value, dtype=np.float32) for key, value in weights.items()}, metadata)
    try:
        write_atomically(path, data)
    except OSError as error:
        raise StoreError(
            f"store: cannot write the trial's saved weights {str(path)!r} ({error.strerror or error}). What was "
            "recorded so far stays; free space or make the folder writable, then run the same command again."
        ) from None
    return path.relative_to(store_directory).as_posix(), len(data), hashlib.sha256(data).hexdigest()


def check_weights_writable(store_directory: str | Path) -> None:
    """Refuse, before anything is written, a store whose weights folder could not be written.

    Raises:
        StoreError: `<store>/weights` (or the nearest folder above it that exists) is not a writable folder.
    """
    folder = Path(store_directory) / WEIGHTS_FOLDER
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = ""
    if not existing.is_dir():
        problem = f"{str(existing)!r} exists and is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{str(existing)!r} is not writable by this user"
    if problem:
        raise StoreError(
            f"training.save_weights: the trained weights go to {str(folder)!r}, but {problem}. Nothing was run or "
            "written. Fix: make that folder writable (or move the file aside), choose another --store, or set "
            "save_weights: none."
        )


def load_weights(
    results_dir: str | Path,
    arm: str,
    seed: int,
    backend: str = "torch",
    *,
    trained_in: str | None = None,
    store: str | Path | None = None,
) -> Model:
    """A trial's saved weights, loaded into a model built in `backend` and ready to predict.

    The weights are framework-neutral (canonical names and layout), so a trial trained in torch loads
    into Keras and the other way round; the model is the harness's own (`harness.adapters.base.Model`):
    `predict(x)` gives the first output in evaluation mode, `get_weights()` the canonical tensors, and
    its framework object is `model.network.module` (torch) or `model.network.model` (Keras).

    Example:
        >>> import harness
        >>> model = harness.load_weights("results/optimizers", arm="adam", seed=0, backend="keras")
        >>> logits = model.predict(x)                              # float32 (N, classes)

    Args:
        results_dir: a results folder as `harness run` writes it (`<store>/<suite>/`).
        arm: the arm's name (as `harness validate` prints it).
        seed: the trial's seed.
        backend: the backend to build the model in (torch, keras, keras-jax, keras-torch, ...).
        trained_in: which backend's trial to take the weights from when the arm ran in several
            (default: `backend` if it ran there, else the only one it ran in).
        store: the folder holding harness.sqlite (default: the results folder's parent).

    Returns:
        The model, with the saved weights loaded (its optimizer state is fresh).

    Raises:
        HarnessError: no such results folder, arm, seed or backend (the valid ones are named); the
            trial kept no weights (names `training.save_weights`); the file is missing or damaged.
    """
    from harness.adapters import get_adapter
    from harness.data.registry import dataset_info
    from harness.spec.types import TrialSpec
    from harness.store import Store

    hash_value, store_directory = _find_trial(Path(results_dir), arm, seed, backend, trained_in, store)
    with Store(store_directory) as opened:
        row = opened.weights_row(hash_value)
    if row is None:
        raise HarnessError(
            f"load_weights: trial {hash_value} (arm {arm!r}, seed {seed}) kept no weights in {str(store_directory)!r}. "
            "Set training: {save_weights: final} (or best) in the suite and run it again."
        )
    path = Path(store_directory) / row["file"]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise HarnessError(f"load_weights: cannot read {str(path)!r} ({error.strerror or error}).") from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise HarnessError(
            f"load_weights: {str(path)!r} does not match the SHA-256 the store recorded for it (changed or damaged "
            "since it was written). Run the trial again with --rerun to write it anew."
        )
    arrays, metadata = decode(data)
    spec = TrialSpec.from_dict(json.loads(metadata["spec"]))
    adapter = get_adapter(backend)
    model = adapter.build(dataclasses.replace(spec, backend=backend), dataset_info(spec.dataset))
    model.set_weights(arrays)
    return model


def _find_trial(
    results_dir: Path, arm: str, seed: int, backend: str, trained_in: str | None, store: str | Path | None
) -> tuple[str, Path]:
    """(trial hash, store folder) of the arm's trial with this seed, chosen as load_weights says."""
    from harness.errors import did_you_mean
    from harness.results_folder import MANIFEST, SuiteRecord

    if not (results_dir / MANIFEST).is_file():
        raise HarnessError(
            f"load_weights: {str(results_dir)!r} is not a results folder (no {MANIFEST}). Expected the folder "
            "`harness run` writes, <store>/<suite>, e.g. results/optimizers."
        )
    labels = SuiteRecord.read(results_dir / MANIFEST).labels
    every = labels.to_dict(orient="records")
    rows = [row for row in every if row["arm"] == arm]
    if not rows:
        arms = sorted({str(row["arm"]) for row in every})
        raise HarnessError(
            f"load_weights: no arm {arm!r} in {str(results_dir)!r}.{did_you_mean(arm, arms)} Arms: {', '.join(arms)}."
        )
    rows = [row for row in rows if int(row["seed"]) == seed]
    if not rows:
        raise HarnessError(f"load_weights: arm {arm!r} has no trial with seed {seed} in {str(results_dir)!r}.")
    backends = sorted({row["backend"] for row in rows})
    wanted = trained_in if trained_in is not None else (backend if backend in backends else None)
    if wanted is None and len(backends) == 1:
        wanted = backends[0]
    chosen = [row for row in rows if row["backend"] == wanted]
    if not chosen:
        raise HarnessError(
            f"load_weights: arm {arm!r}, seed {seed} ran in {', '.join(backends)}; pass trained_in= one of them."
        )
    return str(chosen[0]["hash"]), Path(store) if store is not None else results_dir.parent


def describe(metadata: Mapping[str, Any]) -> str:
    """'final weights of epoch 20' from a weights file's metadata."""
    return f"{metadata.get('which', '?')} weights of epoch {metadata.get('epoch', '?')}"


class KeptWeights:
    """Which weights a trial hands back for saving (TrialResult.weights), kept as the loop goes.

    final: the weights after the last completed epoch of an 'ok' or 'timeout' trial (a diverged one
    keeps none: they are not finite). best: a copy of the weights at the epoch of least validation
    loss (epoch 0, the initial weights, included; the first such epoch, as for stored predictions).
    """

    def __init__(self, which: str) -> None:
        self.which = which
        self.best: dict[str, np.ndarray] | None = None
        self.best_epoch: int | None = None
        self.best_loss = math.inf

    def after_evaluation(self, model: Any, epoch: int, rows: list[tuple[int, str, float]]) -> None:
        if self.which != "best":
            return
        name = metric_name(VALIDATION_SPLIT, LOSS)
        loss = next((value for _, metric, value in rows if metric == name), None)
        if loss is not None and math.isfinite(loss) and loss < self.best_loss:
            self.best_loss, self.best, self.best_epoch = loss, model.get_weights(), epoch

    def chosen(self, model: Any, status: str, epochs_completed: int) -> tuple[dict[str, np.ndarray], int] | None:
        """(weights, epoch) to save, or None."""
        if self.which == "final" and status in (OK, TIMEOUT):
            return model.get_weights(), epochs_completed
        if self.which == "best" and self.best is not None and self.best_epoch is not None:
            return self.best, self.best_epoch
        return None

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON values, arrays) for a checkpoint."""
        return {"best_epoch": self.best_epoch, "best_loss": self.best_loss}, dict(self.best or {})

    def restore(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.best_epoch, self.best_loss = meta["best_epoch"], float(meta["best_loss"])
        self.best = {key: np.array(value) for key, value in arrays.items()} if self.best_epoch is not None else None
