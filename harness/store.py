"""The results store: one SQLite file (stdlib `sqlite3`, WAL mode) per results folder.

One row per trial (hash, labels, status, environment, timings, the spec as JSON) and one
row per (trial, epoch, metric). The runner's driver process is the only writer of a run;
it records each trial in ONE transaction when its result arrives, so a killed run loses
at most the trials in flight and running again resumes where it stopped.

Claims: before a driver starts a trial it claims it (one row in `claims`: its run id, host,
pid and a lease it keeps renewing). Two runs of the same suite on one store therefore split
the trials between them instead of running each twice; a claim whose owner is dead (same
host, pid gone) or whose lease expired (any host) is taken over. Recording a trial removes
its claim in the same transaction.

Durability: WAL with `synchronous=NORMAL` keeps every committed transaction across a crash
or SIGKILL of the process (only a power loss / OS crash may roll back the last commits,
never corrupt the file). Two runs writing the same store at once are serialized by SQLite's
write lock (`BEGIN IMMEDIATE` + `busy_timeout`), so they never corrupt it.

NaN: SQLite stores a NaN REAL as NULL. Metric values are never NULL otherwise, so a NULL
`metrics.value` reads back as NaN (a diverged epoch's loss); +-inf round-trip as they are.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness import __version__
from harness.errors import StoreError

if TYPE_CHECKING:  # type hints only: importing the loop pulls scipy, which the CLI need not load here
    from harness.adapters.loop import TrialResult
    from harness.spec.types import Trial

DATABASE_NAME = "harness.sqlite"
SCHEMA_VERSION = 2  # bump on any schema change; a newer store is refused, an older one migrated (_MIGRATIONS)
FINAL_STATUSES = ("ok", "diverged", "timeout")  # 'failed' trials are retried on the next run
BUSY_TIMEOUT_MILLISECONDS = 60_000  # how long a writer waits for another run's transaction to finish
CLAIM_OUTCOMES = ("claimed", "done", "busy")  # what Store.claim answers

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    hash TEXT PRIMARY KEY,          -- TrialSpec content hash
    suite TEXT NOT NULL,
    arm TEXT NOT NULL,
    backend TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,           -- ok | diverged | failed | timeout
    error TEXT,
    diverged_epoch INTEGER,
    epochs_completed INTEGER NOT NULL,
    train_seconds REAL NOT NULL,    -- optimizer steps only
    eval_seconds REAL NOT NULL,
    wall_seconds REAL NOT NULL,     -- the whole trial in the worker
    host TEXT,
    versions TEXT NOT NULL,         -- JSON object, e.g. {"torch": "2.13.0"}
    device TEXT NOT NULL,           -- JSON object
    spec TEXT NOT NULL,             -- TrialSpec.to_json()
    cell TEXT NOT NULL,             -- JSON object {axis: variant label}, in axis order
    started_at TEXT,                -- ISO 8601, UTC
    finished_at TEXT,
    attempts INTEGER NOT NULL,      -- executions recorded for this hash, over every run (incl. retries)
    harness_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    hash TEXT NOT NULL REFERENCES trials(hash) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,         -- 0 = before training
    metric TEXT NOT NULL,
    value REAL,                     -- NULL encodes NaN (SQLite stores NaN as NULL)
    PRIMARY KEY (hash, epoch, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS diagnostics (
    hash TEXT NOT NULL REFERENCES trials(hash) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,         -- 0 = the initial weights
    layer INTEGER NOT NULL,         -- plan index; -1 for a row about no single layer (the timing row)
    layer_name TEXT NOT NULL,       -- '<index>.<kind>', e.g. '0.dense'
    statistic TEXT NOT NULL,        -- harness.diagnostics: activation_mean, gradient_norm, histogram.<k>, ...
    value REAL,                     -- NULL encodes NaN
    PRIMARY KEY (hash, epoch, layer, statistic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    hash TEXT PRIMARY KEY,          -- a trial some run is executing right now
    owner TEXT NOT NULL,            -- that run's id (random, one per run_trials call)
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,           -- the driver process
    pid_start TEXT,                 -- the driver's start time in /proc/<pid>/stat: tells a reused pid apart (Linux)
    claimed_at REAL NOT NULL,       -- Unix time, seconds
    expires REAL NOT NULL           -- Unix time, renewed by the owner while it lives (heartbeat)
);
"""

