"""What went wrong with a store file, in words: SQLite errors turned into StoreErrors that name the
file, the cause and the fix.

Three kinds of fault reach a user, each with its own advice:

- damaged: the file is cut short, overwritten, or not a SQLite database at all (SQLITE_CORRUPT,
  SQLITE_NOTADB). Nothing is written to it; the fix is to move it aside and run again (a fresh
  store; trials rerun), or to rescue what it holds with the sqlite3 shell's `.recover`.
- unwritable: a write failed (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN). SQLite
  cannot say why (it reports 'disk I/O error' for a file-size limit), so `write_failure_cause`
  looks: the process's file-size limit (`ulimit -f`), the free space of the file system, a
  read-only folder. The transaction that failed is rolled back; earlier ones stay.
- busy: another program holds the write lock longer than the busy timeout.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path

from harness.errors import StoreError

LOW_SPACE_BYTES = 64 * 1024 * 1024  # less free space than this on the store's file system counts as 'full'
SIZE_LIMIT_MARGIN = 1024 * 1024  # a file this close to the file-size limit could not take one more transaction
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_UNWRITABLE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def error_name(error: sqlite3.Error) -> str:
    """SQLite's name of the error ('SQLITE_CORRUPT', 'SQLITE_IOERR_WRITE', ...), '' when unknown."""
    return str(getattr(error, "sqlite_errorname", "") or "")


def is_damaged(error: sqlite3.Error) -> bool:
    """Whether the error says the file itself is damaged (as opposed to unwritable or busy)."""
    text = str(error)
    return error_name(error).startswith(_DAMAGED) or "malformed" in text or "not a database" in text


def recovery_advice(path: Path) -> str:
    """How to get going again with a damaged store: move it aside, and how to rescue what it holds."""
    damaged = shlex.quote(str(path.with_name(path.name + ".damaged")))
    rescued = path.parent.with_name(path.parent.name + "-rescued")
    return (
        f"Fix: move it aside (`mv {shlex.quote(str(path))} {damaged}`) and run again: a fresh store is created and "
        "the trials run again. To read what the damaged file holds, rescue it into another folder: "
        f'`mkdir {shlex.quote(str(rescued))} && sqlite3 {damaged} ".recover" | sqlite3 '
        f"{shlex.quote(str(rescued / path.name))}` (a sqlite3 shell without .recover: use .dump and change its last "
        f"line, ROLLBACK, to COMMIT), then read it with `harness report SUITE --store {shlex.quote(str(rescued))}`; "
        "a rescued trial may have lost rows, so do not resume runs into it."
    )


def damaged_store(path: Path, error: sqlite3.Error | str) -> StoreError:
    """The refusal of a damaged file; it promises that nothing was written to it."""
    return StoreError(
        f"store: {str(path)!r} is damaged ({error}): cut short, partly overwritten, or not a SQLite database. "
        "Expected a harness results store that passes SQLite's integrity check; nothing was written to it. "
        + recovery_advice(path)
    )


def write_failure_cause(path: Path) -> str:
    """Why writing `path` (a SQLite file; its -wal beside it) fails, as far as the process can see; '' if unknown."""
    files = [candidate for candidate in (path, path.with_name(path.name + "-wal")) if candidate.exists()]
    largest = max((candidate.stat().st_size for candidate in files), default=0)
    limit = _file_size_limit()
    if limit is not None and largest + SIZE_LIMIT_MARGIN >= limit:
        return (
            f"this process may write files of at most {limit} bytes (its file-size limit, `ulimit -f`) and the store "
            f"has reached {largest} bytes"
        )
    try:
        status = os.statvfs(path.parent)
    except OSError:
        return ""
    free = status.f_bavail * status.f_frsize
    if free < LOW_SPACE_BYTES:
        return f"the disk is full: {free} bytes free on the file system of {str(path.parent)!r}"
    if status.f_flag & os.ST_RDONLY or not os.access(path.parent, os.W_OK):
        return f"the folder {str(path.parent)!r} or its file system is read-only"
    return ""


def _file_size_limit() -> int | None:
    """The largest file this process may write (RLIMIT_FSIZE, `ulimit -f`) in bytes; None when unlimited."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def store_error(path: Path, error: sqlite3.Error, doing: str) -> StoreError:
    """A StoreError for `error`, raised while `doing` (e.g. 'writing', 'reading', 'opening') the store at `path`."""
    name = error_name(error)
    if is_damaged(error):
        return damaged_store(path, error)
    if name.startswith(_BUSY):
        return StoreError(
            f"store: {doing} {str(path)!r} failed ({error}): another program held its write lock too long. "
            "Fix: wait for the other `harness run` on this store to finish (or stop it), then run again to resume."
        )
    cause = write_failure_cause(path) if name.startswith(_UNWRITABLE) or not name else ""
    return StoreError(
        f"store: {doing} {str(path)!r} failed ({error}" + (f": {cause}" if cause else "") + "). "
        "The transaction that failed was rolled back; everything recorded before it is kept and the file still opens. "
        "Fix: free disk space (or raise the file-size limit, or make the folder writable), or pass --store with "
        "another folder, then run the same command again to resume."
    )
