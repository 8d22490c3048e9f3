"""Local runner scaling: 24 short torch MLP trials with jobs=2 vs jobs=1, measured in one run.

Prints the speedup, end to end (wall time of `run_trials` with one worker over two, worker
start-up included: a fixed few seconds per worker for importing torch) and at steady state
(trials per second once every worker is warm), and where a warm worker's trial time goes
(its first trial excluded), per trial, median over warm trials:

    driver time   dispatch to recorded, as the driver sees it
    train         the optimizer steps (TrialResult.train_seconds)
    evaluation    every split evaluated before training and after each epoch (eval_seconds);
                  part of the trial as its suite defines it (10 epochs = 11 full evaluations)
    overhead      driver time - train - evaluation: everything the harness adds per trial
      in worker     worker wall - train - evaluation: model build, initial weights, data on device
      runner        driver time - worker wall: claim, pipe round trip, pickling, SQLite commit

The overhead target (< 50 ms) is about `overhead`; `driver time - train` (which
includes the evaluation) is printed too. Targets: speedup >= 1.8x, overhead < 50 ms.

    python -m benchmarks.bench_jobs [--trials 24] [--epochs 10] [--rounds 3]

These in-process rounds run every trial alone (vectorize 'off'): they measure the per-trial path.
`--end-to-end` instead times the whole command as a user runs it: `harness run` as a subprocess on a
suite of 24 five-epoch MNIST-1D MLP trials (3 learning rates x 8 seeds), --jobs 1 vs --jobs 2, each
with --vectorize off and auto (stacked trials), interpreter start, suite loading, data, worker start
and the final tables included; and the fixed cost of the command, the wall time of `harness run` on
a one-trial, one-epoch suite minus that trial's own wall_seconds in the worker, split into the part before
the trial starts (the issue's measure) and the part after it ends (targets: >= 1.8x for --jobs 2 over
--jobs 1, fixed cost < 1.5 s). Beside each speedup it prints its ceiling: what --jobs 2 could reach if it
paid the measured fixed cost once and two workers split the rest perfectly, and the fixed cost 1.8x
would need.

    python -m benchmarks.bench_jobs --end-to-end [--rounds 3] [--baseline OTHER_TREE] [--warm] [--pinned]

`--pinned` times this tree's commands again with `--threads 1`: every worker on one thread whatever
--jobs, so --jobs 2 over --jobs 1 measures what a second worker adds alone. By default --jobs 1 gives its
one worker both cores (2 threads), and that ratio is the target's; the pinned one is printed beside it.

`--warm` times this tree's commands again with a worker server running (`harness workers start`: workers
past their imports, handed over to each command), each command 3 s after the last. `--baseline` times the
same commands with another source tree's harness too (a checkout of an earlier
commit), interleaved round by round, so a before/after comparison shares the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import mnist1d_spec
from harness.runner import RunEvent, run_trials
from harness.spec import Trial
from harness.store import Store


def make_trials(count: int, epochs: int) -> list[Trial]:
    """`count` MLP 40-100-100-10 trials on MNIST-1D (Adam, batch 100), differing by seed and lr."""
    trials = []
    for index in range(count):
        lr = (1e-3, 3e-3, 1e-2)[index % 3]
        spec = mnist1d_spec({"mlp": {"hidden": [100, 100]}}, "torch", epochs=epochs, lr=lr, seed=index // 3)
        trials.append(Trial(suite="bench-jobs", arm=f"adam-lr{lr:g}", cell=(("lr", f"{lr:g}"),), spec=spec))
    return trials


def measure(trials: list[Trial], jobs: int) -> dict[str, float]:
    """One run on a fresh store: wall seconds, warm throughput, and per-trial time split of warm workers."""
    events: list[tuple[float, RunEvent]] = []
    with tempfile.TemporaryDirectory() as directory, Store(Path(directory)) as store:
        start = time.perf_counter()
        summary = run_trials(
            trials,
            store,
            jobs=jobs,
            quiet=True,
            vectorize="off",
            on_event=lambda event: events.append((time.perf_counter(), event)),
        )
        wall = time.perf_counter() - start
    assert summary.ok == len(trials), summary
    finished = [(moment, event) for moment, event in events if event.kind == "finished"]
    warm = [event for _, event in finished if event.worker_trials > 0]
    # Steady state: from the moment the last worker finished its first (cold) trial to the end.
    all_warm_at = max(moment for moment, event in finished if event.worker_trials == 0)
    steady = [moment for moment, _ in finished if moment > all_warm_at]

    def median_ms(values) -> float:
        return 1000 * statistics.median(list(values))

    return {
        "wall": wall,
        "train": sum(event.result.train_seconds for _, event in finished),
        # trials per second with every worker warm; NaN when the last cold trial ended the run (too few trials)
        "warm_throughput": len(steady) / (max(steady) - all_warm_at) if steady else float("nan"),
        "driver_ms": median_ms(event.seconds for event in warm),
        "train_ms": median_ms(event.result.train_seconds for event in warm),
        "evaluation_ms": median_ms(event.result.eval_seconds for event in warm),
        "driver_minus_train_ms": median_ms(event.seconds - event.result.train_seconds for event in warm),
        "overhead_ms": median_ms(
            event.seconds - event.result.train_seconds - event.result.eval_seconds for event in warm
        ),
        "in_worker_ms": median_ms(
            event.result.wall_seconds - event.result.train_seconds - event.result.eval_seconds for event in warm
        ),
        "runner_ms": median_ms(event.seconds - event.result.wall_seconds for event in warm),
        "warm_trials": len(warm),
    }


END_TO_END_SUITE = """\
name: bench-jobs
dataset: mnist1d
model: {{mlp: {{hidden: [100, 100]}}}}
loss: cross_entropy
optimizer: {{name: adam, lr: 0.001}}
initializer: he_normal
training: {{epochs: {epochs}, batch_size: 100}}
seeds: {seeds}
backends: [torch]
"""
LR_GRID = "grid:\n  optimizer.lr: [0.001, 0.003, 0.01]\n"


WARM = "this tree, warm workers"  # --warm: the same commands with `harness workers` running
WARM_PAUSE_SECONDS = 3.0  # between warm commands: the server's replacement spares finish their imports


def command_seconds(*arguments: Any) -> float:
    """Wall seconds of `harness run SUITE` as a subprocess on a fresh store (the arguments of `command_span`)."""
    start, end = command_span(*arguments)
    return end - start


def command_environment(tree: str | None, runtime: str | None) -> dict[str, str]:
    """The commands' environment: `tree` first on the path; `runtime` (XDG_RUNTIME_DIR) is where the warm
    entries' worker server listens, so the other entries never find it."""
    return {**os.environ, "PYTHONPATH": tree or os.getcwd(), **({"XDG_RUNTIME_DIR": runtime} if runtime else {})}


