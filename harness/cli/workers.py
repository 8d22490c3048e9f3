"""`harness workers`: a background server that keeps warm workers between `harness run` commands."""

from __future__ import annotations

import time

import click

from harness.errors import HarnessError


@click.group()
def workers() -> None:
    """Keep warm workers between commands, so a `harness run` need not start its own.

    A worker imports its framework before its first trial (torch ~1 s, TensorFlow ~5 s). With the
    server running, `harness run` takes workers the server started earlier, and the server starts
    replacements for the next command. It learns what to keep from what commands ask for: the first
    run after `start` is cold, the following ones warm. Spares serve only commands run from the same
    folder, environment variables, Python and harness code as the server (any other starts its own
    workers); they stop after --idle-minutes without a request, or on `harness workers stop`.

    \b
    Example:
      harness workers start
      harness run suites/smoke.yaml      # cold: the server learns what it needs
      harness run suites/smoke.yaml      # warm: "workers: 2 warm from the worker server"
      harness workers stop
    """


@workers.command()
@click.option(
    "--idle-minutes",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Stop after this long without a request.",
)
def start(idle_minutes: float) -> None:
    """Start the worker server for this folder and environment (or show the one running)."""
    from harness.runner.spares import start_server

    try:
        status = start_server(idle_seconds=idle_minutes * 60)
    except RuntimeError as error:
        raise HarnessError(f"harness workers start: {error}") from None
    click.echo(
        f"worker server running (pid {status.pid}) for {status.cwd}; stops after {status.idle_seconds / 60:g} min idle"
    )


@workers.command()
def status() -> None:
    """Show the worker server's spares and how many workers it handed over."""
    from harness.runner.spares import server_status, socket_path

    running = server_status()
    if running is None:
        click.echo(f"no worker server is running (socket {socket_path()})")
        return
    minutes = (time.time() - running.started) / 60
    click.echo(f"worker server pid {running.pid} for {running.cwd}, up {minutes:.1f} min, {running.handed} handed over")
    for kind, count in sorted(running.spares.items()):
        click.echo(f"  {count} spare(s): {kind}")


@workers.command()
def stop() -> None:
    """Stop the worker server and its spares (workers already handed over finish their runs)."""
    from harness.runner.spares import stop_server

    click.echo("worker server stopped" if stop_server() else "no worker server was running")
