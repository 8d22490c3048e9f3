"""Opening a store: the SQLite connection, its settings, the schema check and the write transaction.

Every other part of the store (writes, leases, reads) builds on `StoreConnection`: it owns the
one connection of a `Store` and the `_transaction` that every write goes through.

Durability: WAL with `synchronous=NORMAL` keeps every committed transaction across a crash
or SIGKILL of the process (only a power loss / OS crash may roll back the last commits,
never corrupt the file). Two runs writing the same store at once are serialized by SQLite's
write lock (`BEGIN IMMEDIATE` + `busy_timeout`), so they never corrupt it.

Faults: opening runs SQLite's `quick_check` before anything is written (about 5 ms per MB), so
a damaged file (cut short, overwritten, not a database) is refused with how to recover and left
byte for byte as it was. Every SQLite error becomes a StoreError naming the file and the cause
(`harness.store.faults`): a full disk or a file-size limit in the middle of a run rolls back
the one transaction that failed; what was committed before stays, and running again resumes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from harness import __version__
from harness.errors import StoreError
from harness.store.faults import damaged_store, is_damaged, recovery_advice, store_error
from harness.store.schema import (
    BUSY_TIMEOUT_MILLISECONDS,
    DATABASE_NAME,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    _statements,
)

_Connection = TypeVar("_Connection", bound="StoreConnection")
# SQLite errors that are harness's own bugs (a broken constraint, bad SQL), not a fault of the file or
# the disk: they keep their traceback instead of becoming a StoreError.
HARNESS_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


class StoreConnection:
    """The open SQLite file of one results folder; the base of `harness.store.Store`.

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
            # isolation_level=None: autocommit; every write opens its own explicit transaction.
            self._connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MILLISECONDS / 1000, isolation_level=None
            )
        except sqlite3.Error as error:
            raise self._open_error(error) from None
        try:
            self._check_file()
            self._configure()
            self._check_schema()
        except BaseException:
            self._connection.close()
            raise

    # -- opening ------------------------------------------------------------------------------

    def _open_error(self, error: sqlite3.Error) -> StoreError:
        if is_damaged(error):
            return damaged_store(self.path, error)
        return StoreError(
            f"store: cannot open the results database {str(self.path)!r} ({error}). "
            "Expected a writable SQLite file created by harness. "
            "Fix: check the folder's permissions and free space, or pass --store with another folder."
        )

    def _check_file(self) -> None:
        """Refuse a damaged file before anything writes to it: SQLite's quick_check reads every page
        (about 5 ms per MB), so a file cut short or overwritten in the middle is caught here, not
        halfway through a run. A new (empty) file passes."""
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
            problems = [row[0] for row in self._connection.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as error:
            if "not a database" in str(error):
                raise StoreError(
                    f"store: {str(self.path)!r} exists but is not a SQLite database ({error}). "
                    "Expected a harness results store; nothing was written to it. "
                    + recovery_advice(self.path)
                    + " Or pass --store with another folder."
                ) from None
            raise self._open_error(error) from None
        if problems != ["ok"]:
            raise damaged_store(self.path, "; ".join(problems).replace("\n", " "))

    def _configure(self) -> None:
        # Switching a new file to WAL needs its exclusive lock, and SQLite answers "database is locked" at once,
        # without its busy handler, while another process opening the same new store holds it (two
        # `harness run`s started together on one new store): retried here within the busy timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT_MILLISECONDS / 1000
        while True:
            try:
                self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
                mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                self._connection.execute("PRAGMA synchronous = NORMAL")
                self._connection.execute("PRAGMA foreign_keys = ON")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise self._open_error(error) from None
                time.sleep(0.01)
            except sqlite3.DatabaseError as error:
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
            if found < SCHEMA_VERSION and any(version not in MIGRATIONS for version in range(found, SCHEMA_VERSION)):
                raise StoreError(
                    f"store: {str(self.path)!r} has unknown schema version {found} (expected {SCHEMA_VERSION}). "
                    "Fix: pass --store with another folder, or delete this store to start afresh."
                )
            for version in range(found, SCHEMA_VERSION):  # inside the transaction: all of it or none
                for statement in MIGRATIONS[version]:
                    connection.execute(statement)
            # Inside the transaction, so two runs opening a new store at once create it exactly once.
            for statement in _statements(SCHEMA):
                connection.execute(statement)
            if found != SCHEMA_VERSION or not versions:
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front (waits busy_timeout for another writer),
        so two runs never deadlock upgrading read locks; any exception (even Ctrl-C) rolls back.

        Raises:
            StoreError: any SQLite error on the way (disk full, file-size limit, a damaged page, a lock
                held too long), naming the file and the cause; the transaction is rolled back.
        """
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except HARNESS_BUGS:
            self._roll_back()
            raise
        except sqlite3.Error as error:
            self._roll_back()
            raise store_error(self.path, error, "writing") from None
        except BaseException:
            self._roll_back()
            raise

    def _roll_back(self) -> None:
        # After an I/O error SQLite may have rolled back already ('no transaction is active'); a failed
        # ROLLBACK must not hide the error that caused it.
        if self._connection.in_transaction:
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read; a SQLite error (a page damaged since the store was opened, say)
        becomes a StoreError naming the file and the cause."""
        try:
            yield self._connection
        except HARNESS_BUGS:
            raise
        except sqlite3.Error as error:
            raise store_error(self.path, error, "reading") from None

    def integrity_check(self) -> str:
        """SQLite's own `PRAGMA integrity_check`: 'ok' when the file is sound, else what is wrong."""
        try:
            return "; ".join(row[0] for row in self._connection.execute("PRAGMA integrity_check"))
        except sqlite3.DatabaseError as error:  # too damaged to check: the answer is the damage
            return str(error)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent). Never raises: a checkpoint that fails on close (a full disk)
        loses nothing, since the committed transactions stay in the WAL file and the next open replays them."""
        try:
            self._connection.close()
        except sqlite3.Error:
            pass

    def __enter__(self: _Connection) -> _Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.directory)!r})"
