"""The search planner: a suite's `search:` block -> rounds of ordinary trials -> each arm's chosen
configuration -> the final trials, compared on test like any suite's.

    outcome = plan_search(suite, store, run=lambda trials: run_trials(trials, store, jobs=2))
    outcome.final_trials    # each arm's chosen values on the suite's seeds and backends

Each round, for every arm: draw `trials` configurations (harness.search.sampling), mark them in
the store (search_trials, search_rounds), run every configuration x search seed on the suite's
FIRST backend as an ordinary trial (content-hashed: already stored ones are skipped), read each
one's validation objective back from the store, and narrow the ranges to the best `keep`
fraction. The store is the source of truth: a killed search, run again, recomputes the same
configurations from the same stored results and runs only what is missing. `run=None` replays
what is stored without running anything (`harness report` on a suite file).

With a pruner, each round first runs every configuration for its first `rung` epochs (phase
'rung', a third of training.epochs); the pruner (Optuna's MedianPruner or
SuccessiveHalvingPruner) judges each configuration's rung objective against the round's others,
and only the survivors then train for the whole budget (from the start: the harness keeps no
checkpoints, so a survivor costs rung + full epochs, a pruned one rung epochs). Pruned
configurations get status 'pruned' with their rung epoch; they are never chosen.

The chosen configuration of an arm has the best objective (averaged over the search seeds) of
all its rounds; ties go to the earlier round, then the lower index. A configuration that was not
'ok' on every search seed (diverged, timed out, pruned) has no objective and is never chosen.
The search never reads a test metric.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import HarnessError
from harness.measures import OK
from harness.search.sampling import Observed, draw_round, keep_count, narrow
from harness.search.tables import PRUNED, SearchTables, objective_values, rank_key, search_tables
from harness.spec.types import Trial, TrialSpec
from harness.store import Store
from harness.suite import Suite
from harness.suite.grid import Cell, apply_cell, normalize_document
from harness.suite.load import resolve_cell
from harness.suite.python_models import pair_python_model
from harness.suite.search import Dimension, SearchSpec

SEARCH_PHASE, RUNG_PHASE = "search", "rung"
RUNG_FRACTION = 3  # the rung is training.epochs // 3 (at least 1): the pruner's one decision point
REDUCTION_FACTOR = 3  # successive halving keeps the best 1/3 at the rung


@dataclass
class Configuration:
    """One sampled configuration of an arm's round, with its trials (one per search seed) and result."""

    arm: str
    round: int
    index: int
    values: dict[str, Any]
    trials: tuple[Trial, ...]  # the full-budget trials, one per search seed
    rung_trials: tuple[Trial, ...] = ()  # with a pruner: the same, stopped at the rung epoch
    objective: float = math.nan  # mean over search seeds; NaN unless 'ok' on every seed
    status: str = ""  # ok | diverged | timeout | pruned | (empty: not run yet)
    rung_epoch: int | None = None  # the epoch a pruned configuration stopped at
    rung_objective: float = math.nan


@dataclass
class SearchOutcome:
    """What the planner did, or found stored (`run=None`)."""

    search: SearchSpec
    configurations: list[Configuration] = field(default_factory=list)
    ranges: dict[str, list[tuple[Dimension, ...]]] = field(default_factory=dict)  # arm -> per round
    chosen: dict[str, Configuration] = field(default_factory=dict)
    final_trials: tuple[Trial, ...] = ()
    runs: list[Any] = field(default_factory=list)  # whatever `run` returned per call (RunSummary)
    complete: bool = False
    stopped: str = ""  # why the search stopped before choosing (empty when complete)

    def search_hashes(self) -> list[str]:
        return [t.hash for c in self.configurations for t in (*c.rung_trials, *c.trials)]


RunTrials = Callable[[Sequence[Trial]], Any]


