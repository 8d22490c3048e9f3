"""Synthetic stored results in the store's exact schema, for tests and benchmarks.

Imported as `helpers.synthetic` by the tests (pytest puts tests/ on sys.path) and as
`tests.helpers.synthetic` by the benchmarks and by subprocesses started in the repository root.

A two-axis grid (optimizer x hidden width) run on every backend for every seed. Curves are
smooth saturating exponentials with a per-(arm, seed) offset shared by the backends (so seeds
pair the runs, as they do for real) and a small per-backend jitter. Trial hashes and spec
JSON come from real `TrialSpec`s. No training happens: this is made-up data, labelled so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from harness.spec import DatasetSpec, RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model

OPTIMIZER_SETTINGS = {
    "sgd": {"name": "sgd", "lr": 0.1},
    "momentum": {"name": "momentum", "lr": 0.05, "momentum": 0.9},
    "adagrad": {"name": "adagrad", "lr": 0.05},
    "rmsprop": {"name": "rmsprop", "lr": 0.005},
    "adam": {"name": "adam", "lr": 0.005},
}
VERSIONS = {
    "torch": {"torch": "2.13.0", "numpy": "2.4"},
    "keras": {"keras": "3.15.0", "tensorflow": "2.21.0", "numpy": "2.4"},
}
CLASSES = 10  # chance accuracy 0.1


class SyntheticFrames(NamedTuple):
    """The inputs of `Results`: trials, metrics, arms, axes."""

    trials: pd.DataFrame
    metrics: pd.DataFrame
    arms: tuple[str, ...]
    axes: tuple[str, ...]


def _base_spec(optimizer: str, width: int) -> TrialSpec:
    return TrialSpec(
        dataset=DatasetSpec(name="digits", validation=0.2),
        model=resolve_model({"mlp": {"hidden": [width], "activation": "relu"}}, CLASSES),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", OPTIMIZER_SETTINGS[optimizer], "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=1, batch_size=64),
        seed=0,
        backend="torch",
    )


def synthetic_frames(
    *,
    optimizers: Sequence[str] = ("sgd", "momentum", "adam"),
    widths: Sequence[int] = (32, 128),
    backends: Sequence[str] = ("torch", "keras"),
    seeds: int = 4,
    epochs: int = 12,
    diverged: int = 1,
    failed: int = 1,
    random_seed: int = 0,
) -> SyntheticFrames:
    """Trials and metrics frames of a made-up optimizer x width grid.

    Args:
        optimizers: names from OPTIMIZER_SETTINGS (the first grid axis, 'optimizer').
        widths: hidden widths (the second axis, 'model.mlp.hidden', labels like '[32]').
        backends: backend names; versions come from VERSIONS (or a placeholder).
        seeds: seeds per arm and backend (0 .. seeds-1).
        epochs: epochs per trial (metrics at epochs 0 .. epochs).
        diverged: how many trials (the last arm's on the first backend, from seed 0 up) diverge halfway.
        failed: how many trials (the second-to-last arm's on the first backend) fail before training.
        random_seed: seed of the noise.
    """
    rng = np.random.default_rng(random_seed)
    axes = ("optimizer", "model.mlp.hidden")
    cells = [(optimizer, width) for optimizer in optimizers for width in widths]
    arms = tuple(f"{optimizer}-h{width}" for optimizer, width in cells)
    epoch_index = np.arange(epochs + 1, dtype=np.float64)
    trial_rows: list[dict[str, Any]] = []
    metric_frames: list[pd.DataFrame] = []
    special = {
        "diverged": {(len(arms) - 1, seed) for seed in range(diverged)},
        "failed": {(max(len(arms) - 2, 0), seed) for seed in range(failed)},
    }
    for arm_index, ((optimizer, width), arm) in enumerate(zip(cells, arms)):
        base = _base_spec(optimizer, width)
        base = dataclasses.replace(base, training=TrainingSpec(epochs=epochs, batch_size=64))
        quality = 0.55 + 0.35 * (arm_index + 1) / len(arms)  # final test accuracy rises along the grid
        speed = 2.0 + 6.0 * rng.random()  # epochs to reach 63% of the way
        overfit = 0.02 + 0.06 * rng.random()
        seed_offsets = rng.normal(0.0, 0.012, size=seeds)
        for backend_index, backend in enumerate(backends):
            for seed in range(seeds):
                spec = dataclasses.replace(base, seed=seed, backend=backend)
                status, error, diverged_epoch = "ok", None, None
                last_epoch = epochs
                if backend_index == 0 and (arm_index, seed) in special["failed"]:
                    status, error, last_epoch = "failed", "RuntimeError: synthetic failure <before> training & co", -1
                elif backend_index == 0 and (arm_index, seed) in special["diverged"]:
                    status, diverged_epoch = "diverged", max(1, epochs // 2)
                    last_epoch = diverged_epoch - 1
                jitter = rng.normal(0.0, 0.004, size=epochs + 1)
                progress = 1.0 - np.exp(-epoch_index / speed)
                test_accuracy = np.clip(0.1 + (quality - 0.1 + seed_offsets[seed]) * progress + jitter, 0.0, 1.0)
                seed_overfit = overfit * (1.0 + 0.3 * rng.standard_normal())
                train_accuracy = np.clip(test_accuracy + seed_overfit * progress, 0.0, 1.0)
                validation_accuracy = np.clip(test_accuracy + rng.normal(0.0, 0.006, size=epochs + 1), 0.0, 1.0)
                train_loss = 2.3 * (1.0 - train_accuracy) + 0.05 + np.abs(jitter)
                test_loss = 2.3 * (1.0 - test_accuracy) + 0.08
                validation_loss = 2.3 * (1.0 - validation_accuracy) + 0.08
                kept = epoch_index <= last_epoch
                values = {
                    "train_loss": train_loss,
                    "train_accuracy": train_accuracy,
                    "validation_loss": validation_loss,
                    "validation_accuracy": validation_accuracy,
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                }
                frame = pd.DataFrame(
                    {
                        "hash": spec.hash,
                        "epoch": np.tile(epoch_index[kept].astype(np.int64), len(values)),
                        "metric": np.repeat(list(values), kept.sum()),
                        "value": np.concatenate([series[kept] for series in values.values()]),
                    }
                )
                minibatch_epochs = np.arange(1, last_epoch + 1)
                minibatch = pd.DataFrame(
                    {
                        "hash": spec.hash,
                        "epoch": minibatch_epochs,
                        "metric": "minibatch_loss",
                        "value": train_loss[minibatch_epochs] * 1.05,
                    }
                )
                if diverged_epoch is not None:
                    minibatch.loc[len(minibatch)] = [spec.hash, diverged_epoch, "minibatch_loss", np.nan]
                metric_frames += [frame, minibatch]
                completed = max(last_epoch, 0)
                train_seconds = (
                    (0.05 + 0.0004 * width)
                    * (completed + (diverged_epoch is not None))
                    * (1.3 if backend == "keras" else 1.0)
                    * rng.uniform(0.9, 1.1)
                )
                trial_rows.append(
                    {
                        "hash": spec.hash,
                        "arm": arm,
                        "backend": backend,
                        "seed": seed,
                        "status": status,
                        "error": error,
                        "diverged_epoch": diverged_epoch,
                        "epochs_completed": completed,
                        "train_seconds": train_seconds,
                        "eval_seconds": 0.01 * (completed + 1),
                        "wall_seconds": train_seconds + 0.01 * (completed + 1) + 0.2,
                        "host": "synthetic-host",
                        "versions": json.dumps(VERSIONS.get(backend, {backend: "0"}), sort_keys=True),
                        "device": json.dumps({"type": "cpu", "threads": 1}, sort_keys=True),
                        "spec": spec.to_json(),
                        "started_at": "2026-01-01T00:00:00.000+00:00",
                        "finished_at": "2026-01-01T00:00:05.000+00:00",
                        "optimizer": optimizer,
                        "model.mlp.hidden": f"[{width}]",
                    }
                )
    trials = pd.DataFrame(trial_rows).astype({"diverged_epoch": "Int64"})
    metrics = pd.concat(metric_frames, ignore_index=True).astype({"epoch": "int64", "value": "float64"})
    return SyntheticFrames(trials, metrics, arms, axes)
