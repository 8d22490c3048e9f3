"""Per-arm hyperparameter search: a planner between the suite and the runner (see `planner`).

Modules: sampling (Optuna samplers driven deterministically, range narrowing), planner (rounds
of ordinary trials, pruning, the chosen configuration per arm, the final trials, the tables).
Optuna is imported only when a search runs (`pip install "harness[search]"`).
"""

from __future__ import annotations

from harness.search.planner import SearchOutcome, plan_search, steps_per_epoch, stored_tables
from harness.search.tables import PRUNED, SearchTables, read_tables

__all__ = ["PRUNED", "SearchOutcome", "SearchTables", "plan_search", "read_tables", "steps_per_epoch", "stored_tables"]