def plan_search(suite: Suite, store: Store, run: RunTrials | None) -> SearchOutcome:
    """Search every arm of a suite with a `search:` block, round by round, and build the final trials.

    Args:
        suite: a loaded suite whose `search` is set; its trials' devices already settled (their
            device is copied to every search and final trial).
        store: the results store (read for what is done, written with the search marks).
        run: runs a list of trials into the store and returns its summary (it may stop early,
            e.g. on Ctrl-C: the summary's `interrupted` or `code_changed` then stops the search);
            None replays what is stored.

    Returns:
        The SearchOutcome; `complete` with `final_trials` when every round has its results.
    """
    search = suite.search
    assert search is not None, "plan_search needs a suite with a search block"
    outcome = SearchOutcome(search)
    arms = {cell.arm: cell for cell in suite.cells}
    template: dict[str, Trial] = {}
    for trial in suite.trials:  # cell-major, then backend: each arm's first is on the suite's first backend
        template.setdefault(trial.arm, trial)
    base = normalize_document(suite.document)
    history: dict[str, list[Observed]] = {arm: [] for arm in arms}
    outcome.ranges = {arm: [search.dimensions(arm)] for arm in arms}
    for round_index in range(search.rounds):
        configurations = []
        for arm, cell in arms.items():
            ranges = outcome.ranges[arm][round_index]
            drawn = draw_round(search, suite.name, arm, round_index, ranges, history[arm])
            for index, values in enumerate(drawn):
                trials = _trials(suite, search, base, cell, template[arm], values)
                rungs = _rung_trials(trials) if search.pruner != "none" else ()
                configurations.append(Configuration(arm, round_index, index, values, trials, rungs))
        outcome.configurations.extend(configurations)
        if run is not None:  # a replay only reads
            store.mark_search(
                _marks(suite.name, configurations),
                [
                    (suite.name, arm, round_index, {d.path: d.to_dict() for d in outcome.ranges[arm][round_index]})
                    for arm in arms
                ],
            )
        if search.pruner != "none":
            if not _run_phase(outcome, store, run, [t for c in configurations for t in c.rung_trials]):
                return outcome
            _settle(search, store, configurations, rung=True)
            _prune(search, configurations)
        survivors = [c for c in configurations if c.status != PRUNED]
        if not _run_phase(outcome, store, run, [t for c in survivors for t in c.trials]):
            return outcome
        _settle(search, store, survivors, rung=False)
        for arm in arms:
            mine = [c for c in configurations if c.arm == arm]
            ranges = outcome.ranges[arm][round_index]
            history[arm].extend(Observed(c.round, c.index, c.values, ranges, c.objective) for c in mine)
            if round_index + 1 < search.rounds:
                outcome.ranges[arm].append(
                    narrow(ranges, [c.values for c in _ranked(search, mine)[: _kept(search, mine)]])
                )
    for arm in arms:
        mine = [c for c in outcome.configurations if c.arm == arm]
        ranked = _ranked(search, mine)
        outcome.chosen[arm] = ranked[0] if ranked else mine[0]  # every one diverged: the first, reported as such
    outcome.final_trials = tuple(
        final
        for arm, cell in arms.items()
        for final in _final_trials(suite, search, base, cell, outcome.chosen[arm].values)
    )
    outcome.complete = True
    return outcome


def _kept(search: SearchSpec, configurations: Sequence[Configuration]) -> int:
    return keep_count(search, sum(1 for c in configurations if math.isfinite(c.objective)))


def _ranked(search: SearchSpec, configurations: Sequence[Configuration]) -> list[Configuration]:
    """Configurations with an objective, best first; ties by round, then index (stable)."""
    finite = [c for c in configurations if math.isfinite(c.objective)]
    return sorted(finite, key=lambda c: rank_key(c.objective, c.round, c.index, search.higher_is_better))


def _run_phase(outcome: SearchOutcome, store: Store, run: RunTrials | None, trials: Sequence[Trial]) -> bool:
    """Run the trials (unless replaying); False when the search cannot go on (stopped, or results missing)."""
    if run is not None and trials:
        summary = run(trials)
        outcome.runs.append(summary)
        if getattr(summary, "interrupted", False) or getattr(summary, "code_changed", None):
            outcome.stopped = "the run was stopped"
            return False
    finished = store.finished(trial.hash for trial in trials)
    missing = sum(1 for trial in {t.hash: t for t in trials}.values() if trial.hash not in finished)
    if missing:
        outcome.stopped = (
            f"{missing} search trial(s) have no final result yet (not run, or failed: a failed trial is retried on "
            "the next run); the next round's ranges depend on every one of them"
        )
        return False
    return True


def _trials(
    suite: Suite, search: SearchSpec, base: Mapping[str, Any], cell: Cell, template: Trial, values: Mapping[str, Any]
) -> tuple[Trial, ...]:
    spec = _resolve(search, base, cell, template, values)
    return tuple(
        Trial(suite.name, cell.arm, cell.labels, dataclasses.replace(spec, seed=seed)) for seed in search.seeds
    )


def _final_trials(
    suite: Suite, search: SearchSpec, base: Mapping[str, Any], cell: Cell, values: Mapping[str, Any]
) -> tuple[Trial, ...]:
    template = next(trial for trial in suite.trials if trial.arm == cell.arm)
    spec = _resolve(search, base, cell, template, values)
    return tuple(
        Trial(suite.name, cell.arm, cell.labels, dataclasses.replace(spec, seed=seed, backend=backend))
        for backend in suite.backends
        for seed in suite.seeds
    )


