"""Leases: two runs on one store split the trials instead of running each twice.

Before a driver starts a trial it leases it: one row naming its run id, host and pid, with an
expiry time it keeps renewing. A lease whose owner is dead (same host, pid gone) or whose expiry
has passed (any host) is taken over. Recording a trial removes its lease in the same transaction
(`harness.store.writes`). The runner's side, which leases, renews in the background and releases,
is `harness.runner.leases`.

The rows live in the SQL table `claims` (columns `schema.CLAIM_COLUMNS`): the table keeps the name
it had when these were called claims, so stores written before the rename open unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.measures import FINAL_STATUSES
from harness.store.connection import StoreConnection
from harness.store.schema import CLAIM_COLUMNS

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: opening a store needs no pandas

LEASE_OUTCOMES = ("claimed", "done", "busy")  # what Store.lease answers ("claimed": the lease is this run's)


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: one run (`run_trials` call) of one driver process.

    Build it with `LeaseOwner.here()`; `id` tells two runs of the same process apart.
    """

    id: str
    host: str
    pid: int
    pid_start: str | None  # the process's start time (Linux /proc), so a reused pid is not mistaken for it

    @classmethod
    def here(cls) -> LeaseOwner:
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
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command name)", which may hold spaces
    return "" if fields[0] == "Z" else fields[19]


def lease_owner_alive(host: str, pid: int, pid_start: str | None) -> bool:
    """Whether a lease's owner may still be running. Only a process on THIS host can be checked;
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


class LeaseTable(StoreConnection):
    """The lease part of `harness.store.Store`: lease, renew, release, list."""

    def lease(
        self,
        trial_hash: str,
        owner: LeaseOwner,
        *,
        lease_seconds: float,
        seen_attempts: int = 0,
        rerun: bool = False,
    ) -> str:
        """Lease a trial to `owner` before running it, in one transaction.

        Args:
            trial_hash: the trial.
            owner: the run asking for it.
            lease_seconds: the lease expires this long from now unless renewed (`renew_leases`).
            seen_attempts: the trial's `attempts` when the run started (`attempts()`; 0 if absent):
                a higher value now means another run recorded it meanwhile.
            rerun: the run reruns finished trials: a final result alone does not make it 'done'.

        Returns:
            'claimed': the trial is this owner's to run (a new lease, its own, or a stale one taken
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
            if (
                held is not None
                and held[0] != owner.id
                and held[4] > now
                and lease_owner_alive(held[1], held[2], held[3])
            ):
                return "busy"
            connection.execute(
                "INSERT OR REPLACE INTO claims (hash, owner, host, pid, pid_start, claimed_at, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (trial_hash, owner.id, owner.host, owner.pid, owner.pid_start, now, now + lease_seconds),
            )
        return "claimed"

    def renew_leases(self, owner_id: str, lease_seconds: float) -> int:
        """Extend every lease of `owner_id` to expire `lease_seconds` from now (the heartbeat). Returns the count."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease_seconds, owner_id)
            )
            return cursor.rowcount

    def release_leases(self, owner_id: str, hashes: Iterable[str] | None = None) -> None:
        """Drop leases of `owner_id` (all of them, or those among `hashes`): the run stops running them."""
        with self._transaction() as connection:
            if hashes is None:
                connection.execute("DELETE FROM claims WHERE owner = ?", (owner_id,))
            else:
                connection.execute(
                    "DELETE FROM claims WHERE owner = ? AND hash IN (SELECT value FROM json_each(?))",
                    (owner_id, json.dumps(sorted(set(hashes)))),
                )

    def leases_frame(self) -> pd.DataFrame:
        """Current leases: hash, owner, host, pid, pid_start, claimed_at, expires (Unix seconds)."""
        import pandas as pd

        columns = list(CLAIM_COLUMNS)
        rows = self._connection.execute(f"SELECT {', '.join(columns)} FROM claims ORDER BY hash").fetchall()
        return pd.DataFrame(rows, columns=columns)
