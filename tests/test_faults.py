"""Fault tests of the runner: real `harness run` processes, real worker crashes, real SQLite.

- the driver SIGKILLed at random moments, 10 times, then run again: the table equals an
  uninterrupted run's, no trial is lost or recorded twice, the file passes integrity_check;
- workers that die mid-trial (SIGKILL, a segfault, out of memory under an address-space cap),
  made to crash on demand by the HARNESS_TEST_CRASH hook: retried once, then 'failed' with the
  cause, while the other trials finish;
- two `harness run` processes on one suite and store at once: each trial runs once;
- Ctrl-C on `harness run`: exit code 130, finished trials kept, how to resume printed.

Every `harness run` here starts worker processes that import torch (seconds each on a shared
2-core machine): scenarios are kept to a few runs each, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.suites import optimizer_grid_suite, write_suite
from test_runner import REPOSITORY, assert_same_tables, make_trial, no_workers_left

from harness.runner import run_trials
from harness.runner.hooks import planned_crash
from harness.store import DATABASE_NAME, Store
from harness.suite import load_suite

SUITE = optimizer_grid_suite(
    "faults",
    "40 short MLP trials on MNIST-1D, one arm of which diverges.",
    dataset="{name: mnist1d}",
    model="{mlp: {hidden: [64]}}",
    training="{epochs: 3, batch_size: 100}",
    seeds=8,
    arms={
        "adam-slow": "{name: adam, lr: 0.001}",
        "adam": "{name: adam, lr: 0.003}",
        "adam-fast": "{name: adam, lr: 0.01}",
        "sgd": "{name: sgd, lr: 0.1}",
        "sgd-huge": "{name: sgd, lr: 1.0e12}",
    },
)
NUM_TRIALS = 40
RUN_SUMMARY = re.compile(
    r"(?P<total>\d+) trials: (?P<skipped>\d+) already in the store, (?:(?P<elsewhere>\d+) run by another process, )?"
    r"(?P<ok>\d+) ok, (?P<diverged>\d+) diverged, (?P<failed>\d+) failed, (?P<timeout>\d+) timed out"
)
WAIT_SECONDS = 120  # upper bound on any single wait below (a run normally takes well under 30 s)


def harness_run(suite: Path, store: Path, *extra: str, **popen: object) -> subprocess.Popen:
    """`harness run SUITE --store STORE -q` as its own process (python -m harness, this checkout)."""
    command = [sys.executable, "-m", "harness", "run", str(suite), "--store", str(store), "--quiet", *extra]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.Popen(
        command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def stored_count(store: Path) -> int:
    """Trials committed so far, read the way another process would (0 before the schema exists)."""
    if not (store / DATABASE_NAME).exists():
        return 0
    try:
        with sqlite3.connect(store / DATABASE_NAME, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return 0


def wait_for(condition, seconds: float = WAIT_SECONDS, step: float = 0.005) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("suite"), SUITE, "faults.yaml")


@pytest.fixture(scope="module")
def reference(suite_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """The suite run once, uninterrupted, in this process."""
    store = Store(tmp_path_factory.mktemp("reference"))
    summary = run_trials(load_suite(suite_file).trials, store, jobs=2, quiet=True)
    assert (summary.ok, summary.diverged) == (32, 8)
    yield store
    store.close()


DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from harness.runner import run_trials
    from harness.store import Store
    from harness.suite import load_suite

    if __name__ == "__main__":
        with Store(sys.argv[3]) as store:
            run_trials(load_suite(sys.argv[2]).trials, store, jobs=2, quiet=True)
""")


COMMITS_PER_ROUND = 2  # a kill comes at the latest once a round has recorded this many trials


def kill_at(driver: subprocess.Popen, deadline: float, store_dir: Path, limit: int) -> None:
    """SIGKILL the driver at `deadline` (time.monotonic), or as soon as `limit` trials are stored.

    The count bound keeps the test independent of the machine's speed: a kill window measured in
    seconds (the time to a first commit, taken from an earlier round) let a driver record 22 trials,
    and later ones finish the whole suite, when the machine sped up between rounds.
    """
    wait_for(lambda: time.monotonic() >= deadline or stored_count(store_dir) >= limit or driver.poll() is not None)
    driver.kill()


