"""Recording a trial: its row, its metric, diagnostics and predictions rows, in ONE transaction.

The runner's driver process is the only writer of a run; it records each trial when its
result arrives, so a killed run loses at most the trials in flight and running again resumes
where it stopped. Recording a trial drops its lease row (`claims`) in the same transaction.

NaN: SQLite stores a NaN REAL as NULL; the readers turn a NULL value back into NaN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from harness import __version__
from harness.store.connection import StoreConnection
from harness.weights import save_trial_weights

if TYPE_CHECKING:  # type hints only: importing the loop pulls scipy, which the CLI need not load here
    from harness.adapters.result import TrialResult
    from harness.spec.types import Trial

_UPSERT_TRIAL = """
INSERT INTO trials (hash, suite, arm, backend, seed, status, error, diverged_epoch, epochs_completed,
                    train_seconds, eval_seconds, compile_seconds, wall_seconds, host, versions, device, spec, cell,
                    started_at, finished_at, attempts, harness_version, provenance)
VALUES (:hash, :suite, :arm, :backend, :seed, :status, :error, :diverged_epoch, :epochs_completed,
        :train_seconds, :eval_seconds, :compile_seconds, :wall_seconds, :host, :versions, :device, :spec, :cell,
        :started_at, :finished_at, :attempts, :harness_version, :provenance)
ON CONFLICT (hash) DO UPDATE SET
    suite = excluded.suite, arm = excluded.arm, backend = excluded.backend, seed = excluded.seed,
    status = excluded.status, error = excluded.error, diverged_epoch = excluded.diverged_epoch,
    epochs_completed = excluded.epochs_completed, train_seconds = excluded.train_seconds,
    eval_seconds = excluded.eval_seconds, compile_seconds = excluded.compile_seconds,
    wall_seconds = excluded.wall_seconds, host = excluded.host,
    versions = excluded.versions, device = excluded.device, spec = excluded.spec, cell = excluded.cell,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    attempts = trials.attempts + excluded.attempts, harness_version = excluded.harness_version,
    provenance = excluded.provenance
"""


class TrialWriter(StoreConnection):
    """The writing part of `harness.store.Store`."""

    def record(self, trial: Trial, result: TrialResult, *, attempts: int = 1) -> None:
        """Store one trial's result in ONE transaction: upsert its row (with its provenance, and the package
        and CPU-flag lists it names when the store does not hold them yet), replace its metric rows.

        A crash leaves either the whole trial or nothing. Recording a hash again replaces its
        row and metrics (a rerun); `attempts` adds up over every recording.

        Args:
            trial: the trial (labels + spec).
            result: what the worker (or the runner, for a dead worker) produced.
            attempts: executions this result took (2 when the first worker died and it was retried).
        """
        provenance = getattr(result, "provenance", None)
        blobs = [
            (str(key), str(kind), str(content))
            for key, (kind, content) in (getattr(result, "provenance_blobs", None) or {}).items()
        ]
        row = {
            "hash": trial.hash,
            "suite": trial.suite,
            "arm": trial.arm,
            "backend": trial.spec.backend,
            "seed": trial.spec.seed,
            "status": result.status,
            "error": result.error,
            "diverged_epoch": result.diverged_epoch,
            "epochs_completed": result.epochs_completed,
            "train_seconds": float(result.train_seconds),
            "eval_seconds": float(result.eval_seconds),
            "compile_seconds": float(getattr(result, "compile_seconds", 0.0)),
            "wall_seconds": float(result.wall_seconds),
            "host": result.host,
            "versions": json.dumps(result.versions, sort_keys=True),
            "device": json.dumps(result.device, sort_keys=True),
            "spec": trial.spec.to_json(),
            "cell": json.dumps(dict(trial.cell)),
            "started_at": result.started_at or None,
            "finished_at": result.finished_at or None,
            "attempts": int(attempts),
            "harness_version": __version__,
            "provenance": json.dumps(provenance, sort_keys=True) if provenance else None,
        }
        weights_row = None
        if getattr(result, "weights", None):  # the file first: a row never names a file that is not there
            saved = save_trial_weights(
                self.directory,
                trial.hash,
                trial.spec.training.save_weights,
                int(result.weights_epoch or 0),
                result.weights,
                trial.spec.to_json(),
            )
            weights_row = (trial.hash, trial.spec.training.save_weights, int(result.weights_epoch or 0), *saved)
        # float(): numpy scalars would otherwise be stored as BLOBs; NaN becomes NULL inside SQLite.
        metric_rows = [(trial.hash, int(epoch), str(name), float(value)) for epoch, name, value in result.metrics]
        with self._transaction() as connection:
            connection.execute(_UPSERT_TRIAL, row)
            # once per distinct environment: a trial names its package list by hash
            connection.executemany(
                "INSERT OR IGNORE INTO provenance_blobs (hash, kind, content) VALUES (?, ?, ?)", blobs
            )
            connection.execute("DELETE FROM metrics WHERE hash = ?", (trial.hash,))
            connection.executemany("INSERT INTO metrics (hash, epoch, metric, value) VALUES (?, ?, ?, ?)", metric_rows)
            connection.execute("DELETE FROM diagnostics WHERE hash = ?", (trial.hash,))
            connection.executemany(
                "INSERT INTO diagnostics (hash, epoch, layer, layer_name, statistic, value) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (trial.hash, int(epoch), int(layer), str(name), str(statistic), float(value))
                    for epoch, layer, name, statistic, value in getattr(result, "diagnostics", ())
                ],
            )
            connection.execute("DELETE FROM predictions WHERE hash = ?", (trial.hash,))
            connection.executemany(
                "INSERT INTO predictions (hash, split, epoch, is_final, is_best_validation, dtype, shape, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                prediction_rows(trial.hash, getattr(result, "predictions", ())),
            )
            connection.execute("DELETE FROM weights WHERE hash = ?", (trial.hash,))
            if weights_row is not None:
                connection.execute(
                    "INSERT INTO weights (hash, which, epoch, file, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                    weights_row,
                )
            connection.execute("DELETE FROM trial_events WHERE hash = ?", (trial.hash,))
            connection.executemany(
                "INSERT INTO trial_events (hash, position, epoch, event, detail) VALUES (?, ?, ?, ?, ?)",
                [
                    (trial.hash, position, int(epoch), str(event), str(detail))
                    for position, (epoch, event, detail) in enumerate(getattr(result, "events", ()))
                ],
            )
            connection.execute("DELETE FROM claims WHERE hash = ?", (trial.hash,))  # recorded: nobody runs it now


def prediction_rows(
    trial_hash: str, predictions: Iterable[tuple[str, int, bool, bool, np.ndarray]]
) -> list[tuple[str, str, int, int, int, str, str, bytes]]:
    """Rows of the predictions table: the values as raw little-endian bytes beside their dtype and
    shape (harness.store.reads.decode_predictions reverses it). No np.save header: 1000 uint8 classes
    take 1000 bytes."""
    rows = []
    for split, epoch, is_final, is_best_validation, values in predictions:
        array = np.ascontiguousarray(values)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        rows.append(
            (
                trial_hash,
                str(split),
                int(epoch),
                int(bool(is_final)),
                int(bool(is_best_validation)),
                array.dtype.str,
                json.dumps(list(array.shape)),
                array.tobytes(),
            )
        )
    return rows
