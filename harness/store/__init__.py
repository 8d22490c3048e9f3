"""The results store: one SQLite file (stdlib `sqlite3`, WAL mode) per results folder.

One row per trial (hash, labels, status, environment, timings, the spec as JSON), one row per
(trial, epoch, metric) and one per (trial, epoch, layer, statistic) of diagnostics. The
runner's driver process is the only writer of a run; it records each trial in ONE transaction
when its result arrives, so a killed run loses at most the trials in flight and running again
resumes where it stopped. Two runs on one store split the trials through leases.

Modules, one job each; `Store` joins them:
    schema      tables, column orders, schema version and migrations (the file format)
    connection  opening the file, its settings, the schema check, the write transaction
    writes      recording a trial (TrialWriter)
    leases      leasing trials so two runs split them (LeaseTable, LeaseOwner)
    reads       finished trials and the long frames analysis reads (TrialReader)
    search      which trials a hyperparameter search ran, and its rounds' ranges (SearchTable)
    runs        each `harness run` of a suite: its commit and the trials it trained or reused (RunTable)
"""

from __future__ import annotations

from harness.store.connection import StoreConnection
from harness.store.leases import LEASE_OUTCOMES, LeaseOwner, LeaseTable, lease_owner_alive, process_start
from harness.store.reads import TrialReader
from harness.store.runs import RunRecord, RunTable, RunTrial
from harness.store.schema import (
    BUSY_TIMEOUT_MILLISECONDS,
    CLAIM_COLUMNS,
    DATABASE_NAME,
    DIAGNOSTIC_COLUMNS,
    METRIC_COLUMNS,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
)
from harness.store.search import SearchTable
from harness.store.writes import TrialWriter

__all__ = [
    "BUSY_TIMEOUT_MILLISECONDS",
    "CLAIM_COLUMNS",
    "DATABASE_NAME",
    "DIAGNOSTIC_COLUMNS",
    "LEASE_OUTCOMES",
    "METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "TRIAL_COLUMNS",
    "LeaseOwner",
    "RunRecord",
    "RunTrial",
    "Store",
    "StoreConnection",
    "lease_owner_alive",
    "process_start",
]


class Store(TrialWriter, LeaseTable, TrialReader, SearchTable, RunTable):
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
