"""Results store: recording trials (one transaction each) and reading the frames back.

500 trials x 21 epochs x 7 metrics (73,500 metric rows), made up without training.

    pytest benchmarks/test_bench_store.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from harness.adapters.loop import TrialResult
from harness.spec.types import Trial
from harness.store import Store
from harness.suite import load_suite

TRIALS = 500
EPOCHS = 20
METRICS = (
    "train_loss",
    "train_accuracy",
    "validation_loss",
    "validation_accuracy",
    "test_loss",
    "test_accuracy",
    "minibatch_loss",
)
MINIMAL_SUITE = Path(__file__).resolve().parents[1] / "tests" / "suites" / "minimal.yaml"


def made_up(count: int) -> list[tuple[Trial, TrialResult]]:
    """`count` distinct trials (the minimal suite at seeds 0..count-1) with made-up per-epoch metrics."""
    template = load_suite(MINIMAL_SUITE).trials[0]
    rng = np.random.default_rng(0)
    pairs = []
    for seed in range(count):
        trial = dataclasses.replace(template, spec=dataclasses.replace(template.spec, seed=seed))
        rows = [
            (epoch, name, float(value)) for epoch in range(EPOCHS + 1) for name, value in zip(METRICS, rng.random(7))
        ]
        pairs.append((trial, TrialResult(status="ok", metrics=rows, train_seconds=1.0, epochs_completed=EPOCHS)))
    return pairs


@pytest.fixture(scope="module")
def records() -> list[tuple[Trial, TrialResult]]:
    return made_up(TRIALS)


def test_store_insert(benchmark, tmp_path: Path, records) -> None:
    counter = iter(range(1_000_000))

    def insert() -> Path:
        folder = tmp_path / f"store-{next(counter)}"
        with Store(folder) as store:
            for trial, result in records:
                store.record(trial, result)
        return folder

    folder = benchmark.pedantic(insert, rounds=3, iterations=1)
    with Store(folder) as store:
        assert len(store.trials_frame()) == TRIALS
    if benchmark.stats is not None:  # None under --benchmark-disable: one plain call, nothing timed
        benchmark.extra_info.update(trials=TRIALS, trials_per_second=TRIALS / benchmark.stats.stats.median)


def test_store_query(benchmark, tmp_path: Path, records) -> None:
    with Store(tmp_path) as store:
        for trial, result in records:
            store.record(trial, result)
        hashes = [trial.hash for trial, _ in records]

        def query() -> int:
            return len(store.trials_frame(hashes)) + len(store.metrics_frame(hashes))

        rows = benchmark.pedantic(query, rounds=5, iterations=1)
    assert rows == TRIALS + TRIALS * (EPOCHS + 1) * len(METRICS)
    benchmark.extra_info.update(metric_rows=rows - TRIALS)
