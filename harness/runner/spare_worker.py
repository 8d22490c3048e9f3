"""A spare worker's entry (started by the worker server, harness.runner.spares): the worker loop on the socket the
server passed, with its settings from stdin. Apart from the server's module, so a spare imports what a worker
started by `harness run` imports (harness.runner.worker), not the server's driver-side imports."""

from __future__ import annotations

import pickle
import sys
from multiprocessing.connection import Connection

from harness.runner.worker import worker_main


def main(fd: int) -> None:
    threads, code, preload = pickle.loads(sys.stdin.buffer.read())
    worker_main(Connection(fd), threads, code, tuple(preload))


if __name__ == "__main__":
    main(int(sys.argv[1]))
