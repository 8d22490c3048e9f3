"""Recording a run of a suite (`harness run`, `harness.run`): its code's commit and the trials it saw.

See `harness.store.runs` for what is stored and why. A run is recorded when it ends without
being interrupted (an interrupted or stopped run is finished by the next one, which is recorded).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import harness
from harness.provenance import git_state
from harness.runner.code_version import PROCESS_CODE_VERSION
from harness.spec.types import Trial
from harness.store import RunRecord, RunTrial, Store


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def record_run(
    store: Store,
    trials: Sequence[Trial],
    *,
    suite: str,
    started_at: str,
    reused: set[str],
    source: str | Path | None = None,
) -> RunRecord | None:
    """Store one run of a suite: the git state of the suite file's checkout (else of the working
    folder) and of the harness's own, and each stored trial's status and final values now.

    Args:
        store: the run's store (the trials are recorded in it already).
        trials: the suite's trials (duplicates by hash count once).
        suite: the suite's name.
        started_at: when the run started (ISO 8601, UTC).
        reused: the hashes the store held final results for when the run started (not trained again).
        source: the suite file, whose checkout is the run's commit.

    Returns:
        The run as stored; None when the store holds none of the trials (nothing ran).
    """
    unique: dict[str, Trial] = {}
    for trial in trials:
        unique.setdefault(trial.hash, trial)
    stored = store.trials_frame(list(unique))
    if stored.empty:
        return None
    statuses = dict(zip(stored["hash"], stored["status"]))
    finals = store.final_values(list(statuses))
    project = git_state(Path(source).resolve() if source is not None else Path.cwd())
    own = git_state(Path(harness.__file__).resolve().parent)
    if own is not None and project is not None and own["root"] == project["root"]:
        own = None  # the harness is part of the project's checkout: one commit says it
    run = RunRecord(
        id=uuid.uuid4().hex,
        suite=suite,
        started_at=started_at,
        finished_at=utc_now(),
        git_commit=project["commit"] if project else None,
        git_dirty=project["dirty"] if project else None,
        harness_commit=own["commit"] if own else None,
        harness_dirty=own["dirty"] if own else None,
        code_version=PROCESS_CODE_VERSION.digest,
        host=socket.gethostname(),
        source=str(source) if source is not None else None,
    )
    rows = [
        RunTrial(
            hash=trial.hash,
            arm=trial.arm,
            backend=trial.spec.backend,
            seed=trial.spec.seed,
            reused=trial.hash in reused,
            status=str(statuses[trial.hash]),
            final=finals.get(trial.hash, {}),
        )
        for trial in unique.values()
        if trial.hash in statuses
    ]
    store.record_run(run, rows)
    return run
