"""Warm spare workers, kept between commands by a background server (`harness workers start`).

A `harness run` spends most of its fixed cost starting workers: a fresh interpreter imports its framework
(torch ~1 s, TensorFlow ~5 s) before the first trial can start. With a worker server running, the pool
asks it first (`take`): the server hands over a worker it started earlier, already past its imports, by
passing the worker's end of a socket pair over a Unix socket (SCM_RIGHTS), and starts a replacement for
the next command. A command that finds no server, no spare of the kind it needs, or a server that does not
match it (see below) starts its own workers as always: the server only ever saves time.

A spare is handed only to a command that would have started the same worker itself: the same Python
interpreter and harness package (the socket's name), the same harness source (code_version digest: a
server whose files changed stops itself), the same working folder and environment variables (those a
shell changes by itself aside, VOLATILE_VARIABLES), and the same worker environment, threads, GPU and
preloaded backends. The server learns what to keep warm from what commands ask for: each request it
cannot serve adds one spare of that kind (up to MAX_SPARES), so the first command after `start` runs
cold and the next ones warm. Spares start only once every command that asked has ended (its process id
read from the socket's peer credentials), so their imports never take cores from a running command. It
stops after `idle_seconds` without a request, or on `harness workers stop`.

A handed-over worker is not the command's child: the command watches it through a pidfd (Linux 5.3+;
elsewhere the server is not used), kills it by pid, and cannot read its exit status (the server reaps it).
Spares' output (framework warnings) goes to the server's log file, not to the command's terminal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import harness
from harness.runner.code_version import PROCESS_CODE_VERSION, CodeVersion
from harness.runner.environment import Environment, worker_variables

__all__ = [
    "MAX_SPARES",
    "AdoptedProcess",
    "ServerStatus",
    "server_status",
    "socket_path",
    "start_server",
    "stop_server",
    "supported",
    "take",
]

MAX_SPARES = 8  # most spares of one kind the server keeps
IDLE_SECONDS = 1800.0  # the server stops after this long without a request
CONNECT_SECONDS = 2.0  # how long a command waits for the server's answer before starting its own worker
# Variables a shell sets or changes by itself, which no worker reads: left out of the environment match.
VOLATILE_VARIABLES = frozenset({"_", "OLDPWD", "PWD", "SHLVL", "PYTEST_CURRENT_TEST", "COLUMNS", "LINES"})


def supported() -> bool:
    """Whether this platform can adopt another process's worker: Unix sockets with fd passing and pidfds."""
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


SOCKET_PATH_LIMIT = 100  # bytes: a Unix socket's path must fit sockaddr_un (108 on Linux, 104 on macOS)


def socket_path() -> Path:
    """The server's socket for this interpreter and harness package (one server per pair), in a folder of
    this user's alone: under XDG_RUNTIME_DIR, else the temporary folder, else /tmp where those are too long
    for a socket's path."""
    interpreter = Path(sys.executable).resolve()  # `python` and `python3.11` (or a console script's) are one
    key = hashlib.sha256(f"{interpreter}\0{Path(harness.__file__).resolve().parent}".encode()).hexdigest()[:16]
    name = Path(f"harness-{os.getuid()}") / f"workers-{key}.sock"
    for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and len(os.fsencode(Path(base) / name)) <= SOCKET_PATH_LIMIT:
            return Path(base) / name
    return Path("/tmp") / name


def _private(folder: Path) -> bool:
    """Whether the socket's folder is this user's alone (no one else could have put a server there)."""
    try:
        info = folder.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o077


def environment_digest() -> str:
    """A digest of the environment variables a worker would inherit (VOLATILE_VARIABLES left out)."""
    kept = sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE_VARIABLES)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SpareKind:
    """What makes two workers interchangeable, as the server keys its spares."""

    keras_backend: str
    gpus: str
    threads: int
    visible_devices: str | None
    preload: tuple[str, ...]

    @property
    def environment(self) -> Environment:
        return Environment(self.keras_backend, self.gpus)


# -- the command's side -----------------------------------------------------------------------------------


