"""The runner: every trial not yet in the store, on local worker processes or Ray actors.

    from harness.runner import run_trials
    with Store("results") as store:
        summary = run_trials(suite.trials, store, jobs=2)                          # local processes
        summary = run_trials(suite.trials, store, executor="ray", address="auto")  # a Ray cluster
        with TrialRunner(jobs=2) as runner:   # one warm set of workers for several calls (search rounds)
            runner.start(suite.trials)         # optional: workers import their framework meanwhile
            summary = runner.run(suite.trials, store)

Trials already finished in the store (ok, diverged, timeout) are skipped unless `rerun`;
failed ones run again. The rest start longest first when earlier runs tell their durations
(schedule.py). Each is claimed in the store under a lease before it starts (leases.py), so two
runs on one store split the work. The driver process alone writes the store: each trial in one
transaction as its result arrives, so Ctrl-C or a kill loses at most the trials in flight,
and running again resumes. A worker runs one trial at a time; a trial that raises is recorded
'failed' with its error, a worker that dies (or runs out of memory) has its trial retried
once and then recorded 'failed', a trial past training.max_seconds plus a grace period is
killed and recorded 'timeout'; the other trials go on in every case.

Modules: driver (run_trials), executor (the scheduling loop both pools share), pool (local
processes), worker (inside a worker), ray_pool (Ray actors), tasks (queue, events, outcomes
shared by both), leases, schedule, devices, runs (recording a run of a suite: its commit, the trials it saw), progress, hooks (the fault tests' crash hook). The
names below are imported on first use: a worker process imports `harness.runner.worker`, hence
this package, and must not pay for the driver's imports (pandas, SQLite store, rich), which
would add about a second to every worker's start.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EXECUTORS": "driver",
    "RunSummary": "driver",
    "check_executor": "driver",
    "run_trials": "driver",
    "TrialRunner": "driver",
    "worker_threads": "environment",
    "MAX_ATTEMPTS": "tasks",
    "RunEvent": "tasks",
    "record_run": "runs",
    "utc_now": "runs",
    "resolve_devices": "devices",
    "with_device": "devices",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.runner.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.runner' has no attribute {name!r}")
