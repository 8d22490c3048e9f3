"""Runs: each `harness run` of a suite, the code it ran (git commit, dirty flag) and what it saw.

The store is keyed by content hash, so the same suite run again at a new commit with unchanged
specs reuses its trials instead of training them again: a run is then a set of trial hashes,
some trained by it, some reused. `runs` holds one row per run (when, where, which commit of the
suite's checkout and of the harness), `run_trials` one row per (run, trial) with the trial's
status and final metric values as the run saw them, so `harness history` and `check
--against-last` read each run as it was even after a later `--rerun` replaced a trial's row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.store.connection import StoreConnection
from harness.store.schema import RUN_COLUMNS, RUN_TRIAL_COLUMNS

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: opening a store needs no pandas


@dataclass(frozen=True)
class RunRecord:
    """One run as `record_run` stores it (columns of `runs`; git fields None outside a checkout)."""

    id: str
    suite: str
    started_at: str
    finished_at: str
    git_commit: str | None
    git_dirty: bool | None
    harness_commit: str | None
    harness_dirty: bool | None
    code_version: str
    host: str
    source: str | None


@dataclass(frozen=True)
class RunTrial:
    """A trial of a run: its labels, whether the run reused it, and its final values then."""

    hash: str
    arm: str
    backend: str
    seed: int
    reused: bool
    status: str
    final: Mapping[str, float]


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


class RunTable(StoreConnection):
    """The runs part of `harness.store.Store`: recording a run, and reading a suite's runs back."""

    def record_run(self, run: RunRecord, trials: Sequence[RunTrial]) -> None:
        """Store one run and its trials in ONE transaction (the trials' own rows are already stored)."""
        row = {name: getattr(run, name) for name in RUN_COLUMNS}
        row["git_dirty"], row["harness_dirty"] = _flag(run.git_dirty), _flag(run.harness_dirty)
        # NaN is not JSON: a diverged trial's final loss is written as null
        rows = [
            (
                run.id,
                trial.hash,
                trial.arm,
                trial.backend,
                int(trial.seed),
                int(trial.reused),
                trial.status,
                json.dumps(
                    {key: (value if math.isfinite(value) else None) for key, value in trial.final.items()},
                    sort_keys=True,
                ),
            )
            for trial in trials
        ]
        columns = ", ".join(RUN_COLUMNS)
        with self._transaction() as connection:
            connection.execute(
                f"INSERT INTO runs ({columns}) VALUES ({', '.join(':' + name for name in RUN_COLUMNS)})", row
            )
            connection.executemany(
                f"INSERT INTO run_trials ({', '.join(RUN_TRIAL_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_TRIAL_COLUMNS)})",
                rows,
            )

    def final_values(self, hashes: Sequence[str]) -> dict[str, dict[str, float]]:
        """hash -> {metric: value at the trial's last recorded epoch, 'train_seconds': ...} (NaN kept)."""
        wanted = json.dumps(sorted(set(hashes)))
        with self._reading() as connection:
            rows = connection.execute(
                "SELECT m.hash, m.metric, m.value FROM metrics AS m "
                "JOIN (SELECT hash, MAX(epoch) AS last FROM metrics WHERE hash IN (SELECT value FROM json_each(?)) "
                "GROUP BY hash) AS l ON m.hash = l.hash AND m.epoch = l.last",
                (wanted,),
            ).fetchall()
            seconds = connection.execute(
                "SELECT hash, train_seconds FROM trials WHERE hash IN (SELECT value FROM json_each(?))", (wanted,)
            ).fetchall()
        values: dict[str, dict[str, float]] = {}
        for trial_hash, metric, value in rows:
            values.setdefault(trial_hash, {})[metric] = math.nan if value is None else float(value)
        for trial_hash, train_seconds in seconds:
            values.setdefault(trial_hash, {})["train_seconds"] = float(train_seconds)
        return values

    def runs_frame(self, suite: str) -> pd.DataFrame:
        """The suite's runs, oldest first: RUN_COLUMNS (git_dirty/harness_dirty as nullable booleans)."""
        import pandas as pd

        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE suite = ? ORDER BY started_at, id", (suite,)
            ).fetchall()
        frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
        return frame.astype({"git_dirty": "boolean", "harness_dirty": "boolean"})

    def run_trials_frame(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Long: run_id, hash, arm, backend, seed, reused (bool), status, metric, value, one row per final value."""
        import pandas as pd

        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(RUN_TRIAL_COLUMNS)} FROM run_trials WHERE run_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(run_ids)),),
            ).fetchall()
        records: list[dict[str, Any]] = []
        for run_id, trial_hash, arm, backend, seed, reused, status, final in rows:
            for metric, value in json.loads(final).items():
                records.append(
                    {
                        "run_id": run_id,
                        "hash": trial_hash,
                        "arm": arm,
                        "backend": backend,
                        "seed": int(seed),
                        "reused": bool(reused),
                        "status": status,
                        "metric": metric,
                        "value": math.nan if value is None else float(value),
                    }
                )
        columns = ["run_id", "hash", "arm", "backend", "seed", "reused", "status", "metric", "value"]
        return pd.DataFrame(records, columns=columns).astype({"value": "float64"})

    def provenance_blob(self, key: str) -> Any:
        """The list a trial's provenance names by hash (packages, cpu_flags), parsed; None when absent."""
        with self._reading() as connection:
            row = connection.execute("SELECT content FROM provenance_blobs WHERE hash = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])
