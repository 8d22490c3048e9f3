"""What every export (MLflow, TensorBoard) sends, derived once from a suite's `Results`.

Exports are readers of the store, like the report and `check`: they read a `Results` (the
stored trials of one suite) and never write to the store. Each trial becomes one record with
its labels, its resolved spec flattened to dotted parameter names, and every epoch's metric
values; each arm becomes one summary (per backend and metric: mean, 95% CI, n over the 'ok'
seeds, as `Results.summary` computes them).

    >>> records = trial_records(results)
    >>> records[0].params["optimizer.lr"], records[0].metrics[:2]
    ('0.1', [(0, 'test_accuracy', 0.1), (0, 'test_loss', 2.3)])
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.provenance import describe_git

if TYPE_CHECKING:  # pandas comes with Results
    from harness.analysis import Results

SUMMARY_STATISTICS = ("mean", "ci_low", "ci_high", "n")  # Results.summary columns each arm's summary carries
ONE_BACKEND = "one backend"  # parity status of a trial whose arm ran in one backend only
REFERENCE_BACKEND = "reference"  # ... of the first backend, which the others are compared with
UNDECIDED = "undecided"  # ... of another backend with too few paired 'ok' seeds for an interval


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as an export sends it.

    tags: suite, arm, backend, seed, hash, status and parity (see `parity_statuses`), the grid labels
    (axis.<key>), and where recorded the code's git commit ('+dirty') and the installed packages' hash;
    params: the resolved spec flattened ('optimizer.lr' -> '0.1'); metrics: (epoch, name, value)
    rows, NaN where the trial diverged; recorded: when the trial's result was stored (ISO 8601),
    which tells a rerun of the same hash apart.
    """

    hash: str
    arm: str
    backend: str
    seed: int
    status: str
    recorded: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: list[tuple[int, str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ArmSummary:
    """One arm's summary over seeds: values['<backend>.<metric>.<statistic>'] (SUMMARY_STATISTICS)."""

    arm: str
    values: Mapping[str, float]
    labels: Mapping[str, str]  # the arm's variant label on each grid axis


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) pairs of a JSON-like value: mappings are walked, everything else is a leaf
    written as JSON (lists stay one parameter: '[8, 8]'), strings as themselves."""
    if isinstance(value, Mapping):
        for key in sorted(value):
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, str):
        yield prefix, value
    else:
        yield prefix, json.dumps(value, sort_keys=True)


def parity_statuses(results: Results) -> dict[tuple[str, str], str]:
    """(arm, backend) -> whether that backend's results agree with the first backend's on the primary
    metric: 'agree' when the paired (by seed) difference's 95% CI holds 0, 'differ' when it does not,
    'undecided' without an interval (fewer than 2 paired 'ok' seeds), 'reference' for the arm's first
    backend, 'one backend' when the arm ran in one backend only."""
    statuses: dict[tuple[str, str], str] = {}
    final = results.final()
    for arm, group in final.groupby("arm", sort=False):
        present = set(group["backend"])
        ordered = [backend for backend in results.backends if backend in present]
        for index, backend in enumerate(ordered):
            status = ONE_BACKEND if len(ordered) == 1 else REFERENCE_BACKEND if index == 0 else UNDECIDED
            statuses[(str(arm), str(backend))] = status
    if len(results.backends) < 2 or final.empty:
        return statuses
    deltas = results.backend_deltas([results.primary_metric])
    for row in deltas.to_dict("records"):
        arm = str(row["arm"])
        low, high = row["ci_low"], row["ci_high"]
        if isinstance(low, float) and isinstance(high, float) and not (math.isnan(low) or math.isnan(high)):
            statuses[(arm, str(row["versus"]))] = "agree" if low <= 0.0 <= high else "differ"
    return statuses


def trial_records(results: Results) -> list[TrialRecord]:
    """Every stored trial of the suite, in the suite's order (arms, backends, seeds)."""
    metrics = results.metrics
    by_hash: dict[str, list[tuple[int, str, float]]] = {}
    for trial_hash, epoch, name, value in metrics[["hash", "epoch", "metric", "value"]].itertuples(index=False):
        by_hash.setdefault(str(trial_hash), []).append((int(epoch), str(name), float(value)))
    parity = parity_statuses(results)
    records = []
    for row in results.trials.to_dict("records"):
        trial_hash, arm, backend = str(row["hash"]), str(row["arm"]), str(row["backend"])
        spec = json.loads(row["spec"]) if isinstance(row.get("spec"), str) else {}
        tags = {
            "suite": results.name,
            "arm": arm,
            "backend": backend,
            "seed": str(int(row["seed"])),
            "hash": trial_hash,
            "status": str(row["status"]),
            "parity": parity.get((arm, backend), ONE_BACKEND),
        }
        for axis in results.axes:
            tags[f"axis.{axis}"] = str(row.get(axis, ""))
        # provenance (harness.provenance), where the trial recorded it: the code's commit, the packages' hash
        provenance = json.loads(row["provenance"]) if isinstance(row.get("provenance"), str) else {}
        code = describe_git(provenance.get("git") or provenance.get("harness_git"))
        if code:
            tags["git_commit"] = code
        if provenance.get("packages"):
            tags["packages"] = str(provenance["packages"])
        records.append(
            TrialRecord(
                hash=trial_hash,
                arm=arm,
                backend=backend,
                seed=int(row["seed"]),
                status=str(row["status"]),
                recorded=str(row.get("finished_at") or ""),
                tags=tags,
                params=dict(flatten(spec)),
                metrics=sorted(by_hash.get(trial_hash, [])),
            )
        )
    return records


def arm_summaries(results: Results) -> list[ArmSummary]:
    """Per arm: mean, 95% CI and n over the 'ok' seeds of every final metric and train_seconds, per backend."""
    summary = results.summary()
    labels = results.arm_labels().set_index("arm") if results.axes else None
    arms = []
    for arm in results.arms:
        rows = summary[summary["arm"] == arm]
        if rows.empty:
            continue
        values: dict[str, float] = {}
        for row in rows.to_dict("records"):
            for statistic in SUMMARY_STATISTICS:
                value = float(row[statistic])
                if not math.isnan(value):
                    values[f"{row['backend']}.{row['metric']}.{statistic}"] = value
        arm_labels = {str(axis): str(labels.loc[arm, axis]) for axis in results.axes} if labels is not None else {}
        arms.append(ArmSummary(arm, values, arm_labels))
    return arms
