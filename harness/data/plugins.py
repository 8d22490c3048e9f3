"""Datasets and models that installed packages register by name, through entry points.

A package declares, in its pyproject.toml:

    [project.entry-points."harness.datasets"]
    my_benchmark = "mypkg.data:load_arrays"     # the dataset plug-in protocol (harness.data.user_files)

    [project.entry-points."harness.models"]
    my_net = "mypkg.nets"                       # a module with make_torch and/or make_keras factories

and once it is installed `dataset: my_benchmark` (or `{name: my_benchmark, args: {...}}`) works.
Only the entry points' metadata is read to list or find them; the code is imported when a suite uses it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from importlib import metadata
from typing import Any

GROUPS = ("harness.datasets", "harness.models")


def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """The entry points of `group` by name (first one wins when two packages register a name)."""
    found: dict[str, metadata.EntryPoint] = {}
    for point in metadata.entry_points(group=group):
        found.setdefault(point.name, point)
    return found


def origin(point: metadata.EntryPoint) -> str:
    """'package version' that registered an entry point, for `harness list`."""
    distribution = getattr(point, "dist", None)
    if distribution is None:
        return "entry point"
    return f"{distribution.metadata['Name']} {distribution.version}"


def registered_dataset(raw: Any, builtin: Collection[str]) -> dict[str, Any] | None:
    """A dataset named by an entry point, as a `{python: ..., args: ...}` mapping; None otherwise.

    `raw` is a name or a mapping with `name` (its other keys: args, task, split, standardize).
    Built-in names always win (`builtin`), so installing a package never changes an existing suite.
    """
    if isinstance(raw, str):
        name, given = raw, {}
    elif isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        given = dict(raw)
        name = given.pop("name")
    else:
        return None
    if name in builtin:
        return None
    point = entry_points("harness.datasets").get(name)
    if point is None:
        return None
    return {"python": point.value, **given}