class AdoptedProcess:
    """A worker process another process started, as much of multiprocessing.Process as the pool uses.

    Its death is seen through a pidfd (readable once the process has exited); its exit status belongs to
    its parent (the server), so the pool words the cause itself (pool.Worker.exit_cause)."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.sentinel = pidfd
        self.killed = False

    def is_alive(self) -> bool:
        return not select.select([self.sentinel], [], [], 0)[0]

    def kill(self) -> None:
        self.killed = True
        try:
            signal.pidfd_send_signal(self.sentinel, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass

    def join(self, timeout: float | None = None) -> None:
        select.select([self.sentinel], [], [], timeout)

    def close(self) -> None:
        try:
            os.close(self.sentinel)
        except OSError:
            pass


def take(kind: SpareKind, code: CodeVersion | None) -> tuple[Connection, AdoptedProcess] | None:
    """A warm worker of this kind from the server, or None (no server, none of this kind, a mismatch, any
    error): the caller then starts its own. Never raises for the server's sake."""
    path = socket_path()
    if not supported() or code is None or not path.exists() or not _private(path.parent):
        return None
    request = {
        "op": "take",
        "kind": dataclasses.asdict(kind),
        "code": code.digest,
        "cwd": os.getcwd(),
        "environment": environment_digest(),
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_SECONDS)
            client.connect(str(path))
            client.sendall(json.dumps(request).encode() + b"\n")
            message, fds, _, _ = socket.recv_fds(client, 65536, 1)
    except OSError:
        return None
    try:
        reply = json.loads(message.decode() or "{}")
    except ValueError:
        reply = {}
    if not fds:
        return None
    pid = reply.get("pid")
    try:
        if not isinstance(pid, int):
            raise ProcessLookupError(pid)
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        for fd in fds:
            os.close(fd)
        return None
    return Connection(fds[0]), AdoptedProcess(pid, pidfd)


@dataclass(frozen=True)
class ServerStatus:
    """What `harness workers status` prints."""

    pid: int
    cwd: str
    started: float
    idle_seconds: float
    spares: dict[str, int]  # kind, as text -> spares alive
    handed: int  # workers handed over so far


def _read_line(connection: socket.socket) -> str:
    """One newline-ended JSON message (the protocol's unit), read until its newline or the peer's end."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def _ask(op: str) -> dict[str, Any] | None:
    path = socket_path()
    if not path.exists() or not _private(path.parent):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_SECONDS)
            client.connect(str(path))
            client.sendall(json.dumps({"op": op}).encode() + b"\n")
            answer = json.loads(_read_line(client) or "{}")
        return answer if isinstance(answer, dict) else None
    except (OSError, ValueError):
        return None


def server_status() -> ServerStatus | None:
    """The running server's status, None when none answers."""
    answer = _ask("status")
    if answer is None or "pid" not in answer:
        return None
    return ServerStatus(
        answer["pid"], answer["cwd"], answer["started"], answer["idle_seconds"], answer["spares"], answer["handed"]
    )


def stop_server() -> bool:
    """Ask the server to stop (its spares are killed); False when none was running."""
    return _ask("stop") is not None


def start_server(idle_seconds: float = IDLE_SECONDS, wait_seconds: float = 10.0) -> ServerStatus:
    """Start the server in the background for this folder and environment (or find it running) and return its
    status once it answers.

    Raises:
        RuntimeError: the platform cannot pass workers between processes, or the server did not answer in
            `wait_seconds` (its log file is named).
    """
    if not supported():
        raise RuntimeError("this platform cannot hand workers between processes (needs Linux 5.3+ pidfds)")
    running = server_status()
    if running is not None:
        return running
    path = socket_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(path.parent):
        raise RuntimeError(f"{path.parent} is not this user's alone (owner or permissions); remove it and retry")
    log = path.with_suffix(".log")
    with open(log, "ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "harness.runner.spares", "serve", str(idle_seconds)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,  # Ctrl-C in the terminal that started it does not reach it
        )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        status = server_status()
        if status is not None:
            return status
        if server.poll() is not None:
            last = (log.read_text(errors="replace").strip().splitlines() or ["(nothing logged)"])[-1]
            raise RuntimeError(f"the worker server exited at start ({last}); its log: {log}")
        time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"the worker server did not answer within {wait_seconds:.0f} s; its log: {log}")


# -- the server's side ------------------------------------------------------------------------------------


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    connection: socket.socket  # the server's copy of the worker's end, handed over as it is


