"""The store's schema: table definitions, column orders, the schema version and its migrations.

Everything here is data about the SQLite file, not about a connection: the connection that
opens a store (`harness.store.connection`) creates these tables and migrates an older file.
The table names are part of the file format: renaming one makes every stored file unreadable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

DATABASE_NAME = "harness.sqlite"
SCHEMA_VERSION = 7  # bump on any schema change; a newer store is refused, an older one migrated (MIGRATIONS)
BUSY_TIMEOUT_MILLISECONDS = 60_000  # how long a writer waits for another run's transaction to finish

SCHEMA = """
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
    compile_seconds REAL,           -- tracing and compiling (Keras), not in train/eval_seconds; NULL before schema 7
    wall_seconds REAL NOT NULL,     -- the whole trial in the worker
    host TEXT,
    versions TEXT NOT NULL,         -- JSON object, e.g. {"torch": "2.13.0"}
    device TEXT NOT NULL,           -- JSON object
    spec TEXT NOT NULL,             -- TrialSpec.to_json()
    cell TEXT NOT NULL,             -- JSON object {axis: variant label}, in axis order
    started_at TEXT,                -- ISO 8601, UTC
    finished_at TEXT,
    attempts INTEGER NOT NULL,      -- executions recorded for this hash, over every run (incl. retries)
    harness_version TEXT NOT NULL,
    provenance TEXT                 -- JSON object (harness.provenance): git, packages hash, cpu, threads...; NULL before schema 6
);
CREATE TABLE IF NOT EXISTS provenance_blobs (
    hash TEXT PRIMARY KEY,          -- what a trial's provenance names by hash (harness.provenance.digest)
    kind TEXT NOT NULL,             -- 'packages' (name -> version) | 'cpu_flags' (a list)
    content TEXT NOT NULL           -- JSON, stored once per distinct hash
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,            -- one `harness run` (or harness.run) of one suite
    suite TEXT NOT NULL,
    started_at TEXT NOT NULL,       -- ISO 8601, UTC
    finished_at TEXT NOT NULL,
    git_commit TEXT,                -- the checkout holding the suite file, when it is one
    git_dirty INTEGER,              -- 1: it differed from its commit (edits or untracked files)
    harness_commit TEXT,            -- the harness package's checkout, when another one
    harness_dirty INTEGER,
    code_version TEXT NOT NULL,     -- the fingerprint of the harness code the workers ran (runner.code_version)
    host TEXT NOT NULL,
    source TEXT                     -- the suite file as given
);
CREATE TABLE IF NOT EXISTS run_trials (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,             -- the trial (its row in trials holds its latest result)
    arm TEXT NOT NULL,
    backend TEXT NOT NULL,
    seed INTEGER NOT NULL,
    reused INTEGER NOT NULL,        -- 1: the store had its final result when the run started (not trained again)
    status TEXT NOT NULL,
    final TEXT NOT NULL,            -- JSON {metric: value at the last epoch, train_seconds}: what this run saw,
                                    -- kept when a later --rerun replaces the trial's row
    PRIMARY KEY (run_id, hash)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS predictions (
    hash TEXT NOT NULL REFERENCES trials(hash) ON DELETE CASCADE,
    split TEXT NOT NULL,            -- 'test'
    epoch INTEGER NOT NULL,
    is_final INTEGER NOT NULL,      -- 1: the last evaluated epoch
    is_best_validation INTEGER NOT NULL,  -- 1: the epoch of least validation loss (first such)
    dtype TEXT NOT NULL,            -- numpy dtype string of the values, little-endian: '<u1', '<u2', '<f4'
    shape TEXT NOT NULL,            -- JSON list, e.g. [1000] (classes) or [1000, 2] (regression outputs)
    data BLOB NOT NULL,             -- the raw values, C order
    PRIMARY KEY (hash, split, epoch)
);  -- a rowid table, unlike metrics: its blobs (~1 KB) fit in the page; WITHOUT ROWID would spill each to an overflow page
CREATE TABLE IF NOT EXISTS weights (
    hash TEXT PRIMARY KEY REFERENCES trials(hash) ON DELETE CASCADE,
    which TEXT NOT NULL,            -- training.save_weights: final | best
    epoch INTEGER NOT NULL,         -- the epoch the weights are of (0 = the initial weights)
    file TEXT NOT NULL,             -- relative to the store folder: weights/<hash>.safetensors (harness.weights)
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL            -- of the whole file, checked when it is loaded
);
CREATE TABLE IF NOT EXISTS trial_events (
    hash TEXT NOT NULL REFERENCES trials(hash) ON DELETE CASCADE,
    position INTEGER NOT NULL,      -- order within the trial
    epoch INTEGER NOT NULL,
    event TEXT NOT NULL,            -- resumed | checkpoint_discarded | checkpoint_not_written
    detail TEXT NOT NULL,
    PRIMARY KEY (hash, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_trials (
    suite TEXT NOT NULL,
    arm TEXT NOT NULL,
    phase TEXT NOT NULL,            -- 'search' (a sampled configuration) | 'rung' (its first epochs, for a pruner)
    round INTEGER NOT NULL,         -- 0, 1, ...: range-narrowing rounds
    trial INTEGER NOT NULL,         -- the configuration's index within its arm's round
    seed INTEGER NOT NULL,          -- a search seed
    hash TEXT NOT NULL,             -- the ordinary trial that runs it (trials.hash once it has run)
    params TEXT NOT NULL,           -- JSON object {dotted path: sampled value}
    PRIMARY KEY (suite, arm, phase, round, trial, seed)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_rounds (
    suite TEXT NOT NULL,
    arm TEXT NOT NULL,
    round INTEGER NOT NULL,
    ranges TEXT NOT NULL,           -- JSON object {dotted path: {kind, low, high} | {kind, choices}} sampled in
    PRIMARY KEY (suite, arm, round)
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
# themselves come from SCHEMA (CREATE TABLE IF NOT EXISTS) right after.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (),  # version 2 added the claims and diagnostics tables: both come from SCHEMA
    2: (),  # version 3 added the predictions table (from SCHEMA); trials stored before have no rows there
    3: (),  # version 4 added the weights and trial_events tables (from SCHEMA); none for trials stored before
    4: (),  # version 5 added search_trials and search_rounds (from SCHEMA): which trials a search ran, and its ranges
    # version 6: each trial's provenance (NULL for trials stored before), the provenance_blobs, runs and
    # run_trials tables (from SCHEMA); runs before it are not known, so history starts at the first run after
    5: ("ALTER TABLE trials ADD COLUMN provenance TEXT",),
    # version 7: each trial's compile_seconds, taken out of train_seconds; NULL for trials stored before
    # (their train_seconds still holds a Keras trial's tracing). A migrated store has the column last, a new
    # one after eval_seconds: every read names its columns.
    6: ("ALTER TABLE trials ADD COLUMN compile_seconds REAL",),
}

TRIAL_COLUMNS = (
    "hash",
    "suite",
    "arm",
    "backend",
    "seed",
    "status",
    "error",
    "diverged_epoch",
    "epochs_completed",
    "train_seconds",
    "eval_seconds",
    "compile_seconds",
    "wall_seconds",
    "host",
    "versions",
    "device",
    "spec",
    "cell",
    "started_at",
    "finished_at",
    "attempts",
    "provenance",
)
RUN_COLUMNS = (
    "id",
    "suite",
    "started_at",
    "finished_at",
    "git_commit",
    "git_dirty",
    "harness_commit",
    "harness_dirty",
    "code_version",
    "host",
    "source",
)
RUN_TRIAL_COLUMNS = ("run_id", "hash", "arm", "backend", "seed", "reused", "status", "final")
METRIC_COLUMNS = ("hash", "epoch", "metric", "value")
DIAGNOSTIC_COLUMNS = ("hash", "epoch", "layer", "layer_name", "statistic", "value")
PREDICTION_COLUMNS = ("hash", "split", "epoch", "is_final", "is_best_validation", "dtype", "shape", "data")
WEIGHT_COLUMNS = ("hash", "which", "epoch", "file", "bytes", "sha256")
EVENT_COLUMNS = ("hash", "position", "epoch", "event", "detail")
SEARCH_TRIAL_COLUMNS = ("suite", "arm", "phase", "round", "trial", "seed", "hash", "params")
SEARCH_ROUND_COLUMNS = ("suite", "arm", "round", "ranges")
CLAIM_COLUMNS = ("hash", "owner", "host", "pid", "pid_start", "claimed_at", "expires")


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
