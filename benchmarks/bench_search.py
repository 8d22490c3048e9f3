"""Hyperparameter search: what the planner adds per search trial, and how a search scales with --jobs.

1. Overhead per search trial: `plan_search` over a search whose every trial is already stored (its
   `run` does nothing), so what is timed is the harness's own work per trial: drawing the round with
   Optuna, applying and resolving each configuration, hashing, writing the search marks, reading the
   objectives back and narrowing. Beside it, the same bookkeeping for plain trials: `run_trials` on
   stored trials (the store's "already finished" check). Target: < 10 ms per search trial.
2. Scaling: the same search (40 search trials: 20 configurations x 2 rounds, one search seed, then 1
   final trial) run end to end with --jobs 2 and with --jobs 1, fresh stores, worker start-up
   included, on one warm set of workers for the whole search (harness.runner.TrialRunner, as
   `harness run` runs it). Target >= 1.8x. Beside it, per jobs: how busy the workers were (the
   trials' wall seconds in the worker, a stacked member's share of its group's, over jobs x wall;
   what is left is worker start-up, the driver's work between rounds and the last trials of a
   round running while a worker idles), and with
   `--per-call` the same search with a pool started and stopped per round (what runs did before
   TrialRunner), interleaved in the same run.

   `--threads 1` pins every worker to one thread (`harness run --threads`): by default --jobs 1 gives its
   one worker every core, so the ratio shows what a second worker adds beyond a second thread; pinned,
   what it adds alone.

    python -m benchmarks.bench_search [--epochs 15] [--per-call] [--vectorize auto|off] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness.runner import RunEvent, TrialRunner, run_trials
from harness.search import plan_search
from harness.store import Store
from harness.suite import load_suite

SUITE = """\
name: bench_search
dataset: {{name: digits, validation: 0.2}}
model: {{mlp: {{hidden: [64, 64]}}}}
loss: cross_entropy
optimizer: {{name: sgd, lr: 0.01}}
initializer: he_normal
training: {{epochs: {epochs}, batch_size: 32}}
seeds: [0]
search:
  space:
    optimizer.lr: {{log_uniform: [1.0e-4, 1.0]}}
    regularizer.l2: {{log_uniform: [1.0e-8, 1.0e-3]}}
  objective: validation_accuracy
  trials: 20
  rounds: 2
  keep: 0.2
  sampler: tpe
  seeds: [1000]
"""


def run_search(
    suite_path: Path, store_dir: Path, jobs: int, warm: bool = True, vectorize: str = "auto", threads: int | None = None
) -> tuple[float, float, int]:
    """Wall seconds of the whole search and its final trial, the workers' busy fraction, the number of search
    trials. warm: one TrialRunner for every call (as `harness run`); else a pool per call (run_trials).
    vectorize: as `harness run --vectorize` (auto: each round's configurations train as stacked groups).
    threads: as `harness run --threads` (None: the cores shared out among the workers)."""
    suite = load_suite(suite_path)
    busy: list[float] = []

    def observe(event: RunEvent) -> None:
        if event.kind == "finished" and event.result is not None:
            busy.append(event.result.wall_seconds)  # a stacked member's share of its group's time

    started = time.perf_counter()
    with (
        Store(store_dir) as store,
        TrialRunner(jobs=jobs, quiet=True, on_event=observe, vectorize=vectorize, threads=threads) as runner,
    ):

        def run(trials):
            if warm:
                return runner.run(trials, store)
            return run_trials(
                trials, store, jobs=jobs, quiet=True, on_event=observe, vectorize=vectorize, threads=threads
            )

        if warm:
            runner.start(suite.trials)  # as `harness run` does before the search
        outcome = plan_search(suite, store, run=run)
        assert outcome.complete, outcome.stopped
        run(outcome.final_trials)
    wall = time.perf_counter() - started
    return wall, sum(busy) / (jobs * wall), len(outcome.search_hashes())


def overhead(suite_path: Path, store_dir: Path, repeats: int = 5) -> tuple[float, float]:
    """Milliseconds per search trial of the planner on a fully stored search, and per plain stored trial of
    run_trials' skip check (best of `repeats`)."""
    suite = load_suite(suite_path)
    search_times, plain_times = [], []
    with Store(store_dir) as store:
        for _ in range(repeats):
            started = time.perf_counter()
            outcome = plan_search(suite, store, run=lambda trials: None)
            search_times.append((time.perf_counter() - started) / len(outcome.search_hashes()))
            trials = [t for c in outcome.configurations for t in c.trials]
            started = time.perf_counter()
            summary = run_trials(trials, store, jobs=1, quiet=True)
            plain_times.append((time.perf_counter() - started) / len(trials))
            assert summary.skipped == len(trials)
    return 1000 * min(search_times), 1000 * min(plain_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs per trial (default 15)")
    parser.add_argument(
        "--per-call", action="store_true", help="also run the search with a pool per round (before TrialRunner)"
    )
    parser.add_argument(
        "--vectorize",
        choices=("auto", "off"),
        default="auto",
        help="auto (the default of harness run): stacked groups; off: every trial alone (the issue's setting)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker, as harness run --threads (default cores/jobs)"
    )
    arguments = parser.parse_args()
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    ways = (True, False) if arguments.per_call else (True,)
    measured: dict[tuple[bool, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        suite_path = root / "bench_search.yaml"
        suite_path.write_text(SUITE.format(epochs=arguments.epochs))
        for warm in ways:
            for jobs in (2, 1):
                wall, busy, count = run_search(
                    suite_path,
                    root / f"jobs{jobs}-{warm}",
                    jobs=jobs,
                    warm=warm,
                    vectorize=arguments.vectorize,
                    threads=arguments.threads,
                )
                measured[(warm, jobs)] = (wall, busy)
        per_search, per_plain = overhead(suite_path, root / "jobs2-True")
    print(
        f"{count} search trials (+1 final), {arguments.epochs} epochs each, digits MLP 64x64, "
        f"--vectorize {arguments.vectorize}, threads per worker {arguments.threads or 'cores/jobs'}:"
    )
    for warm in ways:
        (one, busy_one), (two, busy_two) = measured[(warm, 1)], measured[(warm, 2)]
        label = "one warm runner" if warm else "a pool per call"
        verdict = f" (target >= 1.8x: {'met' if one / two >= 1.8 else 'NOT met'})" if warm else ""
        print(
            f"  {label}: --jobs 1: {one:.1f} s   --jobs 2: {two:.1f} s   speedup {one / two:.2f}x{verdict}; "
            f"workers busy {100 * busy_one:.0f}% / {100 * busy_two:.0f}%"
        )
    print(
        f"  harness overhead per search trial: {per_search:.2f} ms (target < 10 ms); "
        f"per plain stored trial (run_trials' skip check): {per_plain:.2f} ms"
    )
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
