"""Write a `Results`' tables to a folder: CSV always, a Parquet copy when pyarrow is installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from harness.analysis.results import Results


def parquet_available() -> bool:
    """True when pyarrow can be imported (pandas' Parquet engine); checked without importing it."""
    return importlib.util.find_spec("pyarrow") is not None


def table_builders(results: Results) -> dict[str, Callable[[], pd.DataFrame]]:
    """File stem -> table, for the tables that apply to this suite (see `Results.write_csv`)."""
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "epochs": results.epochs,
        "final": results.final,
        "summary": results.summary,
    }
    if len(results.arms) > 1:
        builders["comparisons"] = results.comparisons
    if len(results.backends) > 1:
        builders["backend_deltas"] = results.backend_deltas
    if results.targets:
        builders["time_to_target"] = results.time_to_target
        builders["time_to_target_summary"] = results.time_to_target_summary
    if len(results.axes) == 2:
        builders["pivot"] = lambda: results.pivot().reset_index()
    search = results.search
    if search is not None:  # search.csv, chosen.csv, search_budget.csv, search_ranges.csv, search_curves.csv
        from harness.search.tables import FILES

        for attribute, name in FILES.items():
            builders[name.removesuffix(".csv")] = partial(getattr, search, attribute)
    return builders


def write_tables(results: Results, directory: Path) -> list[Path]:
    """Write every applicable table as <stem>.csv (and <stem>.parquet); return the paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    with_parquet = parquet_available()
    written: list[Path] = []
    for stem, build in table_builders(results).items():
        table = build()
        csv_path = directory / f"{stem}.csv"
        table.to_csv(csv_path, index=False)
        written.append(csv_path)
        if with_parquet:
            parquet_path = directory / f"{stem}.parquet"
            table.to_parquet(parquet_path, index=False)
            written.append(parquet_path)
    return written
