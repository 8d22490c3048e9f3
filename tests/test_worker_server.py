"""The worker server (harness.runner.spares, `harness workers`): a real background server hands warm workers to
real `harness run` commands, which give the same results as with their own workers; a server that does not
match a command (other code, folder) is not used; an adopted worker is watched, killed and reaped by pidfd."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.runner import spares
from harness.runner.code_version import PROCESS_CODE_VERSION
from harness.runner.spares import AdoptedProcess, SpareKind
from harness.store import Store
from tests.helpers.suites import optimizer_grid_suite

pytestmark = pytest.mark.skipif(not spares.supported(), reason="needs Linux pidfds and fd passing")

SUITE = optimizer_grid_suite(
    "warm",
    "Two arms, two seeds, one epoch.",
    dataset="{name: iris, validation: 0.2}",
    model="{mlp: {hidden: [8]}}",
    training="{epochs: 1, batch_size: 16}",
    seeds=2,
    arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """This test's own socket folder (XDG_RUNTIME_DIR), here and in the commands it starts; the server stopped
    at the end whatever happened."""
    runtime = Path(tempfile.mkdtemp(prefix="hw", dir="/tmp"))  # short: a socket's path holds ~100 bytes
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        spares.stop_server()
        shutil.rmtree(runtime, ignore_errors=True)


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=dict(os.environ), timeout=300
    )


def final_metrics(store: Path) -> dict[str, float]:
    with Store(store) as opened:
        metrics = opened.metrics_frame()
    last = metrics[metrics["epoch"] == metrics["epoch"].max()]
    return {f"{row.hash}/{row.metric}": row.value for row in last.itertuples() if "seconds" not in row.metric}


def wait_for_spares(count: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = spares.server_status()
        if status is not None and sum(status.spares.values()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server did not start {count} spare(s): {spares.server_status()}")


def test_runs_take_warm_workers_from_the_server_and_get_the_same_results(isolated):
    (isolated / "warm.yaml").write_text(SUITE)
    started = harness("workers", "start", "--idle-minutes", "2")
    assert started.returncode == 0 and "worker server running" in started.stdout, started.stderr

    cold = harness("run", "warm.yaml", "--store", "cold", "--jobs", "1")
    assert cold.returncode == 0, cold.stderr
    assert "warm from the worker server" not in cold.stdout  # the first run teaches the server what to keep
    wait_for_spares(1)
    warm = harness("run", "warm.yaml", "--store", "warm", "--jobs", "1")
    assert warm.returncode == 0, warm.stderr
    assert "workers: 1 warm from the worker server" in warm.stdout
    assert final_metrics(isolated / "warm") == final_metrics(isolated / "cold")  # the same trials, the same numbers

    status = harness("workers", "status")
    assert "1 handed over" in status.stdout and "threads=" in status.stdout
    assert harness("workers", "stop").stdout.strip() == "worker server stopped"
    assert "no worker server is running" in harness("workers", "status").stdout
    assert harness("workers", "stop").stdout.strip() == "no worker server was running"


def kind() -> SpareKind:
    return SpareKind("default", "inherit", 1, None, ())


def ask_from_a_command() -> None:
    """A miss asked by another process that then ends, as a cold `harness run` does: the server starts a
    spare of the kind once that process is gone (never while a command that asked still runs)."""
    code = (
        "from harness.runner import spares; from harness.runner.code_version import PROCESS_CODE_VERSION\n"
        "assert spares.take(spares.SpareKind('default', 'inherit', 1, None, ()), PROCESS_CODE_VERSION) is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ), timeout=60)


def test_a_server_started_with_other_code_or_from_another_folder_is_not_used(isolated, tmp_path):
    spares.start_server(idle_seconds=120)
    ask_from_a_command()
    wait_for_spares(1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert spares.take(kind(), PROCESS_CODE_VERSION) is None  # another folder: relative paths would differ
    os.chdir(isolated)
    assert spares.server_status() is not None  # ... which does not stop it
    edited = dataclasses.replace(PROCESS_CODE_VERSION, digest="0" * 16)
    assert spares.take(kind(), edited) is None  # another harness source: the server is stale and stops
    deadline = time.monotonic() + 10
    while spares.socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spares.server_status() is None and not spares.socket_path().exists()


def test_an_adopted_worker_is_the_spare_the_server_started(isolated):
    spares.start_server(idle_seconds=120)
    ask_from_a_command()
    wait_for_spares(1)
    adopted = spares.take(kind(), PROCESS_CODE_VERSION)
    assert adopted is not None
    connection, process = adopted
    try:
        assert process.is_alive() and process.pid != os.getpid()
        connection.send(None)  # the worker protocol's "stop": it exits, and its pidfd says so
        process.join(30)
        assert not process.is_alive()
    finally:
        connection.close()
        process.close()


def test_an_adopted_process_is_watched_killed_and_joined_through_its_pidfd():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process = AdoptedProcess(child.pid, os.pidfd_open(child.pid))
    try:
        assert process.is_alive()
        process.kill()
        assert child.wait(timeout=10) == -signal.SIGKILL  # the parent (here: this test) reads the status
        process.join(10)
        assert not process.is_alive() and process.killed
    finally:
        process.close()
        if child.poll() is None:
            child.kill()


def test_a_socket_folder_too_long_for_a_socket_falls_back_to_a_shorter_one(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 120)))
    path = spares.socket_path()
    assert len(os.fsencode(path)) <= spares.SOCKET_PATH_LIMIT and path.name.startswith("workers-")


def test_no_spare_starts_while_a_command_that_asked_still_runs(isolated):
    spares.start_server(idle_seconds=120)
    assert spares.take(kind(), PROCESS_CODE_VERSION) is None  # asked by this process, which goes on running
    time.sleep(2.5)  # the server tends its spares every second
    status = spares.server_status()
    assert status is not None and sum(status.spares.values()) == 0  # its imports would slow this "command"


def test_a_malformed_request_is_refused_and_the_server_goes_on(isolated):
    import json
    import socket

    spares.start_server(idle_seconds=120)
    for message in (b"not json\n", b"[1, 2]\n", json.dumps({"op": "take", "kind": {"threads": "x"}}).encode() + b"\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(spares.socket_path()))
            client.sendall(message)
            client.recv(4096)  # an answer or the end of the connection, never a hang
    assert spares.server_status() is not None