@pytest.mark.slow  # 10 driver starts and kills, then a full run: 40-70 s on a shared 2-core machine
def test_driver_killed_ten_times_at_random_then_rerun_equals_uninterrupted(
    suite_file: Path, reference: Store, tmp_path: Path
) -> None:
    # The driver is the process running run_trials (what `harness run` does after loading the
    # suite, without the CLI's imports, which would only lengthen each round).
    seed = int(os.environ.get("HARNESS_FAULT_SEED", time.time_ns() % 2**32))  # set it to replay a failure
    chooser = random.Random(seed)
    where = f"(random seed {seed}: HARNESS_FAULT_SEED={seed} replays its choices)"
    script, store_dir = tmp_path / "driver.py", tmp_path / "store"
    script.write_text(DRIVER)
    killed, counts, startup = 0, [], 0.0
    for round_index in range(10):
        before = stored_count(store_dir)
        started = time.monotonic()
        driver = subprocess.Popen(
            [sys.executable, str(script), str(REPOSITORY), str(suite_file), str(store_dir)],
            stderr=subprocess.PIPE,
            text=True,
        )
        if round_index % 2 == 0:  # while trials are recorded: right after a commit, or a commit or two later
            wait_for(lambda before=before, driver=driver: stored_count(store_dir) > before or driver.poll() is not None)
            startup = time.monotonic() - started  # this machine's time to a driver's first commit, now
            kill_at(driver, time.monotonic() + chooser.uniform(0.0, 0.25), store_dir, before + COMMITS_PER_ROUND)
        else:  # anywhere before the first commit: imports, opening the store, claiming, spawning, training
            kill_at(driver, started + chooser.uniform(0.0, startup), store_dir, before + 1)
        _, error = driver.communicate(timeout=WAIT_SECONDS)
        killed += driver.returncode == -signal.SIGKILL
        assert driver.returncode in (-signal.SIGKILL, 0), f"{where} round {round_index}: {error}"
        with Store(store_dir) as store:
            assert store.integrity_check() == "ok", where
            counts.append(len(store.trials_frame()))
    print(f"\ndriver kills {where}: trials stored after each kill {counts}, time to a first commit {startup:.1f} s")
    assert killed == 10, f"{where} only {killed} of 10 drivers were still running when killed (counts {counts})"
    assert counts == sorted(counts) and counts[-1] < NUM_TRIALS, f"{where} trials committed after each kill: {counts}"

    with Store(store_dir) as store:
        final_before = store.finished(trial.hash for trial in load_suite(suite_file).trials)
        summary = run_trials(load_suite(suite_file).trials, store, jobs=2, quiet=True)
        assert (summary.total, summary.skipped) == (NUM_TRIALS, len(final_before)), where
        assert store.integrity_check() == "ok"
        assert_same_tables(store, reference)  # same rows, bit-identical metrics, no duplicate (trial, epoch, metric)
        trials = store.trials_frame()
        assert trials["hash"].is_unique and len(trials) == NUM_TRIALS
        assert (trials["attempts"] == 1).all(), f"{where} a trial was recorded twice"
        assert store.leases_frame().empty  # the killed drivers' claims were taken over, then dropped on record


# -- workers crashing mid-trial ----------------------------------------------------------------------------

# arm -> (HARNESS_TEST_CRASH how, attempts that crash or None for every one, expected status, cause).
CRASHES = {
    "sigkill-always": ("sigkill", None, "failed", "worker killed by signal 9 (SIGKILL)"),
    "segfault-always": ("segfault", None, "failed", "worker killed by signal 11 (SIGSEGV)"),
    "oom-always": ("oom", None, "failed", "worker out of memory (MemoryError"),
    "sigkill-once": ("sigkill", 1, "ok", None),
}


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory):
    """One run where four trials crash their workers as CRASHES says and two do not: (store, events)."""
    crashing = {
        arm: make_trial(arm, seed, epochs=30) for seed, arm in enumerate(CRASHES)
    }  # seeds make the hashes differ
    healthy = [make_trial("healthy", seed, epochs=30) for seed in (10, 11)]
    setting = ",".join(
        f"{crashing[arm].hash}:{how}" + ("" if attempts is None else f":{attempts}")
        for arm, (how, attempts, _, _) in CRASHES.items()
    )
    events = []
    store = Store(tmp_path_factory.mktemp("crashes"))
    os.environ["HARNESS_TEST_CRASH"] = setting  # inherited by the workers this run spawns
    try:
        # vectorize off: lone trials' retries (a stacked group that dies is retried member by member, so its
        # healthy members would count two attempts)
        summary = run_trials(
            [*crashing.values(), *healthy], store, jobs=2, quiet=True, on_event=events.append, vectorize="off"
        )
    finally:
        del os.environ["HARNESS_TEST_CRASH"]
    assert (summary.ok, summary.failed) == (3, 3), store.trials_frame()[["arm", "status", "error"]].to_string()
    assert no_workers_left()
    yield store, events
    store.close()


@pytest.mark.parametrize("arm", list(CRASHES), ids=list(CRASHES))
def test_a_crashing_worker_is_retried_once_then_failed_with_its_cause(crash_run, arm: str) -> None:
    store, events = crash_run
    row = store.trials_frame().set_index("arm").loc[arm]
    _, _, status, cause = CRASHES[arm]
    assert row["status"] == status and row["attempts"] == 2  # the first attempt crashed; one retry
    kinds = [
        event.kind for event in events if event.trial.arm == arm and event.kind in ("started", "retry", "finished")
    ]
    assert kinds == ["started", "retry", "started", "finished"]
    pids = [event.worker_pid for event in events if event.trial.arm == arm and event.kind == "started"]
    assert pids[0] != pids[1]  # the retry ran on a fresh worker
    if status == "failed":
        assert row["error"].startswith(cause) and "on each of 2 attempts" in row["error"]
        assert store.metrics_frame([row["hash"]]).empty
    else:
        final = store.metrics_frame([row["hash"]]).query("epoch == 30 and metric == 'test_accuracy'")["value"]
        assert final.iloc[0] > 0.6  # iris: a real trained model, not a placeholder


