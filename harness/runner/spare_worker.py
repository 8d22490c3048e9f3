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
    if "torch" in preload:
        warm_torch_optimizers()
    worker_main(Connection(fd), threads, code, tuple(preload))


def warm_torch_optimizers() -> None:
    """Import torch._dynamo now, while no command waits. torch.optim's first optimizer imports it (its
    add_param_group is wrapped by torch._disable_dynamo, which imports dynamo on the first call): ~1 s of
    a worker's first lone torch trial here. A worker `harness run` starts itself leaves it to that trial,
    when the driver is idle: preloading it there would compete with the driver's own start on few cores."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # the trial imports it again and records the error as its own
        pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
