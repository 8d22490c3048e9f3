"""The search tables: which ordinary trials a hyperparameter search ran (arm, round, configuration,
seed, sampled values) and the ranges each round sampled in. Written by the planner
(`harness.search`) before a round runs, read back to build `search.csv` and the report.

The trials themselves are ordinary rows of `trials` (the same hash, metrics, status): these
tables only mark them, so the store stays the one source of values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.store.connection import StoreConnection
from harness.store.schema import SEARCH_ROUND_COLUMNS, SEARCH_TRIAL_COLUMNS

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: opening a store needs no pandas


class SearchTable(StoreConnection):
    """The search part of `harness.store.Store`."""

    def mark_search(
        self, rows: Iterable[Sequence[Any]], ranges: Iterable[tuple[str, str, int, Mapping[str, Any]]]
    ) -> None:
        """Record a round's search trials (rows in SEARCH_TRIAL_COLUMNS order, params a mapping) and the
        ranges it samples in ((suite, arm, round, {path: range})), in ONE transaction. Marking again
        replaces: the planner recomputes the same rows from the same suite and stored results."""
        trial_rows = [(*row[:7], json.dumps(row[7], sort_keys=True)) for row in rows]
        range_rows = [
            (suite, arm, index, json.dumps(dict(value), sort_keys=True)) for suite, arm, index, value in ranges
        ]
        with self._transaction() as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO search_trials ({', '.join(SEARCH_TRIAL_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                trial_rows,
            )
            connection.executemany(
                f"INSERT OR REPLACE INTO search_rounds ({', '.join(SEARCH_ROUND_COLUMNS)}) VALUES (?, ?, ?, ?)",
                range_rows,
            )

    def search_trials_frame(self, suite: str) -> pd.DataFrame:
        """The marks of one suite's search trials, columns SEARCH_TRIAL_COLUMNS (params as JSON text),
        ordered by arm, phase, round, trial, seed."""
        import pandas as pd

        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(SEARCH_TRIAL_COLUMNS)} FROM search_trials WHERE suite = ? "
                "ORDER BY arm, phase, round, trial, seed",
                (suite,),
            ).fetchall()
        return pd.DataFrame(rows, columns=list(SEARCH_TRIAL_COLUMNS))

    def search_rounds_frame(self, suite: str) -> pd.DataFrame:
        """The ranges of one suite's search rounds, columns SEARCH_ROUND_COLUMNS (ranges as JSON text)."""
        import pandas as pd

        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(SEARCH_ROUND_COLUMNS)} FROM search_rounds WHERE suite = ? ORDER BY arm, round",
                (suite,),
            ).fetchall()
        return pd.DataFrame(rows, columns=list(SEARCH_ROUND_COLUMNS))