def test_the_other_trials_finish_untouched(crash_run) -> None:
    store, _ = crash_run
    healthy = store.trials_frame().query("arm == 'healthy'")
    assert healthy["status"].tolist() == ["ok", "ok"] and healthy["attempts"].tolist() == [1, 1]


def test_a_stacked_group_whose_worker_dies_is_retried_member_by_member(tmp_path: Path) -> None:
    # one member kills the group's worker on its first attempt: every member goes again alone, and all end ok
    members = [make_trial("stacked", seed, epochs=3) for seed in range(3)]
    os.environ["HARNESS_TEST_CRASH"] = f"{members[1].hash}:sigkill:1"
    try:
        with Store(tmp_path) as store:
            summary = run_trials(members, store, jobs=1, quiet=True, vectorize="auto")
            trials = store.trials_frame()
    finally:
        del os.environ["HARNESS_TEST_CRASH"]
    assert summary.ok == 3 and summary.vectorized is not None
    assert trials["attempts"].tolist() == [2, 2, 2]
    assert [json.loads(device)["group_size"] for device in trials["device"]] == ["1"] * 3  # retried one by one
    assert no_workers_left()


@pytest.mark.parametrize(
    ("setting", "attempt", "expected"),
    [("abc:sigkill", 1, "sigkill"), ("abc:oom:1", 2, None), ("x:raise,abc:segfault:2", 2, "segfault"), ("", 1, None)],
    ids=["every-attempt", "first-only", "second-entry", "unset"],
)
def test_the_crash_hook_is_inert_unless_it_names_the_trial(setting: str, attempt: int, expected: str | None) -> None:
    assert planned_crash("abc", attempt, setting) == expected
    assert planned_crash("other", attempt, setting) is None
    with pytest.raises(ValueError, match="HARNESS_TEST_CRASH"):
        planned_crash("abc", 1, "abc:explode")


# -- two runs at once, and Ctrl-C ----------------------------------------------------------------------------


@pytest.mark.slow  # two `harness run` processes with two workers each: about 15 s on a shared 2-core machine
def test_two_runs_on_one_store_split_the_trials(suite_file: Path, reference: Store, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    # --jobs 2 each: one thread per worker as in the reference run (the same arithmetic, hence
    # bit-identical metrics), and no two-thread workers spinning against each other on 2 cores.
    runs = [harness_run(suite_file, store_dir, "--jobs", "2") for _ in range(2)]
    outputs = [run.communicate(timeout=WAIT_SECONDS) for run in runs]
    for run, (_output, error) in zip(runs, outputs):
        assert run.returncode == 0, error
    summaries = [RUN_SUMMARY.search(output) for output, _ in outputs]
    ran = [int(summary["ok"]) + int(summary["diverged"]) for summary in summaries]
    assert sum(ran) == NUM_TRIALS, f"trials run by each process: {ran}"  # none twice, none lost
    assert min(ran) > 0, f"the runs did not overlap: {ran}"
    with Store(store_dir) as store:
        assert store.integrity_check() == "ok"
        assert (store.trials_frame()["attempts"] == 1).all()
        assert store.leases_frame().empty
        assert_same_tables(store, reference)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(suite_file: Path, tmp_path: Path) -> None:
    # Resuming after an interruption: test_runner.test_interrupt_keeps_finished_trials_and_resume_completes.
    store_dir = tmp_path / "store"
    # A terminal's Ctrl-C signals the whole foreground process group: the driver and its workers.
    run = harness_run(suite_file, store_dir, "--jobs", "2", start_new_session=True)
    assert wait_for(lambda: stored_count(store_dir) >= 2 or run.poll() is not None)
    os.killpg(run.pid, signal.SIGINT)
    output, error = run.communicate(timeout=WAIT_SECONDS)
    assert run.returncode == 130, error
    assert f"resume with: harness run {suite_file} --store {store_dir}" in error
    done = stored_count(store_dir)
    assert 2 <= done < NUM_TRIALS
    assert RUN_SUMMARY.search(output) is not None  # what finished is reported before stopping
    assert wait_for(lambda: _group_gone(run.pid), seconds=30)  # no worker outlives the driver
    with Store(store_dir) as store:
        assert store.integrity_check() == "ok" and store.leases_frame().empty
        assert set(store.trials_frame()["status"]) <= {"ok", "diverged"}  # interrupted trials are not recorded


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False
