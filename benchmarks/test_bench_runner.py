"""Suite overhead: trials per second through `harness.runner.run_trials` for tiny trials.

Each round runs 8 tiny trials (iris, one hidden layer of 8, one epoch, seeds 0-7) on fresh worker
processes (`rerun=True` into one store), so the figure includes what every `harness run` pays:
spawning workers, importing torch in them, loading the dataset, recording each trial in SQLite.

    pytest benchmarks/test_bench_runner.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

TRIALS = 8
SUITE = """\
name: bench-overhead
dataset: iris
model:
  mlp: {hidden: [8]}
loss: cross_entropy
optimizer: sgd
initializer: he_normal
training: {epochs: 1, batch_size: 16}
seeds: 8
backends: [torch]
"""


@pytest.mark.parametrize("jobs", [1, 2], ids=["jobs-1", "jobs-2"])
def test_trials_per_second(benchmark, tmp_path: Path, jobs: int) -> None:
    pytest.importorskip("torch")
    from harness.runner import run_trials
    from harness.store import Store
    from harness.suite import load_suite

    path = tmp_path / "overhead.yaml"
    path.write_text(SUITE)
    trials = load_suite(path).trials
    assert len(trials) == TRIALS

    def run() -> int:
        with Store(tmp_path / "store") as store:
            summary = run_trials(trials, store, jobs=jobs, rerun=True, quiet=True)
        return summary.ok

    assert benchmark.pedantic(run, rounds=3, iterations=1) == TRIALS
    if benchmark.stats is not None:  # None under --benchmark-disable: one plain call, nothing timed
        benchmark.extra_info.update(trials=TRIALS, jobs=jobs, trials_per_second=TRIALS / benchmark.stats.stats.median)
