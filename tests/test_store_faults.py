"""Faults of the store file itself, on real SQLite files and real `harness` processes:

- a damaged harness.sqlite (cut in half, random bytes over its header or over a page in the
  middle, a text file of that name): `run`, `report`, `check` and `compare` refuse with exit 2,
  say how to recover, and leave every byte of the folder as it was;
- the disk full (a file-size limit, RLIMIT_FSIZE, on the `harness run` process) in the middle of a
  run: a clear error naming the store and the cause, exit 2, the store still opens and passes
  integrity_check, and a run without the limit completes the rest, equal to an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.suites import optimizer_grid_suite, write_suite
from test_faults import RUN_SUMMARY, WAIT_SECONDS, stored_count
from test_runner import REPOSITORY, assert_same_tables

from harness.cli import cli
from harness.runner import run_trials
from harness.store import DATABASE_NAME, Store
from harness.suite import load_suite

SUITE = optimizer_grid_suite(
    "damaged",
    "SGD vs Adam on iris.",
    dataset="{name: iris}",
    model="{mlp: {hidden: [8]}}",
    training="{epochs: 10, batch_size: 16}",
    seeds=4,
    arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
)
NUM_TRIALS = 8


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> content): what 'nothing written' compares."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real run of SUITE: its suite file and its store folder (harness.sqlite and damaged/ tables)."""
    root = tmp_path_factory.mktemp("healthy")
    suite = write_suite(root, SUITE, "damaged.yaml")
    store = root / "store"
    result = invoke("run", suite, "--store", store, "--jobs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in store.iterdir()) == ["damaged", DATABASE_NAME]  # the WAL is checkpointed
    return {"suite": suite, "store": store, "root": root}


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    noise = random.Random(how)
    if how == "cut-in-half":
        data = data[: len(data) // 2]
    elif how == "header-overwritten":
        data[:100] = noise.randbytes(100)
    elif how == "page-overwritten":  # a page in the middle: the file opens, its reads fail
        page = 4096
        middle = (len(data) // page // 2) * page
        data[middle : middle + page] = noise.randbytes(page)
    elif how == "text-file":
        data = bytearray(b"results of the optimizer study, see the wiki\n" * 20)
    path.write_bytes(bytes(data))


DAMAGES = ["cut-in-half", "header-overwritten", "page-overwritten", "text-file"]


@pytest.mark.parametrize("how", DAMAGES, ids=DAMAGES)
def test_a_damaged_store_is_refused_with_how_to_recover_and_nothing_is_written(
    healthy: dict[str, Path], tmp_path: Path, how: str
) -> None:
    store = tmp_path / "store"
    shutil.copytree(healthy["store"], store)
    damage(store / DATABASE_NAME, how)
    before = folder_bytes(tmp_path)
    commands = {
        "run": ["run", healthy["suite"], "--store", store, "--quiet", "--jobs", "1"],
        "report": ["report", store / "damaged", "-o", tmp_path / "reports"],
        "check": ["check", store / "damaged", "--fail-on", "test_accuracy:0.5"],
        "compare": ["compare", healthy["store"] / "damaged", store / "damaged", "-o", tmp_path / "compare"],
    }
    for name, arguments in commands.items():
        result = invoke(*arguments)
        message = result.output
        assert result.exit_code == 2, f"{name}: {message}"
        assert "Traceback" not in message and message.startswith("error: store: "), f"{name}: {message}"
        assert str(store / DATABASE_NAME) in message, f"{name}: {message}"
        assert f"mv {store / DATABASE_NAME} {store / DATABASE_NAME}.damaged" in message, f"{name}: {message}"
        assert '".recover"' in message and "run again" in message, f"{name}: {message}"
        assert folder_bytes(tmp_path) == before, f"{name} wrote into the folder"  # no -wal, -shm, report, tables


@pytest.mark.slow  # a run of the 8 trials: 10-30 s on a shared 2-core machine
def test_the_advice_works_moved_aside_the_run_starts_afresh(healthy: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(healthy["store"], store)
    damage(store / DATABASE_NAME, "cut-in-half")
    refused = invoke("run", healthy["suite"], "--store", store, "--quiet", "--jobs", "1")
    assert refused.exit_code == 2
    move = f"mv {store / DATABASE_NAME} {store / DATABASE_NAME}.damaged"
    assert move in refused.output
    (store / DATABASE_NAME).rename(store / f"{DATABASE_NAME}.damaged")  # what the advice says
    result = invoke("run", healthy["suite"], "--store", store, "--quiet", "--jobs", "1")
    assert result.exit_code == 0, result.output
    with Store(store) as fresh, Store(healthy["store"]) as original:
        assert fresh.integrity_check() == "ok"
        assert_same_tables(fresh, original)


# -- the disk full in the middle of a run ----------------------------------------------------------------------

FILE_SIZE_LIMIT = 160_000  # bytes: the store's WAL reaches it after a few of the 8 trials are recorded


def harness_run(suite: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(suite), "--store", str(store), "--quiet", "--jobs", "2"]


def limited_run(suite: Path, store: Path, limit: int) -> subprocess.CompletedProcess:
    """`harness run` in a process (and its workers) that may write no file larger than `limit` bytes.

    SIGXFSZ is ignored, so a write past the limit fails with EFBIG (what a full disk's ENOSPC looks like
    to SQLite: an I/O error) instead of killing the process.
    """

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # trials alone: the limit is calibrated to a few single-trial records (a stacked group records its members
    # together, after lease renewals have grown the WAL for the whole group's time)
    command = [*harness_run(suite, store), "--vectorize", "off"]
    return subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        preexec_fn=limit_file_size,
    )


@pytest.mark.slow  # three runs of 8 short trials, each starting two workers: 30-50 s on a shared 2-core machine
def test_the_disk_full_mid_run_is_a_clear_error_and_a_rerun_completes(healthy: dict[str, Path], tmp_path: Path) -> None:
    suite = healthy["suite"]
    with Store(tmp_path / "reference") as reference:  # uninterrupted, one thread per worker as below
        trials = load_suite(suite).trials
        assert run_trials(trials, reference, jobs=2, quiet=True, vectorize="off").ok == NUM_TRIALS

        store = tmp_path / "store"
        run = limited_run(suite, store, FILE_SIZE_LIMIT)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        assert f"error: store: writing {str(store / DATABASE_NAME)!r} failed" in run.stderr
        assert f"may write files of at most {FILE_SIZE_LIMIT} bytes (its file-size limit, `ulimit -f`)" in run.stderr
        assert "everything recorded before it is kept" in run.stderr and "run the same command again" in run.stderr
        recorded = stored_count(store)
        assert 1 <= recorded < NUM_TRIALS, f"the limit should stop the run midway, but {recorded} trials were stored"
        with sqlite3.connect(store / DATABASE_NAME) as connection:  # sound, read without harness
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.close()

        rerun = subprocess.run(
            [*harness_run(suite, store), "--vectorize", "off"],
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
        )
        assert rerun.returncode == 0, rerun.stderr
        summary = RUN_SUMMARY.search(rerun.stdout)
        assert summary is not None and int(summary["skipped"]) == recorded, rerun.stdout
        with Store(store) as resumed:
            assert resumed.integrity_check() == "ok" and resumed.leases_frame().empty
            assert (resumed.trials_frame()["attempts"] == 1).all()  # the failed transaction recorded nothing
            assert_same_tables(resumed, reference)
