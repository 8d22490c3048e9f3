"""Tests of the Ray executor against a REAL local Ray cluster (marker `ray`).

The `cluster` fixture starts a head node with `ray start --head --block` in a process group
of its own, on free ports and a private temp dir, and ends it at teardown, even on failure,
by SIGKILL to that process group: what `ray stop --force` does, but limited to this cluster
(`ray stop` would also end every other Ray process of this user on the machine). Measured
here: the head is up in about 5-6 s; ray.init connects in under 1 s; a new actor that
imports torch is ready in 3-6 s.

Token authentication is turned off (RAY_AUTH_MODE=disabled) for the cluster and the driver:
the test cluster is private to this machine, and the test must not depend on a token file
in the user's home.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_faults import WAIT_SECONDS, stored_count, wait_for
from test_runner import DETERMINISTIC_COLUMNS, REPOSITORY, TESTS, make_trial, mixed_trials, no_workers_left

from harness.errors import HarnessError
from harness.exit_codes import EXIT_CLUSTER_LOST
from harness.runner import check_executor, run_trials
from harness.store import Store

START_SECONDS = 120  # a head node normally starts in about 6 s on a shared 2-core machine


def test_without_ray_the_ray_executor_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the package sees: import fails
    with Store(tmp_path) as store:
        with pytest.raises(HarnessError) as caught:
            run_trials([make_trial("a", 0)], store, executor="ray")
        assert store.trials_frame().empty
    message = str(caught.value)
    assert message.startswith("--executor ray:") and 'pip install "harness[ray]"' in message
    assert caught.value.exit_code == 2
    assert no_workers_left()


DEAD = "<a free port>"  # replaced by 127.0.0.1:<a port nobody listens at>: the connection is refused at once


@pytest.mark.parametrize(
    ("executor", "num_cpus", "num_gpus", "address", "expected"),
    [
        ("dask", None, None, None, "--executor: expected one of local, ray, got 'dask'"),
        ("local", 2.0, None, None, "apply to --executor ray only"),
        ("local", None, None, "auto", "apply to --executor ray only"),
        (
            "ray",
            -1.0,
            None,
            None,
            "--num-cpus: expected the CPUs each trial reserves, a number >= 0 (0.5 shares one), got -1.0",
        ),
        ("ray", 0.0, 0.0, None, "must reserve some resource"),
        ("ray", None, None, DEAD, "--address: nothing answers at '127.0.0.1:"),
        ("ray", None, None, "head-node", "--address: expected 'auto', host:port or ray://host:port"),
    ],
    ids=[
        "unknown",
        "resources-locally",
        "address-locally",
        "negative-cpus",
        "nothing-reserved",
        "dead-address",
        "malformed-address",
    ],
)
def test_executor_options_are_checked(
    executor: str, num_cpus: float | None, num_gpus: float | None, address: str | None, expected: str
) -> None:
    if address is not None and executor == "ray":
        pytest.importorskip("ray")  # the address is checked once ray is known to be installed
    if address == DEAD:
        address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(HarnessError) as caught:
        check_executor(executor, num_cpus, num_gpus, address)
    assert expected in str(caught.value)
    assert time.monotonic() - started < 5  # at once, not after minutes of ray.init retries


def test_threads_are_checked_and_local_only() -> None:
    # --threads pins local workers; a Ray trial's threads follow --num-cpus
    check_executor("local", threads=3)
    for executor, threads, expected in (
        ("local", 0, "--threads: expected a whole number of threads per worker >= 1, got 0"),
        ("local", True, "--threads: expected a whole number"),
        ("ray", 2, "applies to --executor local only"),
    ):
        with pytest.raises(HarnessError) as caught:
            check_executor(executor, threads=threads)
        assert expected in str(caught.value)


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A 2-CPU Ray head node on this machine; yields its address."""
    pytest.importorskip("ray")
    if shutil.which("ray") is None:
        pytest.skip("the `ray` command is not on PATH")
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    port = _free_port()
    command = [
        "ray",
        "start",
        "--head",
        "--block",
        "--num-cpus",
        "2",
        "--port",
        port,
        "--node-ip-address",
        "127.0.0.1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--temp-dir",
        temp_dir,
        # Every other listening port free too, so the fixture never collides with another cluster here.
        "--ray-client-server-port",
        _free_port(),
        "--dashboard-agent-listen-port",
        _free_port(),
        "--dashboard-agent-grpc-port",
        _free_port(),
        "--metrics-export-port",
        _free_port(),
        "--runtime-env-agent-port",
        _free_port(),
    ]
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    started = time.monotonic()
    head = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log: list[str] = []
    try:
        assert head.stdout is not None
        for line in head.stdout:  # `ray start --block` prints this line once the head node is up
            log.append(line)
            if "Ray runtime started" in line or time.monotonic() - started > START_SECONDS:
                break
        assert any("Ray runtime started" in line for line in log), "".join(log)
        print(f"\nray head node up in {time.monotonic() - started:.1f} s")
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(30)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _same_trials(store: Store, reference: Store, hashes: set[str]) -> None:
    import pandas as pd

    mine, theirs = store.trials_frame(hashes), reference.trials_frame(hashes)
    pd.testing.assert_frame_equal(mine[DETERMINISTIC_COLUMNS], theirs[DETERMINISTIC_COLUMNS])
    pd.testing.assert_frame_equal(store.metrics_frame(hashes), reference.metrics_frame(hashes), check_exact=True)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """MIXED run locally (jobs=2: one thread per worker, as one CPU per actor gives)."""
    store = Store(tmp_path_factory.mktemp("local"))
    run_trials(mixed_trials(), store, jobs=2, quiet=True)
    yield store
    store.close()


