"""Leases: two `harness run` processes on one store split the trials instead of running each twice.

(The store side is `harness.store.leases`; `harness.check.claims` is unrelated: the `expect:` language.)

Before a trial goes to a worker, the driver leases it in the store (Store.lease): one row
naming this run, its host and pid, with an expiry time. A background thread renews this run's
leases every LEASE_SECONDS / 4 on its own SQLite connection, so a busy driver keeps them;
recording a trial drops its lease in the same transaction; stopping drops the rest.

A lease left behind by a run that died (kill -9, power loss, a lost cluster node) is taken
over by the next run that asks: at once when its owner ran on this host and that process is
gone, otherwise once its lease has expired (clocks of the hosts are assumed in sync to
well within the lease).
"""

from __future__ import annotations

import threading
from types import TracebackType

from harness.spec.types import Trial
from harness.store import LeaseOwner, Store

LEASE_SECONDS = 60.0  # a lease not renewed this long is free for another run to take over
RENEW_FRACTION = 0.25  # renew every quarter lease: three renewals may fail before anyone takes over


class LeaseKeeper:
    """This run's leases on a store: lease before running, keep them alive, release on exit.

    Args:
        store: the run's store (the driver's connection; leases are taken on it).
        lease_seconds: how long a lease lives without renewal.
        seen_attempts: each stored trial's `attempts` when the run started (Store.attempts), so
            a trial another run records meanwhile counts as done, even when it failed.
        rerun: this run reruns trials that already have a final result.
    """

    def __init__(
        self,
        store: Store,
        lease_seconds: float = LEASE_SECONDS,
        seen_attempts: dict[str, int] | None = None,
        rerun: bool = False,
    ) -> None:
        self.store = store
        self.rerun = rerun
        self.owner = LeaseOwner.here()
        self.lease_seconds = lease_seconds
        self.seen_attempts = dict(seen_attempts or {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="harness-leases", daemon=True)
        self._thread.start()

    def lease(self, trial: Trial) -> str:
        """'claimed' (run it), 'done' (a final result exists, or another run recorded it) or 'busy'."""
        return self.store.lease(
            trial.hash,
            self.owner,
            lease_seconds=self.lease_seconds,
            seen_attempts=self.seen_attempts.get(trial.hash, 0),
            rerun=self.rerun,
        )

    def _renew_loop(self) -> None:
        store = None
        try:
            while not self._stop.wait(self.lease_seconds * RENEW_FRACTION):
                try:
                    if store is None:
                        store = Store(self.store.directory)  # SQLite connections stay in the thread that made them
                    store.renew_leases(self.owner.id, self.lease_seconds)
                except Exception:
                    continue
        finally:
            if store is not None:
                store.close()

    def close(self) -> None:
        """Stop renewing and release every lease still held (trials in flight when the run stops)."""
        self._stop.set()
        self._thread.join()
        self.store.release_leases(self.owner.id)

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
