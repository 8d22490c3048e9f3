"""Local runner scaling: 24 short torch MLP trials with jobs=2 vs jobs=1, measured in one run.

Prints the speedup, end to end (wall time of `run_trials` with one worker over two, worker
start-up included: a fixed ~2-4 s per worker for importing torch) and at steady state (trials
per second once every worker is warm), and the per-trial overhead once a worker is warm (its
first trial excluded):
    driver overhead  = driver time from dispatch to recorded  - train_seconds
    runner overhead  = driver time from dispatch to recorded  - the worker's wall_seconds
The first is what issue 7 targets (< 50 ms); it includes the trial's own model build and
per-epoch evaluation, which belong to the trial rather than to the runner; the second is the
runner alone (pipe round trip, pickling, scheduling, the SQLite commit).
Targets (issue 7): speedup >= 1.8x, overhead < 50 ms.

    python benchmarks/bench_jobs.py [--trials 24] [--epochs 10] [--rounds 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness.data import dataset_info, resolve_dataset
from harness.runner import RunEvent, run_trials
from harness.spec import RegularizerSpec, TrainingSpec, Trial, TrialSpec, resolve_component, resolve_model
from harness.store import Store


def make_trials(count: int, epochs: int) -> list[Trial]:
    """`count` MLP 40-100-100-10 trials on MNIST-1D (Adam, batch 100), differing by seed and lr."""
    dataset = resolve_dataset("mnist1d")
    info = dataset_info(dataset)
    trials = []
    for index in range(count):
        lr = (1e-3, 3e-3, 1e-2)[index % 3]
        spec = TrialSpec(
            dataset=dataset,
            model=resolve_model({"mlp": {"hidden": [100, 100]}}, num_outputs=info.num_outputs),
            loss=resolve_component("loss", "cross_entropy", "loss"),
            optimizer=resolve_component("optimizer", {"name": "adam", "lr": lr}, "optimizer"),
            initializer=resolve_component("initializer", "he_normal", "initializer"),
            regularizer=RegularizerSpec(),
            training=TrainingSpec(epochs=epochs, batch_size=100),
            seed=index // 3,
            backend="torch",
        )
        trials.append(Trial(suite="bench-jobs", arm=f"adam-lr{lr:g}", cell=(("lr", f"{lr:g}"),), spec=spec))
    return trials


def measure(trials: list[Trial], jobs: int) -> dict[str, float]:
    """One run on a fresh store: wall seconds, warm throughput, and per-trial overheads of warm workers."""
    events: list[tuple[float, RunEvent]] = []
    with tempfile.TemporaryDirectory() as directory, Store(Path(directory)) as store:
        start = time.perf_counter()
        summary = run_trials(
            trials, store, jobs=jobs, quiet=True, on_event=lambda event: events.append((time.perf_counter(), event)),
        )
        wall = time.perf_counter() - start
    assert summary.ok == len(trials), summary
    finished = [(moment, event) for moment, event in events if event.kind == "finished"]
    warm = [event for _, event in finished if event.worker_trials > 0]
    # Steady state: from the moment the last worker finished its first (cold) trial to the end.
    all_warm_at = max(moment for moment, event in finished if event.worker_trials == 0)
    steady = [moment for moment, _ in finished if moment > all_warm_at]
    return {
        "wall": wall,
        "train": sum(event.result.train_seconds for _, event in finished),
        "warm_throughput": len(steady) / (max(steady) - all_warm_at),  # trials per second, all workers warm
        "driver_overhead_ms": 1000 * statistics.median(event.seconds - event.result.train_seconds for event in warm),
        "runner_overhead_ms": 1000 * statistics.median(event.seconds - event.result.wall_seconds for event in warm),
        "warm_trials": len(warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (40 steps each)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved jobs=1 / jobs=2 rounds; medians reported")
    arguments = parser.parse_args()
    trials = make_trials(arguments.trials, arguments.epochs)
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for round_index in range(arguments.rounds):
        for jobs in (1, 2) if round_index % 2 == 0 else (2, 1):
            results[jobs].append(measure(trials, jobs))
            last = results[jobs][-1]
            print(
                f"round {round_index + 1} jobs={jobs}: wall {last['wall']:.2f} s, sum of train_seconds {last['train']:.2f} s, "
                f"warm throughput {last['warm_throughput']:.2f} trials/s, "
                f"warm per-trial overhead: driver {last['driver_overhead_ms']:.1f} ms, runner {last['runner_overhead_ms']:.1f} ms "
                f"(median of {last['warm_trials']:.0f} trials)"
            )

    def median(jobs: int, key: str) -> float:
        return statistics.median(result[key] for result in results[jobs])

    speedup = median(1, "wall") / median(2, "wall")
    steady_speedup = median(2, "warm_throughput") / median(1, "warm_throughput")
    print(f"\n{arguments.trials} trials x {arguments.epochs} epochs, MLP 40-100-100-10 on MNIST-1D (torch), {os.cpu_count()} cores:")
    print(f"  jobs=1 wall {median(1, 'wall'):.2f} s   jobs=2 wall {median(2, 'wall'):.2f} s   "
          f"speedup {speedup:.2f}x end to end (worker start-up included)")
    print(f"  warm throughput: jobs=1 {median(1, 'warm_throughput'):.2f} trials/s, jobs=2 {median(2, 'warm_throughput'):.2f} "
          f"trials/s   speedup {steady_speedup:.2f}x  (target >= 1.8x)")
    for jobs in (1, 2):
        print(
            f"  jobs={jobs} warm per-trial overhead: driver - train_seconds {median(jobs, 'driver_overhead_ms'):.1f} ms "
            f"(target < 50 ms), driver - worker wall {median(jobs, 'runner_overhead_ms'):.1f} ms"
        )


if __name__ == "__main__":
    main()