class _Server:
    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.started = time.time()
        self.last_request = time.monotonic()
        self.cwd = os.getcwd()
        self.environment = environment_digest()
        self.spares: dict[SpareKind, list[_Spare]] = {}
        self.wanted: dict[SpareKind, int] = {}
        self.handed: list[subprocess.Popen[bytes]] = []  # reaped as they exit
        self.clients: set[int] = set()  # process ids of the commands that asked, while they run
        self.handed_count = 0

    def serve(self) -> None:
        path = socket_path()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(16)
        try:
            while time.monotonic() - self.last_request < self.idle_seconds:
                if select.select([listener], [], [], 1.0)[0]:
                    client, _ = listener.accept()
                    with client:
                        if self._answer(client):
                            return
                self._tend()
        finally:
            try:
                path.unlink()  # first: a command that finds no socket file asks nothing
            except FileNotFoundError:
                pass
            listener.close()
            for spares in self.spares.values():
                for spare in spares:
                    spare.process.kill()
                    spare.connection.close()

    def _answer(self, client: socket.socket) -> bool:
        """Answer one request; True when the server is to stop (asked to, or stale)."""
        client.settimeout(CONNECT_SECONDS)
        try:
            request = json.loads(_read_line(client) or "{}")
        except (OSError, ValueError):
            return False
        if not isinstance(request, dict):
            return False
        self.last_request = time.monotonic()
        op = request.get("op")
        pid, uid, _ = struct.unpack("3i", client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            return False  # the folder is this user's alone; this is a second guard
        if op == "take":
            self.clients.add(pid)
        try:
            if op == "status":
                self._reply(client, self._status())
            elif op == "stop":
                self._reply(client, {"stopping": True})
            elif op == "take":
                return self._take(client, request)
        except OSError:
            pass
        except (KeyError, TypeError, ValueError):  # a malformed request: answered, and the server goes on
            try:
                self._reply(client, {"refused": "malformed request"})
            except OSError:
                pass
            return False
        return op == "stop"

    def _take(self, client: socket.socket, request: dict[str, Any]) -> bool:
        """Hand over a spare of the asked kind, or say why not; True when this server is stale."""
        fields = request["kind"]
        kind = SpareKind(
            str(fields["keras_backend"]),
            str(fields["gpus"]),
            int(fields["threads"]),
            None if fields["visible_devices"] is None else str(fields["visible_devices"]),
            tuple(str(name) for name in fields["preload"]),
        )
        code = request["code"]
        if not isinstance(code, str):
            raise TypeError("code")
        if code != PROCESS_CODE_VERSION.digest:
            self._reply(client, {"refused": "the harness code changed since the server started"})
            return True  # stale: a command with the new code starts its own workers
        if request.get("cwd") != self.cwd or request.get("environment") != self.environment:
            self._reply(client, {"refused": "another folder or environment than the server's"})
            return False
        spares = [spare for spare in self.spares.get(kind, []) if spare.process.poll() is None]
        if not spares:
            self.spares[kind] = []
            self.wanted[kind] = min(MAX_SPARES, self.wanted.get(kind, 0) + 1)
            self._reply(client, {"refused": "no spare of this kind yet"})
            self._tend()
            return False
        spare = spares.pop(0)
        self.spares[kind] = spares
        socket.send_fds(client, [json.dumps({"pid": spare.process.pid}).encode()], [spare.connection.fileno()])
        spare.connection.close()
        self.handed.append(spare.process)
        self.handed_count += 1
        self._tend()
        return False

    @staticmethod
    def _reply(client: socket.socket, answer: dict[str, Any]) -> None:
        client.sendall(json.dumps(answer).encode() + b"\n")

    def _status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "cwd": self.cwd,
            "started": self.started,
            "idle_seconds": self.idle_seconds,
            "spares": {
                f"{kind.environment} threads={kind.threads} preload={','.join(kind.preload) or '-'}": sum(
                    spare.process.poll() is None for spare in spares
                )
                for kind, spares in self.spares.items()
            },
            "handed": self.handed_count,
        }

    def _tend(self) -> None:
        """Reap exited workers, drop dead spares, and start spares up to what commands asked for, but only
        once every command that asked has ended: a command still running would share its cores with the
        spares' imports (measured on 2 cores: warm runs of 24 trials were slower than cold ones)."""
        self.handed = [process for process in self.handed if process.poll() is None]
        from harness.store.leases import lease_owner_alive  # here: a spare worker imports this module, not the store

        self.clients = {pid for pid in self.clients if lease_owner_alive(socket.gethostname(), pid, None)}
        busy = bool(self.clients)
        for kind, spares in self.spares.items():
            alive = []
            for spare in spares:
                if spare.process.poll() is None:
                    alive.append(spare)
                else:
                    spare.connection.close()
            while not busy and len(alive) < self.wanted.get(kind, 0):
                alive.append(self._spawn(kind))
            self.spares[kind] = alive

    def _spawn(self, kind: SpareKind) -> _Spare:
        ours, theirs = socket.socketpair()
        variables = worker_variables(kind.environment, kind.threads, kind.visible_devices)
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.runner.spare_worker", str(theirs.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=[theirs.fileno()],
            env={**os.environ, **variables},
        )
        theirs.close()
        assert process.stdin is not None
        process.stdin.write(pickle.dumps((kind.threads, PROCESS_CODE_VERSION, kind.preload)))
        process.stdin.close()
        return _Spare(process, ours)


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["serve"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _Server(float(argv[1]) if len(argv) > 1 else IDLE_SECONDS).serve()
    else:
        raise SystemExit("usage: python -m harness.runner.spares serve [IDLE_SECONDS]")


if __name__ == "__main__":
    main(sys.argv[1:])
