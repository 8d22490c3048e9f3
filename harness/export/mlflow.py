"""`harness export --to mlflow`: a suite's stored trials as MLflow runs, nested per arm.

One MLflow experiment per suite (named after it). In it, one parent run per arm carries the
arm's summary over seeds (`<backend>.<metric>.mean|ci_low|ci_high|n`, from `Results.summary`) and
its grid labels as parameters; under it, one child run per trial carries the trial's tags
(suite, arm, backend, seed, hash, status, parity), its resolved spec flattened as parameters
(`optimizer.lr`, `training.epochs`, ...) and every epoch's metrics with the epoch as the step.

Idempotent: each run is found again by its tag (`harness.hash` for a trial, `harness.arm` for
an arm), so exporting twice creates nothing new. A trial stored again since the last export
(`harness run --rerun`: same hash, a new `finished_at`) has its run replaced; an arm whose summary
changed gets the new values logged (the latest value is the one MLflow shows).

Metric values that are not finite (the NaN loss of a diverged epoch) are left out: MLflow's
stores disagree on them; the `status` tag says the trial diverged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.export.common import ArmSummary, TrialRecord, arm_summaries, trial_records

if TYPE_CHECKING:
    from harness.analysis import Results

INSTALL = 'pip install "harness[mlflow]"'
TAG_PREFIX = "harness."
KIND_TAG = "harness.kind"  # 'arm' (a parent run) or 'trial'
PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
RUN_STATUS = {"ok": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "timeout": "KILLED"}


@dataclass(frozen=True)
class MlflowExport:
    """What one export did: runs created, replaced (stored again since) and left as they were."""

    experiment_id: str
    created: int
    replaced: int
    unchanged: int
    arms: int

    def describe(self) -> str:
        return (
            f"{self.arms} arm runs, {self.created} trial runs created, {self.replaced} replaced, "
            f"{self.unchanged} already exported (experiment {self.experiment_id})"
        )


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as error:
        raise HarnessError(
            f"--to mlflow: the mlflow package is not installed ({error}). Install it with: {INSTALL}"
        ) from None
    return mlflow


def _milliseconds(stamp: str | None) -> int | None:
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def export_mlflow(results: Results, tracking_uri: str | None = None) -> MlflowExport:
    """Export a suite's stored results to MLflow (module docstring: what goes where).

    Args:
        results: the suite's results (`harness.load`, `open_results`).
        tracking_uri: where MLflow keeps runs (`file:///path/mlruns`, `sqlite:///mlflow.db`,
            `http://host:5000`); None: MLflow's default (MLFLOW_TRACKING_URI, else its local store).

    Raises:
        HarnessError: mlflow is not installed, or the tracking store refuses the URI or a write
            (the message is MLflow's, with the URI).
    """
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    try:
        return _export(mlflow, results, tracking_uri)
    except MlflowException as error:
        where = tracking_uri or mlflow.get_tracking_uri()
        raise HarnessError(
            f"--to mlflow: the tracking store at {where!r} refused the export: {error.message}. "
            "Fix: pass --tracking-uri with a store MLflow accepts (a database such as sqlite:///mlflow.db, "
            "a tracking server's http:// address, or a file:// folder with MLFLOW_ALLOW_FILE_STORE=true)."
        ) from None


def _export(mlflow: Any, results: Results, tracking_uri: str | None) -> MlflowExport:
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(results.name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(results.name, tags={"harness.suite": results.name})
    )
    existing_trials: dict[str, Any] = {}
    existing_arms: dict[str, Any] = {}
    for run in _all_runs(client, experiment_id):
        tags = run.data.tags
        if tags.get(KIND_TAG) == "trial" and "harness.hash" in tags:
            existing_trials[tags["harness.hash"]] = run
        elif tags.get(KIND_TAG) == "arm" and "harness.arm" in tags:
            existing_arms[tags["harness.arm"]] = run

    parents: dict[str, str] = {}
    summaries = {summary.arm: summary for summary in arm_summaries(results)}
    for arm in results.arms:
        summary = summaries.get(arm, ArmSummary(arm, {}, {}))
        parents[arm] = _arm_run(client, experiment_id, results.name, summary, existing_arms.get(arm), Metric, Param)

    created = replaced = unchanged = 0
    for record in trial_records(results):
        run = existing_trials.get(record.hash)
        if run is not None:
            same = run.data.tags.get("harness.recorded") == record.recorded
            if same and run.data.tags.get("mlflow.parentRunId") == parents.get(record.arm):
                unchanged += 1
                continue
            client.delete_run(run.info.run_id)
            replaced += 1
        else:
            created += 1
        _trial_run(client, experiment_id, record, parents.get(record.arm), Metric, Param)
    return MlflowExport(str(experiment_id), created, replaced, unchanged, len(parents))


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{KIND_TAG}` != ''", max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log(client: Any, run_id: str, metrics: Sequence[Any] = (), params: Sequence[Any] = ()) -> None:
    for chunk in _chunks(list(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(list(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)


def _arm_run(
    client: Any, experiment_id: str, suite: str, summary: ArmSummary, run: Any, Metric: Any, Param: Any
) -> str:
    """The arm's parent run (created, or found and brought up to date); returns its run id."""
    now = int(datetime.now().timestamp() * 1000)
    values = {key: value for key, value in summary.values.items() if math.isfinite(value)}
    if run is None:
        tags = {KIND_TAG: "arm", "harness.suite": suite, "harness.arm": summary.arm, "mlflow.runName": summary.arm}
        run = client.create_run(experiment_id, start_time=now, tags=tags)
        params = [Param(f"axis.{axis}", label[:MAX_PARAM_LENGTH]) for axis, label in summary.labels.items()]
        _log(client, run.info.run_id, params=params)
        changed = values
    else:
        logged = run.data.metrics
        changed = {key: value for key, value in values.items() if logged.get(key) != value}
    _log(client, run.info.run_id, metrics=[Metric(key, value, now, 0) for key, value in changed.items()])
    if run.info.status != "FINISHED":
        client.set_terminated(run.info.run_id, status="FINISHED", end_time=now)
    return str(run.info.run_id)


def _trial_run(
    client: Any, experiment_id: str, record: TrialRecord, parent: str | None, Metric: Any, Param: Any
) -> None:
    tags = {f"{TAG_PREFIX}{key}": value for key, value in record.tags.items()}
    tags.update({KIND_TAG: "trial", "harness.recorded": record.recorded})
    tags["mlflow.runName"] = f"{record.arm} {record.backend} seed {record.seed}"
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    start = _milliseconds(record.recorded) or int(datetime.now().timestamp() * 1000)
    run = client.create_run(experiment_id, start_time=start, tags=tags)
    params = [Param(key, value[:MAX_PARAM_LENGTH]) for key, value in record.params.items()]
    metrics = [Metric(name, value, start, epoch) for epoch, name, value in record.metrics if math.isfinite(value)]
    _log(client, run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id, status=RUN_STATUS.get(record.status, "FINISHED"), end_time=start)
