"""A results folder (`<store>/<suite>/`): its `suite.json` manifest, its exported tables, and
opening it (or a suite YAML file with its store) as analysis-ready `Results` (`harness.load`).

Not to be confused with `harness.analysis.results`, which defines the `Results` object itself.

The store keys trials by content hash only; labels (arm, grid-axis variants) come from
the suite's current expansion, so renaming an arm relabels stored results instead of
re-running them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis import Results
from harness.errors import HarnessError, StoreError
from harness.paths import DEFAULT_STORE
from harness.store import Store
from harness.suite import Suite, load_suite

MANIFEST = "suite.json"  # written beside the tables: what a results folder knows about its suite
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SuiteRecord:
    """A suite as a results folder remembers it: labels, options and its trials' hashes."""

    name: str
    description: str
    arms: tuple[str, ...]
    axes: tuple[str, ...]
    report: Mapping[str, Any]
    check: Mapping[str, Any]
    expect: tuple[str, ...]
    document: Mapping[str, Any]
    labels: pd.DataFrame  # hash, arm, backend, seed, <axis columns>
    # The suite's seed sets as declared (`Suite.explore_seeds`, `Suite.confirm_seeds`); () without them.
    explore_seeds: tuple[int, ...] = ()
    confirm_seeds: tuple[int, ...] = ()

    def seed_roles(self) -> str:
        """'seeds 0-2 explore, 3-7 confirm', or 'seeds 0-4' (the seeds of the manifest's trials)."""
        from harness.suite.load import seed_roles

        return seed_roles(self.explore_seeds or sorted(set(self.labels["seed"])), self.confirm_seeds)

    @classmethod
    def from_suite(cls, suite: Suite) -> SuiteRecord:
        """The record of a freshly loaded suite."""
        return cls(
            suite.name,
            suite.description,
            suite.arms,
            suite.axes,
            dict(suite.report),
            dict(suite.check),
            tuple(suite.expect),
            dict(suite.document),
            labels_frame(suite),
            tuple(suite.explore_seeds),
            tuple(suite.confirm_seeds),
        )

    def arm_labels(self) -> dict[str, dict[str, str]]:
        """arm -> {axis: its variant label}, for every arm of the suite (run or not).

        The manifest already holds every trial's labels, so a per-axis `report.reference`
        ({optimizer: sgd}) finds each arm's reference arm without the YAML, and `suite.json`
        needs no second copy of them.
        """
        firsts = self.labels.drop_duplicates("arm")[["arm", *self.axes]]
        return {str(row["arm"]): {axis: str(row[axis]) for axis in self.axes} for row in firsts.to_dict("records")}

    def to_json(self) -> str:
        """The manifest text (`suite.json`), version MANIFEST_VERSION."""
        return json.dumps(
            {
                "version": MANIFEST_VERSION,
                "name": self.name,
                "description": self.description,
                "arms": list(self.arms),
                "axes": list(self.axes),
                "report": self.report,
                "check": self.check,
                "expect": list(self.expect),
                "document": self.document,
                "explore_seeds": list(self.explore_seeds),
                "confirm_seeds": list(self.confirm_seeds),
                "trials": self.labels.astype(object).to_dict(orient="records"),
            },
            indent=1,
            default=str,
        )

    @classmethod
    def read(cls, path: Path) -> SuiteRecord:
        """Read a manifest written by `to_json`.

        Raises:
            StoreError: the file is missing, unreadable, malformed or of another manifest version.
        """
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MANIFEST_VERSION:
                raise ValueError(f"manifest version {data.get('version')!r}, this harness reads {MANIFEST_VERSION}")
            labels = pd.DataFrame(data["trials"], columns=["hash", "arm", "backend", "seed", *data["axes"]])
            return cls(
                data["name"],
                data["description"],
                tuple(data["arms"]),
                tuple(data["axes"]),
                data["report"],
                data["check"],
                tuple(data["expect"]),
                data["document"],
                labels,
                tuple(int(seed) for seed in data.get("explore_seeds", [])),  # absent in manifests before them
                tuple(int(seed) for seed in data.get("confirm_seeds", [])),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(
                f"{path}: not a readable results manifest ({error}). Run the suite again with "
                "`harness run SUITE` to rewrite it, or pass the suite's YAML file instead."
            ) from None


def labels_frame(suite: Suite) -> pd.DataFrame:
    """One row per trial of the suite: hash, arm, backend, seed and one column per grid axis."""
    rows = []
    for trial in suite.trials:
        rows.append(
            {
                "hash": trial.hash,
                "arm": trial.arm,
                "backend": trial.spec.backend,
                "seed": trial.spec.seed,
                **dict(trial.cell),
            }
        )
    return pd.DataFrame(rows, columns=["hash", "arm", "backend", "seed", *suite.axes])


def record_results(record: SuiteRecord, store: Store) -> Results:
    """The stored results of every trial of a suite (trials not run yet are absent)."""
    labels = record.labels
    hashes = labels["hash"].tolist()
    stored = store.trials_frame(hashes)
    stored = stored.drop(columns=[c for c in ("arm", "backend", "seed", *record.axes) if c in stored.columns])
    trials = labels.merge(stored, on="hash", how="inner")
    search = record.document.get("search") if isinstance(record.document, Mapping) else None
    tables = None
    if isinstance(search, Mapping) and isinstance(search.get("objective"), str):
        from harness.search import stored_tables

        tables = stored_tables(store, record.name, search["objective"], record.arms)
    return Results(
        trials=trials,
        metrics=store.metrics_frame(hashes),
        arms=record.arms,
        axes=record.axes,
        name=record.name,
        description=record.description,
        report_options=dict(record.report),
        diagnostics=store.diagnostics_frame(hashes),
        arm_labels=record.arm_labels(),
        predictions=store.predictions_frame(hashes),
        search=tables,
    )


def suite_results(suite: Suite, store: Store) -> Results:
    """The stored results of every trial of a loaded suite (trials not run yet are absent)."""
    return record_results(SuiteRecord.from_suite(suite), store)


def export_tables(results: Results, directory: Path, record: SuiteRecord | None = None) -> Path:
    """Write the CSV (and Parquet) tables, and the suite manifest, under `directory`; return it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if record is not None:
            temporary = directory / f".{MANIFEST}.tmp"
            temporary.write_text(record.to_json())
            temporary.replace(directory / MANIFEST)  # atomic: never a half-written manifest
    except OSError as error:
        raise StoreError(
            f"cannot write the tables folder {directory}: {error.strerror}. Pass --store with a writable folder."
        ) from None
    results.write_csv(directory)
    return directory


def open_results(target: str | Path, store_dir: str | Path | None = None) -> tuple[Results, SuiteRecord]:
    """Results from a suite YAML file (with its store, default results/) or a results folder.

    A results folder is `<store>/<suite>/` as `harness run` writes it: its manifest names the
    trials, whose values are read from `<store>/harness.sqlite`.

    Raises:
        HarnessError: the target is neither, or its store holds none of the suite's trials.
    """
    path = Path(target)
    if path.is_dir():
        record = SuiteRecord.read(path / MANIFEST)
        store_path = Path(store_dir) if store_dir is not None else path.parent
    elif path.suffix in (".yaml", ".yml") or not path.exists():
        suite = load_suite(path)  # raises a located error if missing or bad
        from harness.runner.devices import resolve_auto  # 'auto' as `harness run` settled it on this machine

        suite = dataclasses.replace(suite, trials=resolve_auto(suite.trials))
        store_path = Path(store_dir) if store_dir is not None else DEFAULT_STORE
        if suite.search is not None and (store_path / "harness.sqlite").exists():
            suite = _searched(suite, store_path)
        record = SuiteRecord.from_suite(suite)
    else:
        raise HarnessError(f"{path}: expected a suite file (.yaml) or a results folder (results/<suite>/), got a file.")
    if not (store_path / "harness.sqlite").exists():
        raise StoreError(
            f"{store_path}: no results store (harness.sqlite) there. Run `harness run` first, "
            "or pass --store with the folder given to `harness run --store`."
        )
    with Store(store_path) as store:
        results = record_results(record, store)
    if results.trials.empty:
        raise StoreError(
            f"{store_path}: the store holds no trial of suite {record.name!r} yet. Run `harness run` on it first."
        )
    return results, record


def _searched(suite: Suite, store_path: Path) -> Suite:
    """A searched suite with its final trials (each arm's chosen values), replayed from what the store holds.

    Raises:
        StoreError: the store does not hold the whole search yet.
    """
    from harness.search import plan_search

    with Store(store_path) as store:
        outcome = plan_search(suite, store, run=None)
    if not outcome.complete:
        raise StoreError(
            f"{store_path}: the search of suite {suite.name!r} is not complete in this store ({outcome.stopped}). "
            f"Run `harness run {suite.path} --store {store_path}` to finish it."
        )
    return dataclasses.replace(suite, trials=outcome.final_trials)


def load(target: str | Path, store: str | Path | None = None) -> Results:
    """`harness.load("results/optimizers")`: the analysis object of a suite's stored results.

    Example:
        >>> results = harness.load("results/optimizers")
        >>> results.summary()        # per arm over seeds: mean, std, n, 95% CI
        >>> results.comparisons()    # every arm vs the reference arm, paired by seed
    """
    return open_results(target, store)[0]
