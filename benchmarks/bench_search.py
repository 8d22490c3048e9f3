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

3. `--warm`: the same search again with warm workers, as with `harness workers start` running: a worker
   server in a private folder hands each search its workers past their imports. Each search runs in a process of its
   own (the server refills only once a command has ended), --jobs 2 and --jobs 1 interleaved over `--rounds`,
   WARM_PAUSE_SECONDS apart, after one unmeasured search of each that teaches the server; medians. Timed as
   in 2 (from the runner's start to the final trial), so the two compare what worker start-up costs.

    python -m benchmarks.bench_search [--epochs 15] [--per-call] [--vectorize auto|off] [--threads N]
                                      [--warm [--rounds 3]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_jobs import command_environment, workers_command
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


WARM_PAUSE_SECONDS = 6.0  # between warm searches: the server's replacement spares import torch


def warm_scaling(
    suite_path: Path, root: Path, rounds: int, vectorize: str, threads: int | None
) -> dict[int, list[tuple[float, float]]]:
    """(wall, busy) of the search per jobs (2 and 1), each run in a process of its own with warm workers from a
    worker server in a private folder (see the module docstring, 3)."""
    runtime = tempfile.mkdtemp(prefix="hs", dir="/tmp")  # short: a socket path holds ~100 bytes
    environment = command_environment(None, runtime)

    def one(jobs: int, name: str) -> tuple[float, float]:
        command = [sys.executable, "-m", "benchmarks.bench_search", "--single", str(jobs), "--suite", str(suite_path)]
        command += ["--store", str(root / name), "--vectorize", vectorize]
        command += ["--threads", str(threads)] if threads else []
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
        wall, busy = (float(value) for value in output.split()[-2:])
        time.sleep(WARM_PAUSE_SECONDS)
        return wall, busy

    measured: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    workers_command("start", runtime)
    try:
        time.sleep(WARM_PAUSE_SECONDS)
        for jobs in (2, 1):  # the server learns which workers these searches take
            one(jobs, f"teach-{jobs}")
        for round_index in range(rounds):
            for jobs in (2, 1) if round_index % 2 == 0 else (1, 2):
                measured[jobs].append(one(jobs, f"warm-{round_index}-{jobs}"))
                print(f"warm round {round_index + 1} --jobs {jobs}: {measured[jobs][-1][0]:.1f} s", flush=True)
    finally:
        workers_command("stop", runtime)
        shutil.rmtree(runtime, ignore_errors=True)
    return measured


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
    parser.add_argument("--warm", action="store_true", help="also time the search with warm workers (3 above)")
    parser.add_argument("--rounds", type=int, default=3, help="--warm: interleaved rounds (medians reported)")
    parser.add_argument("--single", type=int, metavar="JOBS", help=argparse.SUPPRESS)  # one search (--warm's)
    parser.add_argument("--suite", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.single is not None:
        wall, busy, _ = run_search(
            arguments.suite, arguments.store, arguments.single, vectorize=arguments.vectorize, threads=arguments.threads
        )
        print(f"{wall} {busy}")
        return
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
        warm_measured = (
            warm_scaling(suite_path, root, arguments.rounds, arguments.vectorize, arguments.threads)
            if arguments.warm
            else None
        )
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
    if warm_measured is not None:
        (one, busy_one), (two, busy_two) = (
            tuple(statistics.median(value[i] for value in warm_measured[jobs]) for i in (0, 1)) for jobs in (1, 2)
        )
        print(
            f"  warm workers (worker server), medians of {arguments.rounds}: --jobs 1: {one:.1f} s   --jobs 2: "
            f"{two:.1f} s   speedup {one / two:.2f}x (target >= 1.8x: {'met' if one / two >= 1.8 else 'NOT met'}); "
            f"workers busy {100 * busy_one:.0f}% / {100 * busy_two:.0f}%"
        )
    print(
        f"  harness overhead per search trial: {per_search:.2f} ms (target < 10 ms); "
        f"per plain stored trial (run_trials' skip check): {per_plain:.2f} ms"
    )
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