@pytest.mark.ray
@pytest.mark.slow  # a Ray cluster and about six actor starts: 30-60 s on a shared 2-core machine
def test_ray_gives_the_local_table_and_isolates_crashes_and_timeouts(
    cluster: str, local_reference: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_once = make_trial("crash-once", 7, epochs=10)
    crash_always = make_trial("crash-always", 8, epochs=10)
    # One epoch of batch-size-1 steps on MNIST-1D (seconds) against max_seconds 0.05 s + 0.5 s grace.
    slow = make_trial("slow", 0, dataset="mnist1d", hidden=(100, 100), epochs=1, batch_size=1, max_seconds=0.05)
    # The hook reaches the actors only through their runtime_env: the cluster was started before it was set.
    monkeypatch.setenv("HARNESS_TEST_CRASH", f"{crash_once.hash}:sigkill:1,{crash_always.hash}:segfault")
    trials = [*mixed_trials(), crash_once, crash_always, slow]
    events = []
    with Store(tmp_path) as store:
        summary = run_trials(
            trials,
            store,
            executor="ray",
            address=cluster,
            num_cpus=1,
            quiet=True,
            grace_seconds=0.5,
            on_event=events.append,
        )
        frame = store.trials_frame().set_index("arm")
        assert (summary.ok, summary.diverged, summary.failed, summary.timeout) == (7, 1, 2, 1), frame[
            "error"
        ].to_string()
        _same_trials(store, local_reference, {trial.hash for trial in mixed_trials()})  # bit-identical metrics

        assert frame.loc["crash-once", "status"] == "ok" and frame.loc["crash-once", "attempts"] == 2
        always = frame.loc["crash-always"]
        assert always["status"] == "failed" and always["attempts"] == 2
        assert always["error"].startswith("Ray actor died (") and "on each of 2 attempts" in always["error"]
        assert frame.loc["slow", "status"] == "timeout" and frame.loc["slow", "error"].startswith("killed after")
        # Results came back to the driver, which wrote them; the actors ran with one thread each.
        threads = {json.loads(text).get("threads") for text in frame["device"]} - {None}  # None: failed before training
        assert threads == {"1"}
    pids = {event.worker_pid for event in events if event.kind == "started"}
    assert os.getpid() not in pids and len(pids) >= 2  # trials ran in actor processes, more than one


RAY_DRIVER = textwrap.dedent("""
    import sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from test_runner import mixed_trials
    from harness.runner import run_trials
    from harness.store import Store

    with Store(sys.argv[3]) as store:
        run_trials(mixed_trials(), store, executor="ray", address=sys.argv[4], num_cpus=1, quiet=True)
""")


@pytest.mark.ray
@pytest.mark.slow  # a driver process on the cluster, killed, then a second run: 20-40 s on a shared 2-core machine
def test_ray_run_resumes_after_the_driver_is_killed(cluster: str, local_reference: Store, tmp_path: Path) -> None:
    script, directory = tmp_path / "driver.py", tmp_path / "store"
    script.write_text(RAY_DRIVER)
    driver = subprocess.Popen(
        [sys.executable, str(script), str(REPOSITORY), str(TESTS), str(directory), cluster],
        stderr=subprocess.PIPE,
    )
    assert wait_for(lambda: stored_count(directory) >= 2 or driver.poll() is not None)
    driver.kill()
    _, error = driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL, error.decode()
    count = stored_count(directory)
    assert 2 <= count < 8, f"the driver should be killed mid-run, but {count} of 8 trials were stored"

    with Store(directory) as store:
        assert store.integrity_check() == "ok"
        final_before = store.finished(
            trial.hash for trial in mixed_trials()
        )  # the failed trial is not final: it runs again
        summary = run_trials(mixed_trials(), store, executor="ray", address=cluster, num_cpus=1, quiet=True)
        assert summary.total == 8 and summary.skipped == len(final_before) >= count - 1
        _same_trials(store, local_reference, {trial.hash for trial in mixed_trials()})
        assert store.integrity_check() == "ok" and store.leases_frame().empty


@pytest.mark.ray
def test_a_trial_asking_more_than_the_cluster_has_is_refused(cluster: str, tmp_path: Path) -> None:
    # Ray would keep such an actor pending forever: the run stops at once instead.
    with Store(tmp_path) as store:
        with pytest.raises(HarnessError) as caught:
            run_trials([make_trial("a", 0)], store, executor="ray", address=cluster, num_gpus=1, quiet=True)
        assert store.trials_frame().empty and store.leases_frame().empty
    assert "--num-gpus: each trial reserves 1 GPU(s), but the Ray cluster has 0 in all" in str(caught.value)


# -- a node lost in the middle of a run ----------------------------------------------------------------------------

LOST_NODE_SUITE = """\
name: nodes
dataset: iris
model:
  mlp: {hidden: [64]}
loss: cross_entropy
optimizer: {name: sgd, lr: 0.05}
initializer: he_normal
training: {epochs: 60, batch_size: 4}
backends: [torch]
seeds: 8
"""  # 8 trials of about a second each on one thread: several are recorded before and after a kill
LOST_NODE_TRIALS = 8


def _ray_node(*arguments: str) -> subprocess.Popen:
    """`ray start --block ARGUMENTS` in a session of its own (its pid is the session id), up when it returns."""
    started = time.monotonic()
    node = subprocess.Popen(
        ["ray", "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *arguments],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    log: list[str] = []
    assert node.stdout is not None
    for line in node.stdout:
        log.append(line)
        if "Ray runtime started" in line or time.monotonic() - started > START_SECONDS:
            break
    assert any("Ray runtime started" in line for line in log), "".join(log)
    return node


def _end_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(30)


def _session_runs_an_actor(session: int) -> bool:
    """Whether a harness trial actor (a `ray::TrialActor` process) runs in the node's session."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session and b"TrialActor" in command:  # field 6 of stat: the session id
            return True
    return False


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A head node and a worker node on this machine, one CPU each: {'address', 'head', 'worker'}."""
    pytest.importorskip("ray")
    if shutil.which("ray") is None:
        pytest.skip("the `ray` command is not on PATH")
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    port = _free_port()
    ports = ["--dashboard-agent-listen-port", _free_port(), "--dashboard-agent-grpc-port", _free_port()]
    ports += ["--metrics-export-port", _free_port(), "--runtime-env-agent-port", _free_port()]
    head = _ray_node(
        "--head",
        "--num-cpus",
        "1",
        "--port",
        port,
        "--include-dashboard=false",
        "--temp-dir",
        temp_dir,
        "--ray-client-server-port",
        _free_port(),
        *ports,
    )
    nodes = {"address": f"127.0.0.1:{port}", "head": head}
    try:
        more = ["--dashboard-agent-listen-port", _free_port(), "--dashboard-agent-grpc-port", _free_port()]
        more += ["--metrics-export-port", _free_port(), "--runtime-env-agent-port", _free_port()]
        nodes["worker"] = _ray_node("--address", f"127.0.0.1:{port}", "--num-cpus", "1", *more)
        yield nodes
    finally:
        for name in ("worker", "head"):
            if name in nodes:
                _end_session(nodes[name])  # type: ignore[arg-type]
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nodes_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Store]]:
    """LOST_NODE_SUITE's file and its run here, uninterrupted (jobs=2: one thread per worker, as one CPU per actor)."""
    from harness.suite import load_suite

    folder = tmp_path_factory.mktemp("nodes")
    suite = folder / "nodes.yaml"
    suite.write_text(LOST_NODE_SUITE)
    store = Store(folder / "reference")
    assert run_trials(load_suite(suite).trials, store, jobs=2, quiet=True, vectorize="off").ok == LOST_NODE_TRIALS
    yield suite, store
    store.close()


def _finish(run: subprocess.Popen) -> tuple[str, str]:
    """The run's output once it exits; killed if it does not within WAIT_SECONDS (a hang fails the test, never stalls it)."""
    try:
        return run.communicate(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        run.kill()
        _output, error = run.communicate()
        raise AssertionError(f"the run did not end within {WAIT_SECONDS} s:\n{error[-3000:]}") from None


def _harness_run(suite: Path, store: Path, *extra: str) -> subprocess.Popen:
    # trials alone: these tests lose a node once two trials are recorded, which needs trials recorded one by
    # one (a stacked group records its members together, at its end)
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(suite),
        "--store",
        str(store),
        "--quiet",
        "--vectorize",
        "off",
    ]
    command += extra
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.ray
@pytest.mark.slow  # two nodes, a run, a node killed: 40-60 s on a shared 2-core machine
def test_a_worker_node_lost_mid_run_has_its_trial_retried_and_the_run_completes(
    two_nodes: dict[str, object], nodes_suite: tuple[Path, Store], tmp_path: Path
) -> None:
    suite, reference = nodes_suite
    worker: subprocess.Popen = two_nodes["worker"]  # type: ignore[assignment]
    store = tmp_path / "store"
    run = _harness_run(suite, store, "--executor", "ray", "--address", str(two_nodes["address"]), "--num-cpus", "1")
    # Killed while its actor trains a trial and trials are left: the trial in flight there is lost with it.
    assert wait_for(lambda: (_session_runs_an_actor(worker.pid) and stored_count(store) >= 1) or run.poll() is not None)
    assert stored_count(store) < LOST_NODE_TRIALS - 1, "the run ended before the node could be killed"
    _end_session(worker)
    _, error = _finish(run)
    # Before: the retry went to a new actor that Ray could not place (the one CPU left held by this run's
    # idle actor), and the run waited forever with 7 of 8 trials recorded.
    assert run.returncode == 0, error
    with Store(store) as resumed:
        trials = resumed.trials_frame()
        assert len(trials) == LOST_NODE_TRIALS and set(trials["status"]) == {"ok"}, trials[["seed", "error"]]
        assert trials["attempts"].max() <= 2 and resumed.integrity_check() == "ok" and resumed.leases_frame().empty
        _same_trials(resumed, reference, set(trials["hash"]))


@pytest.mark.ray
@pytest.mark.slow  # two nodes, a run, the head killed, a local rerun: 40-60 s on a shared 2-core machine
def test_the_head_node_lost_mid_run_stops_the_run_with_exit_5_and_a_rerun_completes(
    two_nodes: dict[str, object], nodes_suite: tuple[Path, Store], tmp_path: Path
) -> None:
    suite, reference = nodes_suite
    head: subprocess.Popen = two_nodes["head"]  # type: ignore[assignment]
    store = tmp_path / "store"
    run = _harness_run(suite, store, "--executor", "ray", "--address", str(two_nodes["address"]), "--num-cpus", "1")
    assert wait_for(lambda: stored_count(store) >= 2 or run.poll() is not None)
    _end_session(head)  # the GCS, the head's raylet and its actors
    killed_at = time.monotonic()
    output, error = _finish(run)
    # Before: Ray ended the driver 60 s later ("Failed to connect to GCS within 60 seconds"), exit 1, no advice.
    assert run.returncode == EXIT_CLUSTER_LOST, error
    assert time.monotonic() - killed_at < 30
    assert "Traceback" not in error and "stopped answering in the middle of the run" in error
    assert "run the same command again" in error
    recorded = stored_count(store)
    assert 2 <= recorded < LOST_NODE_TRIALS
    with Store(store) as interrupted:
        assert interrupted.integrity_check() == "ok" and interrupted.leases_frame().empty

    # The rest on a fresh executor: the local one (jobs 2: one thread per worker, as one CPU per actor).
    rerun = _harness_run(suite, store, "--jobs", "2")
    output, error = _finish(rerun)
    assert rerun.returncode == 0, error
    assert f"{LOST_NODE_TRIALS} trials: {recorded} already in the store" in output
    with Store(store) as resumed:
        trials = resumed.trials_frame()
        assert (trials["attempts"] == 1).all() and resumed.leases_frame().empty
        _same_trials(resumed, reference, set(trials["hash"]))
