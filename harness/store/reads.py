"""Reading a store: which trials are done, their attempts and durations, and the long frames
(trials, metrics, diagnostics, per-example predictions) that `harness.analysis` turns into tables.

NaN: SQLite stores a NaN REAL as NULL. Metric values are never NULL otherwise, so a NULL
`metrics.value` reads back as NaN (a diverged epoch's loss); +-inf round-trip as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.measures import FINAL_STATUSES
from harness.store.connection import StoreConnection
from harness.store.schema import (
    DIAGNOSTIC_COLUMNS,
    EVENT_COLUMNS,
    METRIC_COLUMNS,
    PREDICTION_COLUMNS,
    TRIAL_COLUMNS,
    WEIGHT_COLUMNS,
)

DURATION_COLUMNS = ("hash", "suite", "arm", "backend", "spec", "wall_seconds")

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: opening a store needs no pandas


class TrialReader(StoreConnection):
    """The reading part of `harness.store.Store`."""

    def finished(self, hashes: Iterable[str]) -> set[str]:
        """The hashes among `hashes` with a final result (status ok, diverged or timeout).

        Failed trials are not final: the next run retries them.
        """
        wanted = json.dumps(sorted(set(hashes)))
        placeholders = ", ".join("?" for _ in FINAL_STATUSES)
        # json_each: one bound parameter whatever the count (no SQLITE_MAX_VARIABLE_NUMBER limit).
        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT hash FROM trials WHERE status IN ({placeholders}) AND hash IN (SELECT value FROM json_each(?))",
                (*FINAL_STATUSES, wanted),
            ).fetchall()
        return {row[0] for row in rows}

    def attempts(self, hashes: Iterable[str]) -> dict[str, int]:
        """`attempts` of each stored trial among `hashes` (absent hashes are left out)."""
        with self._reading() as connection:
            rows = connection.execute(
                "SELECT hash, attempts FROM trials WHERE hash IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(hashes))),),
            ).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    def durations(self) -> pd.DataFrame:
        """Wall seconds of every stored trial that ran to an end (not 'failed'), to schedule the longest
        first: columns hash, suite, arm, backend, spec (JSON), wall_seconds."""
        import pandas as pd

        return pd.DataFrame(self.duration_rows(), columns=list(DURATION_COLUMNS)).astype({"wall_seconds": "float64"})

    def duration_rows(self) -> list[dict[str, Any]]:
        """`durations` as plain rows (wall_seconds a float, NaN where none was stored): what the scheduler
        reads before a run's first trial, without importing pandas for it."""
        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(DURATION_COLUMNS)} FROM trials WHERE status != 'failed'"
            ).fetchall()
        return [
            {**dict(zip(DURATION_COLUMNS, row)), "wall_seconds": float("nan") if row[-1] is None else float(row[-1])}
            for row in rows
        ]

    def trials_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per trial, columns TRIAL_COLUMNS, ordered by suite, arm, backend, seed, hash.

        versions, device, spec and cell are JSON strings; diverged_epoch is a nullable Int64.
        """
        import pandas as pd

        where, parameters = _hash_filter(hashes)
        query = f"SELECT {', '.join(TRIAL_COLUMNS)} FROM trials {where} ORDER BY suite, arm, backend, seed, hash"
        with self._reading() as connection:
            rows = connection.execute(query, parameters).fetchall()
        frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
        return frame.astype(
            {
                "seed": "int64",
                "diverged_epoch": "Int64",
                "epochs_completed": "int64",
                "attempts": "int64",
                "train_seconds": "float64",
                "eval_seconds": "float64",
                "compile_seconds": "float64",  # NaN for trials stored before schema 7
                "wall_seconds": "float64",
            }
        )

    def metrics_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Long metrics: hash, epoch, metric, value (float64, NaN where the value was NaN), ordered by key."""
        import pandas as pd

        where, parameters = _hash_filter(hashes)
        query = f"SELECT hash, epoch, metric, value FROM metrics {where} ORDER BY hash, epoch, metric"
        with self._reading() as connection:
            rows = connection.execute(query, parameters).fetchall()
        frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
        # None (stored NaN) -> NaN by the float64 cast.
        return frame.astype({"epoch": "int64", "value": "float64"})

    def diagnostics_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Long diagnostics (harness.diagnostics): hash, epoch, layer, layer_name, statistic, value
        (float64, NaN where NaN), ordered by hash, epoch, layer, statistic. Empty when none were recorded."""
        import pandas as pd

        where, parameters = _hash_filter(hashes)
        columns = ", ".join(DIAGNOSTIC_COLUMNS)
        query = f"SELECT {columns} FROM diagnostics {where} ORDER BY hash, epoch, layer, statistic"
        with self._reading() as connection:
            rows = connection.execute(query, parameters).fetchall()
        frame = pd.DataFrame(rows, columns=list(DIAGNOSTIC_COLUMNS))
        return frame.astype({"epoch": "int64", "layer": "int64", "value": "float64"})

    def predictions_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Per-example predictions: hash, split, epoch, is_final, is_best_validation (bool) and values
        (a numpy array per row: predicted classes, or float32 outputs for regression), ordered by hash,
        split, epoch. Trials stored before schema version 3, and sequence tasks, have no rows."""
        import pandas as pd

        where, parameters = _hash_filter(hashes)
        query = f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM predictions {where} ORDER BY hash, split, epoch"
        with self._reading() as connection:
            rows = connection.execute(query, parameters).fetchall()
        columns = ["hash", "split", "epoch", "is_final", "is_best_validation", "values"]
        records = [
            (trial_hash, split, int(epoch), bool(is_final), bool(is_best), decode_predictions(dtype, shape, data))
            for trial_hash, split, epoch, is_final, is_best, dtype, shape, data in rows
        ]
        return pd.DataFrame(records, columns=columns)

    def weights_row(self, trial_hash: str) -> dict[str, Any] | None:
        """The `weights` row of a trial (which, epoch, file relative to the store, bytes, sha256), or None."""
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT {', '.join(WEIGHT_COLUMNS)} FROM weights WHERE hash = ?", (trial_hash,)
            ).fetchone()
        return dict(zip(WEIGHT_COLUMNS, row)) if row is not None else None

    def events_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """What happened to trials' checkpoints (resumed, checkpoint_discarded, checkpoint_not_written):
        columns EVENT_COLUMNS, ordered by hash and position."""
        import pandas as pd

        where, parameters = _hash_filter(hashes)
        query = f"SELECT {', '.join(EVENT_COLUMNS)} FROM trial_events {where} ORDER BY hash, position"
        with self._reading() as connection:
            rows = connection.execute(query, parameters).fetchall()
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def decode_predictions(dtype: str, shape: str, data: bytes) -> np.ndarray:
    """The array a predictions row stores (harness.store.writes.prediction_rows wrote it)."""
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()


def _hash_filter(hashes: Iterable[str] | None) -> tuple[str, tuple[Any, ...]]:
    if hashes is None:
        return "", ()
    return "WHERE hash IN (SELECT value FROM json_each(?))", (json.dumps(sorted(set(hashes))),)
