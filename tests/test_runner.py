"""Tests of harness.runner: real worker processes, the real torch adapter and data, real SQLite.

Every run here spawns fresh workers that import torch (about 1-3 s each on a shared 2-core
machine), so scenarios share runs where they can: `reference` is one uninterrupted run of
MIXED, the table every other way of running the same trials must reproduce exactly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from harness.adapters.loop import TrialResult
from harness.data import dataset_info, resolve_dataset
from harness.errors import HarnessError
from harness.runner import RunEvent, RunSummary, TrialRunner, run_trials
from harness.runner.grouping import group_tasks
from harness.runner.pool import DEFAULT_ENVIRONMENT, Task, Worker
from harness.runner.progress import RunProgress, progress_enabled
from harness.runner.schedule import estimate_durations, longest_first
from harness.spec import RegularizerSpec, TrainingSpec, Trial, TrialSpec, resolve_component, resolve_model
from harness.store import Store

TESTS = Path(__file__).resolve().parent
REPOSITORY = TESTS.parent

# Columns that must be identical between two runs of the same trials (timings, host and dates vary).
DETERMINISTIC_COLUMNS = [
    "hash",
    "suite",
    "arm",
    "backend",
    "seed",
    "status",
    "error",
    "diverged_epoch",
    "epochs_completed",
    "spec",
    "cell",
]


def make_trial(
    arm: str,
    seed: int,
    *,
    optimizer: str | dict = "adam",
    dataset: str | dict = "iris",
    hidden: tuple[int, ...] = (16,),
    epochs: int = 10,
    batch_size: int = 16,
    device: str = "cpu",
    max_seconds: float | None = None,
) -> Trial:
    """A fully resolved torch trial on a small bundled dataset."""
    dataset_spec = resolve_dataset(dataset)
    info = dataset_info(dataset_spec)
    loss = {"classification": "cross_entropy", "binary": "binary_cross_entropy", "regression": "mse"}[info.task]
    spec = TrialSpec(
        dataset=dataset_spec,
        model=resolve_model({"mlp": {"hidden": list(hidden)}}, num_outputs=info.num_outputs),
        loss=resolve_component("loss", loss, "loss"),
        optimizer=resolve_component("optimizer", optimizer, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=batch_size, max_seconds=max_seconds),
        seed=seed,
        backend="torch",
        device=device,
    )
    return Trial(suite="runner-test", arm=arm, cell=(("variant", arm),), spec=spec)


def mixed_trials() -> list[Trial]:
    """6 ordinary trials, one that diverges (huge lr) and one that raises (no GPU here)."""
    trials = [
        make_trial(arm, seed, optimizer=optimizer)
        for arm, optimizer in (("adam", {"name": "adam", "lr": 0.01}), ("sgd", {"name": "sgd", "lr": 0.1}))
        for seed in (0, 1, 2)
    ]
    trials.insert(3, make_trial("huge-lr", 0, optimizer={"name": "sgd", "lr": 1e12}))
    trials.append(make_trial("gpu", 0, device="cuda:0"))
    return trials


MIXED_STATUSES = {"adam": "ok", "sgd": "ok", "huge-lr": "diverged", "gpu": "failed"}


def assert_same_tables(store: Store, reference: Store) -> None:
    """Same trial rows (deterministic columns) and bit-identical metrics, NaN where NaN."""
    pd.testing.assert_frame_equal(
        store.trials_frame()[DETERMINISTIC_COLUMNS], reference.trials_frame()[DETERMINISTIC_COLUMNS]
    )
    metrics = store.metrics_frame()
    assert not metrics.duplicated(["hash", "epoch", "metric"]).any()
    pd.testing.assert_frame_equal(metrics, reference.metrics_frame(), check_exact=True)


def no_workers_left() -> bool:
    return not multiprocessing.active_children()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """MIXED run once, uninterrupted, with one worker: (store, summary)."""
    store = Store(tmp_path_factory.mktemp("reference"))
    summary = run_trials(mixed_trials(), store, jobs=1, quiet=True, vectorize="auto")
    yield store, summary
    store.close()


def test_mixed_outcomes_are_recorded_and_the_rest_go_on(reference: tuple[Store, RunSummary]) -> None:
    store, summary = reference
    assert (summary.total, summary.skipped, summary.ok, summary.diverged, summary.failed, summary.timeout) == (
        8,
        0,
        6,
        1,
        1,
        0,
    )
    assert not summary.interrupted and no_workers_left()
    trials = store.trials_frame().set_index("arm")
    assert trials.groupby(level=0)["status"].agg(set).to_dict() == {
        arm: {status} for arm, status in MIXED_STATUSES.items()
    }
    diverged = trials.loc["huge-lr"]
    assert diverged["diverged_epoch"] >= 1 and diverged["epochs_completed"] == diverged["diverged_epoch"] - 1
    failed = trials.loc["gpu"]
    assert failed["error"].startswith("BackendError: ") and "cuda" in failed["error"].lower()
    assert "Traceback (last frames)" in failed["error"]
    ok = store.trials_frame().query("status == 'ok'")
    # --vectorize auto (as these runs ask): adam's 3 seeds and sgd's 3 with huge-lr trained as stacked groups
    assert sorted(json.loads(device)["group_size"] for device in ok["device"]) == ["3"] * 3 + ["4"] * 3
    assert (ok["epochs_completed"] == 10).all() and (ok["train_seconds"] > 0).all() and (ok["attempts"] == 1).all()
    final = store.metrics_frame().query("epoch == 10 and metric == 'test_accuracy'")
    assert len(final) == 6 and (final["value"] > 0.6).all()  # iris: 3 classes, chance is 1/3
    diverged_metrics = store.metrics_frame([diverged["hash"]]).set_index(["epoch", "metric"])["value"]
    # The diverged epoch's non-finite minibatch loss survived the round trip (NaN or +-inf).
    assert not math.isfinite(diverged_metrics[(diverged["diverged_epoch"], "minibatch_loss")])


def test_two_workers_give_the_same_table_as_one(tmp_path: Path, reference: tuple[Store, RunSummary]) -> None:
    with Store(tmp_path) as store:
        summary = run_trials(mixed_trials(), store, jobs=2, quiet=True, vectorize="auto")
        assert (summary.ok, summary.diverged, summary.failed) == (6, 1, 1)
        assert_same_tables(store, reference[0])


def test_interrupt_keeps_finished_trials_and_resume_completes(
    tmp_path: Path, reference: tuple[Store, RunSummary]
) -> None:
    finished: list[str] = []

    def interrupt_after_two(event: RunEvent) -> None:
        if event.kind == "finished":
            finished.append(event.trial.hash)
            if len(finished) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: KeyboardInterrupt in the driver

    trials = mixed_trials()
    with Store(tmp_path) as store:
        summary = run_trials(trials, store, jobs=2, quiet=True, on_event=interrupt_after_two, vectorize="auto")
        assert store.leases_frame().empty  # the interrupted trials' claims were released
        assert summary.interrupted and no_workers_left()
        stored = set(store.trials_frame()["hash"])
        assert stored == set(finished) and 2 <= len(stored) < len(trials)

        remaining = [trial for trial in trials if trial.hash not in stored]
        scheduled = longest_first(remaining, store)  # the finished ones inform the estimates
        # stacked groups (harness.runner.grouping) start their members together, at their first member's place
        planned = [
            trial.hash
            for task in group_tasks([Task(i, trial) for i, trial in enumerate(scheduled)], 2).tasks
            for trial in task.trials
        ]
        dispatched: list[str] = []
        resumed = run_trials(
            trials,
            store,
            jobs=2,
            quiet=True,
            on_event=lambda e: dispatched.append(e.trial.hash) if e.kind == "dispatched" else None,
            vectorize="auto",
        )
        assert dispatched == planned  # the run starts its trials in the schedule's order
        assert not resumed.interrupted
        assert resumed.skipped == len(stored) and resumed.ok + resumed.diverged + resumed.failed == len(trials) - len(
            stored
        )
        assert_same_tables(store, reference[0])

        again = run_trials(trials, store, jobs=2, quiet=True)  # only the failed trial is not final: it runs again
        assert (again.total, again.skipped, again.failed) == (8, 7, 1)
        attempts = store.trials_frame().set_index("arm")["attempts"]
        assert attempts["gpu"] == 2 and (attempts.drop("gpu") == 1).all()


def test_one_runner_keeps_its_workers_across_calls_and_ctrl_c_ends_them(tmp_path: Path) -> None:
    # A search runs one call per round: the worker started ahead by start() runs every call's trials
    # (one spawn and torch import for all), Ctrl-C in a call kills it, the next call starts a fresh one.
    first, second, third, fourth = (make_trial("reuse", seed, epochs=2) for seed in range(4))
    events: list[RunEvent] = []

    def observe(event: RunEvent) -> None:
        events.append(event)
        if event.kind == "finished" and event.trial is third:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the call still has `fourth` to run

    # vectorize off: `third` and `fourth` must train one after the other for Ctrl-C to fall between them
    with Store(tmp_path) as store, TrialRunner(jobs=1, quiet=True, on_event=observe, vectorize="off") as runner:
        runner.start([first, second])
        started = runner.workers
        assert len(started) == 1  # one per trial, at most `jobs`
        assert (runner.run([first], store).ok, runner.run([second], store).ok) == (1, 1)
        finished = [event for event in events if event.kind == "finished"]
        assert [event.worker_pid for event in finished] == list(started) * 2  # the same process ran both
        assert [event.worker_trials for event in finished] == [0, 1]  # warm on the second call
        assert store.leases_frame().empty  # each call released its own leases

        os.kill(started[0], signal.SIGKILL)  # it dies idle between calls (the kernel's out-of-memory killer, say)
        while any(child.pid == started[0] for child in multiprocessing.active_children()):
            time.sleep(0.05)  # until its exit is seen
        interrupted = runner.run([third, fourth], store)
        assert interrupted.interrupted and interrupted.ok == 1
        # the dead worker was dropped before it was given `third`: a fresh one ran it, on its first attempt
        assert store.trials_frame().set_index("hash").loc[third.hash, "attempts"] == 1
        assert [e.worker_pid for e in events if e.trial is third and e.kind == "finished"] != list(started)
        assert runner.workers == () and no_workers_left() and store.leases_frame().empty
        resumed = runner.run([first, second, third, fourth], store)
        assert (resumed.skipped, resumed.ok) == (3, 1) and not resumed.interrupted
        assert runner.workers and runner.workers != started  # a fresh worker after the interrupt
    assert no_workers_left()  # closing the runner stopped it


def test_workers_started_ahead_and_never_used_are_ended_on_close() -> None:
    # `harness run` starts workers before it knows whether anything runs (a search replayed from the store):
    # closing must not leave them behind, nor wait for their torch import to finish.
    runner = TrialRunner(jobs=2, quiet=True)
    runner.start([make_trial("ahead", seed) for seed in range(3)])
    assert len(runner.workers) == 2 and len(multiprocessing.active_children()) == 2
    runner.close()
    assert runner.workers == () and no_workers_left()


def test_a_runner_whose_worker_refused_runs_nothing_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The driver claims other code than the workers import (as when files change on disk during a run):
    # its worker refuses before importing torch, and every later call of the runner dispatches nothing.
    import harness.runner.driver as driver
    from harness.runner.code_version import PROCESS_CODE_VERSION

    monkeypatch.setattr(driver, "PROCESS_CODE_VERSION", dataclasses.replace(PROCESS_CODE_VERSION, digest="0" * 16))
    trials = [make_trial("refused", seed, epochs=1) for seed in range(2)]
    kinds: list[str] = []
    with Store(tmp_path) as store, TrialRunner(jobs=1, quiet=True, on_event=lambda e: kinds.append(e.kind)) as runner:
        runner.start(trials)
        stopped = runner.run(trials[:1], store)
        assert stopped.code_changed and "0" * 16 in stopped.code_changed and kinds == ["dispatched", "refused"]
        again = runner.run(trials, store)
        assert again.code_changed == stopped.code_changed and kinds == ["dispatched", "refused"]
        assert store.trials_frame().empty and store.leases_frame().empty  # nothing recorded, nothing held
    assert no_workers_left()


@pytest.mark.parametrize("jobs", [0, -1], ids=["zero", "negative"])
def test_jobs_below_one_is_a_user_error(tmp_path: Path, jobs: int) -> None:
    with Store(tmp_path) as store, pytest.raises(HarnessError) as caught:
        run_trials([make_trial("a", 0)], store, jobs=jobs)
    assert f"got {jobs}" in str(caught.value) and "--jobs 1 or more" in str(caught.value)
    assert no_workers_left()


@pytest.mark.parametrize(
    ("terminal", "quiet", "expected"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
    ids=["terminal", "terminal-quiet", "pipe", "pipe-quiet"],
)
def test_progress_only_on_a_terminal_and_not_quiet(
    monkeypatch: pytest.MonkeyPatch, terminal: bool, quiet: bool, expected: bool
) -> None:
    if terminal:
        controller, device = os.openpty()  # a real pseudo-terminal: isatty() is True
        stream = open(device, "w")  # noqa: SIM115 - closed below
    else:
        stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        assert progress_enabled(quiet) is expected
    finally:
        stream.close()
        if terminal:
            os.close(controller)


def test_progress_shows_counts_arm_and_outcomes() -> None:
    output = io.StringIO()
    console = Console(file=output, width=160, force_terminal=False)
    with RunProgress(3, enabled=True, console=console) as progress:
        progress.running(make_trial("lr[0.1]", 0))
        progress.finished("ok")
        progress.finished("failed")
        progress.finished("diverged")
    text = output.getvalue()
    assert "lr[0.1] [torch]" in text and "3/3" in text and "1 diverged, 1 failed" in text
    assert "eta" in text


@pytest.mark.slow  # two workers that import TensorFlow, one after the other: about 15 s
@pytest.mark.keras
def test_each_keras_backend_runs_in_a_worker_of_its_own(tmp_path: Path) -> None:
    # jobs=1: the one slot goes to a tensorflow-environment worker, which is retired when its
    # queue is empty so a torch-environment worker can run the keras-torch trial.
    def on(backend: str, seed: int) -> Trial:
        trial = make_trial(backend, seed, epochs=2)
        return Trial(trial.suite, trial.arm, trial.cell, dataclasses.replace(trial.spec, backend=backend))

    trials = [on("keras", 0), on("keras-torch", 0), on("keras-tensorflow", 1)]
    started: dict[str, int | None] = {}
    with Store(tmp_path) as store:
        summary = run_trials(
            trials, store, jobs=1, quiet=True, on_event=lambda e: started.setdefault(e.trial.arm, e.worker_pid)
        )
        assert summary.ok == 3, store.trials_frame()["error"].tolist()
        versions = {row.arm: json.loads(row.versions) for row in store.trials_frame().itertuples()}
    assert {arm: v.get("keras_backend") for arm, v in versions.items()} == {
        "keras": "tensorflow",
        "keras-tensorflow": "tensorflow",
        "keras-torch": "torch",
    }
    assert started["keras"] == started["keras-tensorflow"] != started["keras-torch"]
    assert no_workers_left()


def test_ctrl_c_does_not_reach_a_starting_worker() -> None:
    # Ctrl-C in a terminal signals the whole process group; only the driver may react to it,
    # including while a worker is still importing its modules (before worker_main runs).
    worker = Worker(multiprocessing.get_context("spawn"), DEFAULT_ENVIRONMENT, threads=1)
    try:
        time.sleep(0.05)
        os.kill(worker.pid, signal.SIGINT)
        worker.dispatch(Task(0, make_trial("after-sigint", 0, epochs=1)))
        assert worker.connection.poll(120)
        messages = [worker.connection.recv(), worker.connection.recv()]
        assert messages[0] == ("started", 0) and messages[1][0] == "result"
        assert messages[1][2].status == "ok"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the driver's own handler is back
    finally:
        worker.task = None
        worker.stop()
        worker.reap()
    assert worker.process.exitcode == 0


@pytest.mark.parametrize("vectorize", ["off", "auto"])
def test_trial_past_max_seconds_is_killed_and_recorded_timeout(tmp_path: Path, vectorize: str) -> None:
    # One epoch of batch-size-1 steps lasts far longer than max_seconds + grace, so only the
    # runner's kill can stop it (the loop itself stops at epoch boundaries).
    # MNIST-1D: 4000 steps of batch size 1, about 1-2 s here, against 0.05 s + 0.2 s grace.
    # Stacked (auto): two seeds as one group, its deadline the lead's limit (every member's: group_key).
    slow = [
        make_trial("slow", seed, dataset="mnist1d", hidden=(100, 100), epochs=1, batch_size=1, max_seconds=0.05)
        for seed in ((0,) if vectorize == "off" else (0, 1))
    ]
    quick = make_trial("quick", 0, epochs=2)
    with Store(tmp_path) as store:
        summary = run_trials([*slow, quick], store, jobs=2, quiet=True, grace_seconds=0.2, vectorize=vectorize)
        assert (summary.timeout, summary.ok) == (len(slow), 1)
        for _, row in store.trials_frame().query("arm == 'slow'").iterrows():
            assert row["status"] == "timeout" and row["epochs_completed"] == 0
            assert row["error"].startswith("killed after") and "max_seconds=0.05" in row["error"]
        assert store.finished([trial.hash for trial in slow]) == {trial.hash for trial in slow}  # final: not retried
    assert no_workers_left()


# -- scheduling: longest first ---------------------------------------------------------------------


def _recorded(store: Store, trial: Trial, seconds: float, status: str = "ok") -> None:
    store.record(trial, TrialResult(status=status, wall_seconds=seconds))


def test_estimates_use_the_most_specific_earlier_trial(tmp_path: Path) -> None:
    same = make_trial("a", 0)
    other_seed = make_trial("b", 0, optimizer="sgd")  # its seeds 1 and 2 ran before
    same_arm = make_trial("c", 0, optimizer="rmsprop", epochs=5)  # only with another budget (epochs=9) before
    unknown = make_trial("d", 0, optimizer="adagrad")
    with Store(tmp_path) as store:
        _recorded(store, same, 4.0)
        _recorded(store, make_trial("b", 1, optimizer="sgd"), 2.0)
        _recorded(store, make_trial("b", 2, optimizer="sgd"), 3.0)
        _recorded(store, make_trial("c", 0, optimizer="rmsprop", epochs=9), 7.0)
        _recorded(store, make_trial("c", 1, optimizer="rmsprop", epochs=9), 9.0)
        _recorded(
            store, make_trial("d", 1, optimizer="adagrad"), 99.0, status="failed"
        )  # a crash says nothing of length
        estimates = estimate_durations([same, other_seed, same_arm, unknown], store)
    assert estimates == {same.hash: 4.0, other_seed.hash: 2.5, same_arm.hash: 8.0, unknown.hash: None}


def test_longest_first_puts_unknown_first_in_suite_order_then_longest(tmp_path: Path) -> None:
    trials = [
        make_trial(arm, 0, optimizer=name)
        for arm, name in (
            ("short", "sgd"),
            ("new-1", "adagrad"),
            ("long", "adam"),
            ("middle", "rmsprop"),
            ("new-2", "adamw"),
        )
    ]
    with Store(tmp_path) as store:
        assert [t.arm for t in longest_first(trials, store)] == [t.arm for t in trials]  # nothing known: suite order
        for arm, optimizer, seconds in (("short", "sgd", 1.0), ("long", "adam", 9.0), ("middle", "rmsprop", 5.0)):
            _recorded(store, make_trial(arm, 1, optimizer=optimizer), seconds)
        order = [t.arm for t in longest_first(trials, store)]
    assert order == ["new-1", "new-2", "long", "middle", "short"]
