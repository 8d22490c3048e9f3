"""The search's tables, read from the store's search marks (the store is the source of truth):

    configurations  one row per sampled configuration: arm, round, trial, the values (one column per
                    path), the objective (mean over search seeds), status, rung_epoch, and the budget it
                    used (trials_run, optimizer_steps, train_seconds)            -> search.csv
    chosen          per arm: the chosen values, objective, round, trial, rank     -> chosen.csv
    budget          per arm: configurations, trials run, optimizer steps, train seconds -> search_budget.csv
    ranges          per arm, round and dimension: the range sampled in             -> search_ranges.csv
    curves          the objective's metric per epoch for each arm's best configurations -> search_curves.csv

The chosen configuration is the first of `rank_key`'s order, the rule the planner chooses by.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.measures import BEST_PREFIX, OK, PRUNED, is_higher_better

CONFIGURATION_KEYS = ("arm", "round", "trial")
CURVE_CONFIGURATIONS = 3  # learning curves of each arm's best k configurations
FILES = {
    "configurations": "search.csv",
    "chosen": "chosen.csv",
    "budget": "search_budget.csv",
    "ranges": "search_ranges.csv",
    "curves": "search_curves.csv",
}


def rank_key(objective: float, round_index: int, index: int, higher_is_better: bool) -> tuple[float, int, int]:
    """Sort key of a configuration, best first: its objective in the metric's direction, then the earlier
    round, then the lower index (ties are broken the same way every time). Only finite objectives rank."""
    return (-objective if higher_is_better else objective, round_index, index)


def best_first(configurations: pd.DataFrame, objective: str, higher_is_better: bool) -> list[dict[str, Any]]:
    """The rows with an objective, as records, in `rank_key` order."""
    records = [{str(k): v for k, v in r.items()} for r in configurations.to_dict("records") if pd.notna(r[objective])]
    return sorted(
        records, key=lambda r: rank_key(float(r[objective]), int(r["round"]), int(r["trial"]), higher_is_better)
    )


@dataclass(frozen=True)
class SearchTables:
    objective: str
    configurations: pd.DataFrame
    chosen: pd.DataFrame
    budget: pd.DataFrame
    ranges: pd.DataFrame
    curves: pd.DataFrame

    @property
    def dimensions(self) -> list[str]:
        """The searched paths, in the order their columns appear."""
        fixed = {*CONFIGURATION_KEYS, self.objective, "status", "rung_epoch", "trials_run", "optimizer_steps"}
        return [c for c in self.configurations.columns if c not in fixed and c != "train_seconds"]

    def write_csv(self, directory: Path) -> list[Path]:
        written = []
        for attribute, name in FILES.items():
            path = directory / name
            getattr(self, attribute).to_csv(path, index=False)
            written.append(path)
        return written


def objective_values(
    trials: pd.DataFrame, metrics: pd.DataFrame, hashes: Sequence[str], objective: str
) -> tuple[dict[str, str], dict[str, float]]:
    """Each trial's status and objective (NaN unless 'ok'): `validation_<m>` at its last epoch,
    `best_validation_<m>` its best finite value over epochs 1.. (epoch 0 is the untrained network)."""
    statuses = dict(zip(trials["hash"], trials["status"]))
    metric = objective.removeprefix(BEST_PREFIX)
    values: dict[str, float] = {}
    if not metrics.empty:
        last = metrics.groupby("hash")["epoch"].max()
        mine = metrics[metrics["metric"] == metric]
        if objective.startswith(BEST_PREFIX):
            trained = mine[(mine["epoch"] > 0) & mine["value"].notna()]
            grouped = trained.groupby("hash")["value"]
            best = grouped.max() if is_higher_better(metric) else grouped.min()
            values = {str(h): float(v) for h, v in best.items()}
        else:
            at_last = mine[mine["epoch"].to_numpy() == mine["hash"].map(last).to_numpy()]
            values = dict(zip(at_last["hash"], at_last["value"]))
    return statuses, {h: (float(values.get(h, math.nan)) if statuses.get(h) == OK else math.nan) for h in hashes}


def search_tables(
    store: Any, suite: str, objective: str, steps_per_epoch: Any, arms: Sequence[str] = ()
) -> SearchTables | None:
    """The search tables of `suite` from `store` (None when it has no search marks).

    Args:
        steps_per_epoch: TrialSpec JSON text -> optimizer steps in one epoch (the planner's).
        arms: the suite's arms in order (the tables follow it; others come after, by name).
    """
    marks = store.search_trials_frame(suite)
    if marks.empty:
        return None
    order = {arm: index for index, arm in enumerate(arms)}
    rank = marks["arm"].map(lambda arm: order.get(arm, len(order)))
    columns = ["_order", "arm", "phase", "round", "trial", "seed"]
    marks = marks.assign(_order=rank).sort_values(columns, kind="stable").drop(columns="_order").reset_index(drop=True)
    hashes = marks["hash"].unique().tolist()
    trials = store.trials_frame(hashes)
    metrics = store.metrics_frame(hashes)
    statuses, values = objective_values(trials, metrics, hashes, objective)
    stored = trials.set_index("hash")
    higher = is_higher_better(objective)
    rows = []
    for (arm, round_index, index), group in marks.groupby(list(CONFIGURATION_KEYS), sort=False):
        rungs = group[group["phase"] == "rung"]
        full = group[group["phase"] == "search"]
        params = json.loads(full["params"].iloc[0] if len(full) else group["params"].iloc[0])
        status, mean, rung_epoch = _outcome(rungs, full, statuses, values, stored, higher)
        ran = [h for h in (*rungs["hash"], *(full["hash"] if status != PRUNED else ())) if h in stored.index]
        rows.append(
            {
                "arm": arm,
                "round": int(round_index),
                "trial": int(index),
                **{path: _display(value) for path, value in params.items()},
                objective: mean,
                "status": status,
                "rung_epoch": rung_epoch,
                "trials_run": len(ran),
                "optimizer_steps": int(
                    sum(int(stored.at[h, "epochs_completed"]) * steps_per_epoch(stored.at[h, "spec"]) for h in ran)
                ),
                "train_seconds": float(sum(float(stored.at[h, "train_seconds"]) for h in ran)),
            }
        )
    configurations = pd.DataFrame(rows).astype({"rung_epoch": "Int64"})
    chosen = _chosen(configurations, objective, higher)
    return SearchTables(
        objective=objective,
        configurations=configurations,
        chosen=chosen,
        budget=_budget(configurations),
        ranges=_ranges(store.search_rounds_frame(suite)),
        curves=_curves(configurations, marks, metrics, objective, higher),
    )


def _outcome(
    rungs: pd.DataFrame,
    full: pd.DataFrame,
    statuses: Mapping[str, str],
    values: Mapping[str, float],
    stored: pd.DataFrame,
    higher: bool,
) -> tuple[str, float, int | None]:
    """(status, objective, rung epoch) of one configuration; status '' when not all of it has run."""
    if len(rungs):
        rung_status = _status(rungs["hash"], statuses)
        if rung_status != OK:
            return rung_status, math.nan, None
        if not all(statuses.get(h) for h in full["hash"]):  # not run after its rung: pruned (or not yet run)
            first = rungs["hash"].iloc[0]
            epoch = int(str(stored.at[first, "epochs_completed"])) if first in stored.index else None
            return PRUNED, math.nan, epoch
    status = _status(full["hash"], statuses)
    mean = float(sum(values[h] for h in full["hash"]) / len(full)) if status == OK else math.nan
    return status, mean, None


def _status(hashes: Any, statuses: Mapping[str, str]) -> str:
    found = [statuses.get(h, "") for h in hashes]
    return next((s for s in found if s != OK), OK)


def _chosen(configurations: pd.DataFrame, objective: str, higher: bool) -> pd.DataFrame:
    rows = []
    fixed = {*CONFIGURATION_KEYS, objective, "status", "rung_epoch", "trials_run", "optimizer_steps", "train_seconds"}
    for arm, group in configurations.groupby("arm", sort=False):
        ordered = best_first(group, objective, higher)
        if not ordered:
            continue
        best = ordered[0]
        rows.append(
            {
                "arm": arm,
                **{c: best[c] for c in group.columns if c not in fixed and pd.notna(best[c])},
                objective: best[objective],
                "round": int(best["round"]),
                "trial": int(best["trial"]),
                "rank": 1,
                "configurations": len(group),
                "with_objective": len(ordered),
            }
        )
    return pd.DataFrame(rows)


def _budget(configurations: pd.DataFrame) -> pd.DataFrame:
    grouped = configurations.groupby("arm", sort=False)
    return pd.DataFrame(
        {
            "configurations": grouped.size(),
            "trials_run": grouped["trials_run"].sum(),
            "optimizer_steps": grouped["optimizer_steps"].sum(),
            "train_seconds": grouped["train_seconds"].sum(),
        }
    ).reset_index()


def _ranges(rounds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for record in rounds.to_dict("records"):
        for path, value in json.loads(record["ranges"]).items():
            rows.append(
                {
                    "arm": record["arm"],
                    "round": int(record["round"]),
                    "dimension": path,
                    "kind": value["kind"],
                    "low": value.get("low"),
                    "high": value.get("high"),
                    "choices": ", ".join(map(str, map(_display, value.get("choices", [])))),
                }
            )
    return pd.DataFrame(rows, columns=["arm", "round", "dimension", "kind", "low", "high", "choices"])


def _curves(
    configurations: pd.DataFrame, marks: pd.DataFrame, metrics: pd.DataFrame, objective: str, higher: bool
) -> pd.DataFrame:
    """The objective's metric per epoch (each search seed) of each arm's best CURVE_CONFIGURATIONS configurations."""
    metric = objective.removeprefix(BEST_PREFIX)
    frames = []
    for arm, group in configurations.groupby("arm", sort=False):
        for rank, row in enumerate(best_first(group, objective, higher)[:CURVE_CONFIGURATIONS], start=1):
            chosen = marks[
                (marks["arm"] == arm)
                & (marks["round"] == row["round"])
                & (marks["trial"] == row["trial"])
                & (marks["phase"] == "search")
            ]
            mine = metrics[metrics["hash"].isin(chosen["hash"]) & (metrics["metric"] == metric)]
            mine = mine.merge(chosen[["hash", "seed"]], on="hash")
            frames.append(
                mine.assign(arm=arm, round=int(row["round"]), trial=int(row["trial"]), rank=rank)[
                    ["arm", "rank", "round", "trial", "seed", "epoch", "metric", "value"]
                ]
            )
    columns = ["arm", "rank", "round", "trial", "seed", "epoch", "metric", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _display(value: Any) -> Any:
    """Scalars as they are; lists and mappings (a choice of [64, 64]) as their label text."""
    if isinstance(value, (list, tuple, dict)):
        from harness.suite.grid import value_label

        return value_label(value)
    return value


def read_tables(directory: Path, objective: str) -> SearchTables | None:
    """The tables as `write_csv` left them in a results folder (None when it has none)."""
    if not (directory / FILES["configurations"]).exists():
        return None
    frames = {attribute: pd.read_csv(directory / name) for attribute, name in FILES.items()}
    return SearchTables(objective=objective, **frames)