# Schema version -> statements that bring a store of that version to the next one. The tables
# themselves come from _SCHEMA (CREATE TABLE IF NOT EXISTS) right after.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (),  # version 2 added the claims and diagnostics tables: both come from _SCHEMA
}

TRIAL_COLUMNS = (
    "hash", "suite", "arm", "backend", "seed", "status", "error", "diverged_epoch", "epochs_completed",
    "train_seconds", "eval_seconds", "wall_seconds", "host", "versions", "device", "spec", "cell",
    "started_at", "finished_at", "attempts",
)
METRIC_COLUMNS = ("hash", "epoch", "metric", "value")
DIAGNOSTIC_COLUMNS = ("hash", "epoch", "layer", "layer_name", "statistic", "value")

_UPSERT_TRIAL = """
INSERT INTO trials (hash, suite, arm, backend, seed, status, error, diverged_epoch, epochs_completed,
                    train_seconds, eval_seconds, wall_seconds, host, versions, device, spec, cell,
                    started_at, finished_at, attempts, harness_version)
VALUES (:hash, :suite, :arm, :backend, :seed, :status, :error, :diverged_epoch, :epochs_completed,
        :train_seconds, :eval_seconds, :wall_seconds, :host, :versions, :device, :spec, :cell,
        :started_at, :finished_at, :attempts, :harness_version)
ON CONFLICT (hash) DO UPDATE SET
    suite = excluded.suite, arm = excluded.arm, backend = excluded.backend, seed = excluded.seed,
    status = excluded.status, error = excluded.error, diverged_epoch = excluded.diverged_epoch,
    epochs_completed = excluded.epochs_completed, train_seconds = excluded.train_seconds,
    eval_seconds = excluded.eval_seconds, wall_seconds = excluded.wall_seconds, host = excluded.host,
    versions = excluded.versions, device = excluded.device, spec = excluded.spec, cell = excluded.cell,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    attempts = trials.attempts + excluded.attempts, harness_version = excluded.harness_version
"""


@dataclass(frozen=True)
class ClaimOwner:
    """Who holds a claim: one run (`run_trials` call) of one driver process.

    Build it with `ClaimOwner.here()`; `id` tells two runs of the same process apart.
    """

    id: str
    host: str
    pid: int
    pid_start: str | None  # the process's start time (Linux /proc), so a reused pid is not mistaken for it

    @classmethod
    def here(cls) -> ClaimOwner:
        """A new owner id for this process on this host."""
        return cls(os.urandom(8).hex(), socket.gethostname(), os.getpid(), process_start(os.getpid()))


def process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    None where /proc is missing. 'Z' (zombie: exited, not yet reaped) counts as gone: returns ''."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return "" if os.path.isdir("/proc/self") else None  # with /proc, no entry = no such process
    fields = text[text.rindex(")") + 2:].split()  # after "pid (command name)", which may hold spaces
    return "" if fields[0] == "Z" else fields[19]


