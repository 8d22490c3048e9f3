"""`harness list`: shipped suites, datasets, components and backends."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import path_option


@click.command(name="list")
@click.argument("what", type=click.Choice(["all", "suites", "datasets", "components", "backends"]), default="all")
@path_option("--suites-dir", default=Path("suites"))
def list_command(what: str, suites_dir: Path) -> None:
    """List shipped suites, datasets, components (with their canonical formulas) and backends.

    \b
    Example:
      harness list components
    """
    from harness.listing import list_backends, list_components, list_datasets_text, list_suites

    sections = {
        "suites": lambda: list_suites(suites_dir),
        "datasets": list_datasets_text,
        "components": list_components,
        "backends": list_backends,
    }
    for name, render in sections.items():
        if what in ("all", name):
            click.echo(render())