def _resolve(
    search: SearchSpec, base: Mapping[str, Any], cell: Cell, template: Trial, values: Mapping[str, Any]
) -> TrialSpec:
    """The arm's spec with `values` applied, on the template's backend and device (the suite's first backend)."""
    searched = Cell(cell.arm, cell.labels, (*cell.assignments, *search.assignments(cell.arm, values)))
    document, _ = apply_cell(base, searched)
    try:
        spec = resolve_cell(document, template.spec.backend)
        if spec.model.names or spec.model.by_shape:  # a paired Python model: its pairing at these args
            spec = dataclasses.replace(spec, model=pair_python_model(spec))
    except Exception as error:  # load_suite resolved both ends of every range; a value between them that fails is a bug
        raise HarnessError(f"search: arm {cell.arm!r} with {dict(values)} does not resolve: {error}") from None
    return dataclasses.replace(spec, device=template.spec.device, extras=template.spec.extras)


def _rung_trials(trials: Sequence[Trial]) -> tuple[Trial, ...]:
    rung = max(1, trials[0].spec.training.epochs // RUNG_FRACTION)
    return tuple(
        dataclasses.replace(
            trial, spec=dataclasses.replace(trial.spec, training=dataclasses.replace(trial.spec.training, epochs=rung))
        )
        for trial in trials
    )


def _marks(suite: str, configurations: Sequence[Configuration]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for c in configurations:
        for phase, trials in ((RUNG_PHASE, c.rung_trials), (SEARCH_PHASE, c.trials)):
            rows.extend((suite, c.arm, phase, c.round, c.index, t.spec.seed, t.hash, c.values) for t in trials)
    return rows


def _settle(search: SearchSpec, store: Store, configurations: Sequence[Configuration], *, rung: bool) -> None:
    """Read each configuration's status and objective (mean over seeds) back from the store."""
    hashes = [t.hash for c in configurations for t in (c.rung_trials if rung else c.trials)]
    statuses, values = objective_values(
        store.trials_frame(hashes), store.metrics_frame(hashes), hashes, search.objective
    )
    for c in configurations:
        trials = c.rung_trials if rung else c.trials
        found = [statuses.get(t.hash, "") for t in trials]
        status = next((s for s in found if s != OK), OK)
        mean = float(sum(values[t.hash] for t in trials) / len(trials)) if status == OK else math.nan
        if rung:
            c.rung_objective = mean
            c.rung_epoch = trials[0].spec.training.epochs
            if status != OK:  # diverged or timed out within the rung: it stops there
                c.status, c.objective = status, math.nan
        else:
            c.status, c.objective = status, mean


def _prune(search: SearchSpec, configurations: Sequence[Configuration]) -> None:
    """Mark the configurations the pruner stops at the rung, each judged against all the others of its arm's
    round (the whole round has run its rung first, so the verdict does not depend on finishing order)."""
    by_arm: dict[str, list[Configuration]] = {}
    for c in configurations:
        by_arm.setdefault(c.arm, []).append(c)
    for group in by_arm.values():
        for c in group:
            if c.status:  # already stopped (diverged within the rung)
                continue
            others = [o for o in group if o is not c and math.isfinite(o.rung_objective)]
            if _pruner_says_stop(search, c, others):
                c.status, c.objective = PRUNED, math.nan


def _pruner_says_stop(search: SearchSpec, trial: Configuration, others: Sequence[Configuration]) -> bool:
    import warnings

    import optuna

    assert trial.rung_epoch is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    step = trial.rung_epoch
    if search.pruner == "median":
        pruner: Any = optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0)
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=step, reduction_factor=REDUCTION_FACTOR, min_early_stopping_rate=0
        )
    direction: Literal["maximize", "minimize"] = "maximize" if search.higher_is_better else "minimize"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=direction, pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
        for other in others:
            study.add_trial(
                optuna.trial.create_trial(
                    value=other.rung_objective,
                    intermediate_values={step: other.rung_objective},
                    # successive halving reads each trial's value at a rung from this attribute
                    system_attrs={"completed_rung_0": other.rung_objective},
                    params={},
                    distributions={},
                )
            )
        asked = study.ask()
        asked.report(trial.rung_objective, step)
        return bool(asked.should_prune())


def steps_per_epoch(spec: TrialSpec | str) -> int:
    """Optimizer steps in one epoch of a trial (a spec, or its stored JSON): its training rows over the batch size."""
    from harness.data.registry import training_rows
    from harness.spec.types import DatasetSpec

    if isinstance(spec, str):
        data = json.loads(spec)
        dataset, size, drop_last = (
            DatasetSpec.from_dict(data["dataset"]),
            data["training"]["batch_size"],
            data["training"]["drop_last"],
        )
    else:
        dataset, size, drop_last = spec.dataset, spec.training.batch_size, spec.training.drop_last
    rows = training_rows(dataset)
    return rows // size if drop_last else math.ceil(rows / size)


def stored_tables(store: Store, suite: str, objective: str, arms: Sequence[str] = ()) -> SearchTables | None:
    """The search tables of a suite, from the store's marks (None: it never searched), in the order of `arms`."""
    return search_tables(store, suite, objective, steps_per_epoch, arms)