def command_span(
    suite: Path,
    store: Path,
    jobs: int,
    vectorize: str,
    tree: str | None = None,
    runtime: str | None = None,
    threads: int | None = None,
) -> tuple[float, float]:
    """(start, end) of `harness run SUITE` as a subprocess, as Unix times (comparable with a trial's started_at)."""
    command = [sys.executable, "-m", "harness", "run", str(suite), "--store", str(store), "--jobs", str(jobs)]
    command += ["--quiet", "--vectorize", vectorize] + (["--threads", str(threads)] if threads else [])
    environment = command_environment(tree, runtime)
    if runtime:
        time.sleep(WARM_PAUSE_SECONDS)
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment, cwd=tree or os.getcwd())
    return start, time.time()


def workers_command(action: str, runtime: str) -> None:
    """`harness workers ACTION` for the warm entries (their own socket folder)."""
    environment = command_environment(None, runtime)
    subprocess.run(
        [sys.executable, "-m", "harness", "workers", action], check=True, env=environment, stdout=subprocess.DEVNULL
    )


PINNED = "threads pinned to 1"


def ceiling(one: float, fixed: float) -> float:
    """The best --jobs 2 over --jobs 1 a command taking `one` seconds at --jobs 1 can reach when `fixed` of them
    is its fixed cost (paid once whatever --jobs) and two workers split the rest perfectly:
    one / (fixed + (one - fixed) / 2). Generous: two workers' imports share the cores, so --jobs 2 pays more."""
    return one / (fixed + (one - fixed) / 2)