def claim_owner_alive(host: str, pid: int, pid_start: str | None) -> bool:
    """Whether a claim's owner may still be running. Only a process on THIS host can be checked;
    one elsewhere counts as alive (its lease, not this check, decides)."""
    if host != socket.gethostname():
        return True
    start = process_start(pid)
    if start is not None:  # Linux: the pid exists, is not a zombie, and is the same process
        return start != "" and (pid_start is None or start == pid_start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """The SQLite results store of one results folder (`<directory>/harness.sqlite`).

    Use it as a context manager, from one thread (the runner's driver):

        with Store("results") as store:
            done = store.finished(trial.hash for trial in trials)
            store.record(trial, result)
            frame = store.metrics_frame()

    Args:
        directory: the results folder; created with its parents if missing.

    Raises:
        StoreError: the folder or database cannot be created or opened (names the path and the
            fix), the file is not a harness store, or it was written by a newer harness.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path: Path = self.directory / DATABASE_NAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"store: cannot create the results folder {str(self.directory)!r} ({error.strerror or error}). "
                "Expected a writable folder path (a parent on the way is not a folder, or is read-only). "
                "Fix: pass --store with a folder you can write to."
            ) from None
        try:
            # isolation_level=None: autocommit; every write below opens its own explicit transaction.
            self._connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MILLISECONDS / 1000, isolation_level=None)
        except sqlite3.Error as error:
            raise self._open_error(error) from None
        try:
            self._configure()
            self._check_schema()
        except BaseException:
            self._connection.close()
            raise

    # -- opening ------------------------------------------------------------------------------

    def _open_error(self, error: sqlite3.Error) -> StoreError:
        return StoreError(
            f"store: cannot open the results database {str(self.path)!r} ({error}). "
            "Expected a writable SQLite file created by harness. "
            "Fix: check the folder's permissions and free space, or pass --store with another folder."
        )

    def _configure(self) -> None:
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
            mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._connection.execute("PRAGMA synchronous = NORMAL")
            self._connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as error:
            if "not a database" in str(error):
                raise StoreError(
                    f"store: {str(self.path)!r} exists but is not a SQLite database. "
                    "Expected a harness results store. Fix: move the file away, or pass --store with another folder."
                ) from None
            raise self._open_error(error) from None
        if str(mode).lower() != "wal":
            raise StoreError(
                f"store: {str(self.path)!r} could not be switched to WAL journaling (got {mode!r}). "
                "Expected a local file system that supports shared memory (network file systems often do not). "
                "Fix: pass --store with a folder on a local disk."
            )

    def _check_schema(self) -> None:
        with self._transaction() as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "schema_version" not in tables:
                raise StoreError(
                    f"store: {str(self.path)!r} is a SQLite database with tables {sorted(tables)} but no harness "
                    "schema_version table: it is not a harness results store. "
                    "Fix: pass --store with another folder (harness keeps its database in <folder>/harness.sqlite)."
                )
            versions = [row[0] for row in connection.execute("SELECT version FROM schema_version")] if tables else []
            found = max(versions) if versions else SCHEMA_VERSION
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"store: {str(self.path)!r} has schema version {found}, written by a newer harness; this harness "
                    f"({__version__}) reads schema version {SCHEMA_VERSION}. "
                    "Fix: upgrade harness (pip install -U harness), or pass --store with another folder."
                )
            if found < SCHEMA_VERSION and any(version not in _MIGRATIONS for version in range(found, SCHEMA_VERSION)):
                raise StoreError(
                    f"store: {str(self.path)!r} has unknown schema version {found} (expected {SCHEMA_VERSION}). "
                    "Fix: pass --store with another folder, or delete this store to start afresh."
                )
            for version in range(found, SCHEMA_VERSION):  # inside the transaction: all of it or none
                for statement in _MIGRATIONS[version]:
                    connection.execute(statement)
            # Inside the transaction, so two runs opening a new store at once create it exactly once.
            for statement in _statements(_SCHEMA):
                connection.execute(statement)
            if found != SCHEMA_VERSION or not versions:
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front (waits busy_timeout for another writer),
        so two runs never deadlock upgrading read locks; any exception (even Ctrl-C) rolls back."""
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self._open_error(error) from None
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.execute("ROLLBACK")
            raise StoreError(
                f"store: writing {str(self.path)!r} failed ({error}). "
                "Fix: check free disk space and that no other program locks the file, then run again to resume."
            ) from None

    # -- writing ------------------------------------------------------------------------------

    def record(self, trial: Trial, result: TrialResult, *, attempts: int = 1) -> None:
        """Store one trial's result in ONE transaction: upsert its row, replace its metric rows.

        A crash leaves either the whole trial or nothing. Recording a hash again replaces its
        row and metrics (a rerun); `attempts` adds up over every recording.

        Args:
            trial: the trial (labels + spec).
            result: what the worker (or the runner, for a dead worker) produced.
            attempts: executions this result took (2 when the first worker died and it was retried).
        """
        row = {
            "hash": trial.hash, "suite": trial.suite, "arm": trial.arm, "backend": trial.spec.backend,
            "seed": trial.spec.seed, "status": result.status, "error": result.error,
            "diverged_epoch": result.diverged_epoch, "epochs_completed": result.epochs_completed,
            "train_seconds": float(result.train_seconds), "eval_seconds": float(result.eval_seconds),
            "wall_seconds": float(result.wall_seconds), "host": result.host,
            "versions": json.dumps(result.versions, sort_keys=True), "device": json.dumps(result.device, sort_keys=True),
            "spec": trial.spec.to_json(), "cell": json.dumps(dict(trial.cell)),
            "started_at": result.started_at or None, "finished_at": result.finished_at or None,
            "attempts": int(attempts), "harness_version": __version__,
        }
        # float(): numpy scalars would otherwise be stored as BLOBs; NaN becomes NULL inside SQLite.
        metric_rows = [(trial.hash, int(epoch), str(name), float(value)) for epoch, name, value in result.metrics]
        with self._transaction() as connection:
            connection.execute(_UPSERT_TRIAL, row)
            connection.execute("DELETE FROM metrics WHERE hash = ?", (trial.hash,))
            connection.executemany("INSERT INTO metrics (hash, epoch, metric, value) VALUES (?, ?, ?, ?)", metric_rows)
            connection.execute("DELETE FROM diagnostics WHERE hash = ?", (trial.hash,))
            connection.executemany(
                "INSERT INTO diagnostics (hash, epoch, layer, layer_name, statistic, value) VALUES (?, ?, ?, ?, ?, ?)",
                [(trial.hash, int(epoch), int(layer), str(name), str(statistic), float(value))
                 for epoch, layer, name, statistic, value in getattr(result, "diagnostics", ())],
            )
            connection.execute("DELETE FROM claims WHERE hash = ?", (trial.hash,))  # recorded: nobody runs it now

    # -- claims (two runs on one store) ---------------------------------------------------------

    def claim(
        self, trial_hash: str, owner: ClaimOwner, *, lease_seconds: float, seen_attempts: int = 0, rerun: bool = False,
    ) -> str:
        """Claim a trial for `owner` before running it, in one transaction.

        Args:
            trial_hash: the trial.
            owner: the claiming run.
            lease_seconds: the claim expires this long from now unless renewed (`renew_claims`).
            seen_attempts: the trial's `attempts` when the run started (`attempts()`; 0 if absent):
                a higher value now means another run recorded it meanwhile.
            rerun: the run reruns finished trials: a final result alone does not make it 'done'.

        Returns:
            'claimed': the trial is this owner's to run (new claim, its own, or a stale one taken
            over: owner dead or lease expired). 'done': it has a final result, or another run
            recorded it since this run started, so this run leaves it alone. 'busy': a live
            owner holds it; ask again later.
        """
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute("SELECT status, attempts FROM trials WHERE hash = ?", (trial_hash,)).fetchone()
            if row is not None and ((row[0] in FINAL_STATUSES and not rerun) or row[1] > seen_attempts):
                return "done"
            held = connection.execute(
                "SELECT owner, host, pid, pid_start, expires FROM claims WHERE hash = ?", (trial_hash,)
            ).fetchone()
            if held is not None and held[0] != owner.id and held[4] > now and claim_owner_alive(held[1], held[2], held[3]):
                return "busy"
            connection.execute(
                "INSERT OR REPLACE INTO claims (hash, owner, host, pid, pid_start, claimed_at, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (trial_hash, owner.id, owner.host, owner.pid, owner.pid_start, now, now + lease_seconds),
            )
        return "claimed"

    def renew_claims(self, owner_id: str, lease_seconds: float) -> int:
        """Extend every claim of `owner_id` to expire `lease_seconds` from now (the heartbeat). Returns the count."""
        with self._transaction() as connection:
            cursor = connection.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease_seconds, owner_id))
            return cursor.rowcount

    def release_claims(self, owner_id: str, hashes: Iterable[str] | None = None) -> None:
        """Drop claims of `owner_id` (all of them, or those among `hashes`): the run stops running them."""
        with self._transaction() as connection:
            if hashes is None:
                connection.execute("DELETE FROM claims WHERE owner = ?", (owner_id,))
            else:
                connection.execute(
                    "DELETE FROM claims WHERE owner = ? AND hash IN (SELECT value FROM json_each(?))",
                    (owner_id, json.dumps(sorted(set(hashes)))),
                )

    def claims_frame(self) -> pd.DataFrame:
        """Current claims: hash, owner, host, pid, pid_start, claimed_at, expires (Unix seconds)."""
        columns = ["hash", "owner", "host", "pid", "pid_start", "claimed_at", "expires"]
        rows = self._connection.execute(f"SELECT {', '.join(columns)} FROM claims ORDER BY hash").fetchall()
        return pd.DataFrame(rows, columns=columns)

    # -- reading ------------------------------------------------------------------------------

    def finished(self, hashes: Iterable[str]) -> set[str]:
        """The hashes among `hashes` with a final result (status ok, diverged or timeout).

        Failed trials are not final: the next run retries them.
        """
        wanted = json.dumps(sorted(set(hashes)))
        placeholders = ", ".join("?" for _ in FINAL_STATUSES)
        # json_each: one bound parameter whatever the count (no SQLITE_MAX_VARIABLE_NUMBER limit).
        rows = self._connection.execute(
            f"SELECT hash FROM trials WHERE status IN ({placeholders}) AND hash IN (SELECT value FROM json_each(?))",
            (*FINAL_STATUSES, wanted),
        )
        return {row[0] for row in rows}

    def attempts(self, hashes: Iterable[str]) -> dict[str, int]:
        """`attempts` of each stored trial among `hashes` (absent hashes are left out)."""
        rows = self._connection.execute(
            "SELECT hash, attempts FROM trials WHERE hash IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(hashes))),),
        )
        return {row[0]: int(row[1]) for row in rows}

    def durations(self) -> pd.DataFrame:
        """Wall seconds of every stored trial that ran to an end (not 'failed'), to schedule the longest
        first: columns hash, suite, arm, backend, spec (JSON), wall_seconds."""
        columns = ["hash", "suite", "arm", "backend", "spec", "wall_seconds"]
        rows = self._connection.execute(f"SELECT {', '.join(columns)} FROM trials WHERE status != 'failed'").fetchall()
        return pd.DataFrame(rows, columns=columns).astype({"wall_seconds": "float64"})

    def trials_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per trial, columns TRIAL_COLUMNS, ordered by suite, arm, backend, seed, hash.

        versions, device, spec and cell are JSON strings; diverged_epoch is a nullable Int64.
        """
        where, parameters = _hash_filter(hashes)
        query = f"SELECT {', '.join(TRIAL_COLUMNS)} FROM trials {where} ORDER BY suite, arm, backend, seed, hash"
        frame = pd.DataFrame(self._connection.execute(query, parameters).fetchall(), columns=list(TRIAL_COLUMNS))
        return frame.astype({
            "seed": "int64", "diverged_epoch": "Int64", "epochs_completed": "int64", "attempts": "int64",
            "train_seconds": "float64", "eval_seconds": "float64", "wall_seconds": "float64",
        })

    def metrics_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Long metrics: hash, epoch, metric, value (float64, NaN where the value was NaN), ordered by key."""
        where, parameters = _hash_filter(hashes)
        query = f"SELECT hash, epoch, metric, value FROM metrics {where} ORDER BY hash, epoch, metric"
        rows = self._connection.execute(query, parameters).fetchall()
        frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
        # None (stored NaN) -> NaN by the float64 cast.
        return frame.astype({"epoch": "int64", "value": "float64"})

    def diagnostics_frame(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Long diagnostics (harness.diagnostics): hash, epoch, layer, layer_name, statistic, value
        (float64, NaN where NaN), ordered by hash, epoch, layer, statistic. Empty when none were recorded."""
        where, parameters = _hash_filter(hashes)
        columns = ", ".join(DIAGNOSTIC_COLUMNS)
        query = f"SELECT {columns} FROM diagnostics {where} ORDER BY hash, epoch, layer, statistic"
        frame = pd.DataFrame(self._connection.execute(query, parameters).fetchall(), columns=list(DIAGNOSTIC_COLUMNS))
        return frame.astype({"epoch": "int64", "layer": "int64", "value": "float64"})

    def integrity_check(self) -> str:
        """SQLite's own `PRAGMA integrity_check`: 'ok' when the file is sound."""
        return "; ".join(row[0] for row in self._connection.execute("PRAGMA integrity_check"))

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.directory)!r})"


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, split where SQLite's own tokenizer sees one end, so a ';'
    inside a -- comment or a string does not split a statement (executescript cannot be used:
    it commits the open transaction first)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


def _hash_filter(hashes: Iterable[str] | None) -> tuple[str, tuple[Any, ...]]:
    if hashes is None:
        return "", ()
    return "WHERE hash IN (SELECT value FROM json_each(?))", (json.dumps(sorted(set(hashes))),)

