"""Workers `harness run` starts at its first line, before it reads the suite (harness.runner.early): the run
takes those that fit, kills the others as soon as it knows its trials, and leaves none behind, refused
suites included. Real worker processes and real trials throughout."""

from __future__ import annotations

import multiprocessing

import pytest
from click.testing import CliRunner
from helpers.suites import write_suite
from test_cli import TINY as SUITE
from test_runner import make_trial

from harness.cli import cli
from harness.runner import TrialRunner, early, spares
from harness.store import Store


@pytest.fixture(autouse=True)
def no_gpu_and_no_server(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """This machine as early.start finds a CPU-only one without a worker server; nothing left afterwards."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    yield
    early.discard()


def alive(processes: list) -> list[bool]:
    return [process.is_alive() for process in processes]


@pytest.fixture()
def cores(monkeypatch: pytest.MonkeyPatch):
    """The machine seen as having this many cores (early.start leaves one to the driver)."""
    return lambda count: monkeypatch.setattr("os.cpu_count", lambda: count)


def test_a_run_takes_the_worker_started_before_it_knew_its_trials(tmp_path):
    assert early.start(jobs=1, threads=1) == 1
    (pid,) = early.pids()
    trials = [make_trial("adam", seed, epochs=2) for seed in range(2)]
    with Store(tmp_path) as store, TrialRunner(jobs=1, threads=1, quiet=True, vectorize="off") as runner:
        runner.start(trials)
        assert runner.workers == (pid,)
        summary = runner.run(trials, store)
    assert summary.ok == 2
    assert early.pids() == ()


def test_workers_that_do_not_fit_are_killed_once_the_trials_are_known(tmp_path, cores):
    cores(4)
    assert early.start(jobs=2, threads=2) == 2
    started = list(early._started)
    trials = [make_trial("adam", seed, epochs=1) for seed in range(2)]
    with TrialRunner(jobs=2, threads=1, quiet=True) as runner:  # pinned to another thread count: none fits
        runner.start(trials)
        assert early.pids() == ()
        assert not set(runner.workers) & {entry.process.pid for entry in started}
    assert alive([entry.process for entry in started]) == [False, False]


def test_a_run_with_nothing_to_run_kills_them_all(tmp_path, cores):
    cores(4)
    assert early.start(jobs=3, threads=1) == 3
    processes = [entry.process for entry in early._started]
    with TrialRunner(jobs=3, threads=1, quiet=True) as runner:
        assert runner.start([]) == 0
    assert alive(processes) == [False, False, False]


def test_at_most_max_early_and_one_core_fewer_than_the_machine_has(cores):
    cores(64)
    assert early.start(jobs=64, threads=1) == early.MAX_EARLY
    assert early.start(jobs=64, threads=1) == 0  # started already: none more
    early.discard()
    cores(2)
    assert early.start(jobs=2, threads=1) == 1  # the other core is the driver's
    early.discard()
    cores(1)
    assert early.start(jobs=1, threads=1) == 1


def test_a_worker_that_cannot_be_started_costs_only_the_head_start(monkeypatch, cores):
    # out of processes at the second spawn: the first is killed too, and the run starts its own later
    cores(4)
    real, started = early.start_worker, []

    def spawn(*arguments):
        if started:
            raise OSError(24, "Too many open files")
        started.append(real(*arguments))
        return started[-1]

    monkeypatch.setattr(early, "start_worker", spawn)
    assert early.start(jobs=2, threads=1) == 0
    assert early.pids() == ()
    assert not started[0][1].is_alive()


def test_none_start_where_a_gpu_may_be_seen_or_a_worker_server_runs(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert early.start(jobs=1, threads=1) == 0  # set at all: the environment depends on the suite's devices
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    if not spares.supported():
        pytest.skip("no worker server on this platform")
    path = spares.socket_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch()  # where a server would listen: its spares are warm already
    assert early.start(jobs=1, threads=1) == 0


def test_harness_run_hands_its_first_worker_the_first_trial(tmp_path, monkeypatch):
    taken = []

    def spy(*arguments):
        found = real(*arguments)
        taken.append(found is not None)
        return found

    real = early.take
    monkeypatch.setattr(early, "take", spy)
    suite = write_suite(tmp_path, SUITE)
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store"), "--jobs", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert taken == [True]
    assert not multiprocessing.active_children()


def test_a_refused_suite_leaves_no_worker_behind(tmp_path):
    suite = write_suite(tmp_path, SUITE.replace("{name: adam, lr: 0.01}", "{name: adam, lr: -1}"))
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store"), "--jobs", "2"])
    assert result.exit_code == 2
    assert "lr" in result.output
    assert early.pids() == ()
    assert not multiprocessing.active_children()
    assert not (tmp_path / "store").exists()