def end_to_end(rounds: int, baseline: str | None = None, warm: bool = False, pinned: bool = False) -> None:
    """The whole command, as a user runs it (see the module docstring); with `baseline`, the same commands with
    that source tree's harness too, interleaved in the same rounds, so the two compare under the same load; with
    `warm`, this tree's commands again with a worker server running (`harness workers`), each command
    WARM_PAUSE_SECONDS after the last, taught what to keep by one unmeasured run of each command first."""
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    trees = {"this tree": os.getcwd(), **({"baseline": str(Path(baseline).resolve())} if baseline else {})}
    runtime = tempfile.mkdtemp(prefix="hb", dir="/tmp") if warm else None  # short: a socket path holds ~100 bytes
    if warm:
        trees[WARM] = os.getcwd()
    if pinned:
        trees[PINNED] = os.getcwd()
    order = [(1, "off"), (2, "off"), (1, "auto"), (2, "auto")]
    walls: dict[tuple[str, int, str], list[float]] = {}
    fixed: dict[str, list[float]] = {name: [] for name in trees}
    before: dict[str, list[float]] = {name: [] for name in trees}  # command start -> the trial's started_at
    after: dict[str, list[float]] = {name: [] for name in trees}  # the trial's finished_at -> command end
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        folder = Path(directory)
        suite = folder / "bench.yaml"
        suite.write_text(END_TO_END_SUITE.format(epochs=5, seeds=8) + LR_GRID)
        tiny = folder / "tiny.yaml"
        tiny.write_text(END_TO_END_SUITE.format(epochs=1, seeds=1))
        if runtime:
            workers_command("start", runtime)
            stack.callback(shutil.rmtree, runtime, ignore_errors=True)
            stack.callback(workers_command, "stop", runtime)
            for jobs, vectorize in order:  # the server learns which workers these commands take
                command_seconds(suite, folder / f"teach-{jobs}-{vectorize}", jobs, vectorize, None, runtime)
            command_seconds(tiny, folder / "teach-tiny", 1, "auto", None, runtime)
        for round_index in range(rounds):
            for name, tree in trees.items() if round_index % 2 == 0 else reversed(trees.items()):
                for jobs, vectorize in order if round_index % 2 == 0 else order[::-1]:
                    store = folder / f"store-{name}-{round_index}-{jobs}-{vectorize}"
                    seconds = command_seconds(
                        suite,
                        store,
                        jobs,
                        vectorize,
                        tree,
                        runtime if name == WARM else None,
                        1 if name == PINNED else None,
                    )
                    walls.setdefault((name, jobs, vectorize), []).append(seconds)
                store = folder / f"tiny-{name}-{round_index}"
                start, end = command_span(
                    tiny, store, 1, "auto", tree, runtime if name == WARM else None, 1 if name == PINNED else None
                )
                with Store(store) as opened:
                    trial = opened.trials_frame().iloc[0]
                fixed[name].append(end - start - float(trial["wall_seconds"]))
                before[name].append(datetime.fromisoformat(trial["started_at"]).timestamp() - start)
                after[name].append(end - datetime.fromisoformat(trial["finished_at"]).timestamp())
                print(
                    f"round {round_index + 1} {name}: "
                    + ", ".join(f"jobs={j} {v} {walls[(name, j, v)][-1]:.2f} s" for j, v in order)
                    + f"; fixed cost {fixed[name][-1]:.2f} s; load {os.getloadavg()[0]:.2f}"
                )
    median = {key: statistics.median(values) for key, values in walls.items()}
    for name in trees:
        print(
            f"\n{name}: 24 trials x 5 epochs, `harness run` end to end, {os.cpu_count()} cores, medians of {rounds} rounds:"
        )
        cost = statistics.median(fixed[name])
        for vectorize in ("off", "auto"):
            one, two = median[(name, 1, vectorize)], median[(name, 2, vectorize)]
            print(
                f"  --vectorize {vectorize}: jobs=1 {one:.2f} s, jobs=2 {two:.2f} s, "
                f"speedup {one / two:.2f}x (target >= 1.8x: {'met' if one / two >= 1.8 else 'NOT met'}); "
                f"ceiling {ceiling(one, cost):.2f}x, 1.8x needs a fixed cost < {one * (2 / 1.8 - 1):.2f} s"
            )
        best = min(value for key, value in median.items() if key[0] == name)
        print(
            f"  --vectorize auto vs off at jobs=2: {median[(name, 2, 'off')] / median[(name, 2, 'auto')]:.2f}x; "
            f"fastest {best:.2f} s"
        )
        start = statistics.median(before[name])
        print(
            f"  fixed cost (command wall - trial wall, 1 trial): {cost:.2f} s (< 1.5 s: {'yes' if cost < 1.5 else 'no'})"
            f" = {start:.2f} s before the trial starts + {statistics.median(after[name]):.2f} s after it ends"
        )
        print(f"  before the first trial starts: {start:.2f} s (target < 1.5 s: {'met' if start < 1.5 else 'NOT met'})")
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (40 steps each)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved jobs=1 / jobs=2 rounds; medians reported")
    parser.add_argument("--end-to-end", action="store_true", help="time the whole `harness run` command instead")
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="--end-to-end: also time the same commands with the harness of another source tree (e.g. a `git "
        "worktree` of an earlier commit), interleaved in the same rounds",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="--end-to-end: also time this tree's commands with a worker server running (`harness workers start`)",
    )
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="--end-to-end: also time this tree's commands with --threads 1 (what a second worker adds alone)",
    )
    arguments = parser.parse_args()
    if arguments.end_to_end:
        end_to_end(arguments.rounds, arguments.baseline, arguments.warm, arguments.pinned)
        return
    trials = make_trials(arguments.trials, arguments.epochs)
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    for round_index in range(arguments.rounds):
        for jobs in (1, 2) if round_index % 2 == 0 else (2, 1):
            results[jobs].append(measure(trials, jobs))
            last = results[jobs][-1]
            print(
                f"round {round_index + 1} jobs={jobs}: wall {last['wall']:.2f} s, sum of train_seconds {last['train']:.2f} s, "
                f"warm throughput {last['warm_throughput']:.2f} trials/s; warm trial (median of {last['warm_trials']:.0f}): "
                f"driver {last['driver_ms']:.0f} ms = train {last['train_ms']:.0f} + evaluation {last['evaluation_ms']:.0f} "
                f"+ overhead {last['overhead_ms']:.1f} (in worker {last['in_worker_ms']:.1f}, runner {last['runner_ms']:.1f}) ms; "
                f"load {os.getloadavg()[0]:.2f}"
            )

    def median(jobs: int, key: str) -> float:
        return statistics.median(result[key] for result in results[jobs])

    speedup = median(1, "wall") / median(2, "wall")
    steady_speedup = median(2, "warm_throughput") / median(1, "warm_throughput")
    print(
        f"\n{arguments.trials} trials x {arguments.epochs} epochs, MLP 40-100-100-10 on MNIST-1D (torch), "
        f"{os.cpu_count()} cores, medians of {arguments.rounds} rounds:"
    )
    print(
        f"  jobs=1 wall {median(1, 'wall'):.2f} s   jobs=2 wall {median(2, 'wall'):.2f} s   "
        f"speedup {speedup:.2f}x end to end (worker start-up included)"
    )
    print(
        f"  warm throughput: jobs=1 {median(1, 'warm_throughput'):.2f} trials/s, jobs=2 {median(2, 'warm_throughput'):.2f} "
        f"trials/s   speedup {steady_speedup:.2f}x  (target >= 1.8x)"
    )
    for jobs in (1, 2):
        print(
            f"  jobs={jobs} warm trial: driver {median(jobs, 'driver_ms'):.0f} ms = train {median(jobs, 'train_ms'):.0f} "
            f"+ evaluation {median(jobs, 'evaluation_ms'):.0f} + overhead {median(jobs, 'overhead_ms'):.1f} ms "
            f"(target < 50 ms; in worker {median(jobs, 'in_worker_ms'):.1f}, runner {median(jobs, 'runner_ms'):.1f}); "
            f"driver - train {median(jobs, 'driver_minus_train_ms'):.0f} ms"
        )
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
