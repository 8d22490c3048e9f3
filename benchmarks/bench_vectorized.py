"""Vectorized trials: K seeds of the reference MLP trained as one stacked model vs one after another.

Workload: MLP 40-100-100-10 (ReLU, he_normal), Adam lr 1e-3, batch 100, 20 epochs of MNIST-1D's 4000
training samples (800 steps), seeds 0..K-1. Both sides run through the harness's own code, evaluation of
every split after every epoch and all bookkeeping included, in one process with the same thread count:

    sequential:  harness.adapters.loop.train_trial, once per seed
    vectorized:  harness.adapters.vectorize.train_group, all K seeds at once

The vectorized side trains the K trials as `harness run` does: cut into stacked groups by the runner's
own grouping (harness.runner.grouping.group_tasks, one worker: at most MAX_MEMBERS = 16 members a group
on the CPU, so K = 32 is two stacks of 16; `--one-stack` trains all K as one stack instead, which is
slower per trial at K = 32 here, its activations outgrowing the core's cache). The `stacks` column says
how the K trials were cut.

Prints trials per second of each and the ratio vectorized/sequential for K = 1, 2, 4, 8, 16, 32, per
thread count, and whether the targets are met (1 thread: K = 8 at >= 2.5x, K = 32 at >= 3x). Runs on
the GPU when torch sees one (--device auto), else on the CPU. The best of --repeats runs of each side
is kept (the machine may be shared: other work only ever slows a run). On a machine shared with other
work, `--clock cpu` times each side by this process's CPU time instead of the wall clock: time spent
waiting for a core no longer counts (contention for caches and memory still does); at 1 thread it reads
as the wall clock of a quiet machine, at more threads it is the CPU time of all of them, not a speed.

    python -m benchmarks.bench_vectorized [--sizes 1 2 4 8 16 32] [--threads 1 2] [--epochs 20] [--repeats 1]
                                          [--clock wall|cpu] [--one-stack]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from benchmarks.common import REFERENCE_MLP, mnist1d_spec
from harness.adapters import get_adapter
from harness.adapters.loop import train_trial
from harness.adapters.vectorize import train_group
from harness.data import load_dataset
from harness.runner.grouping import group_tasks
from harness.runner.tasks import Task
from harness.spec import Trial

TARGETS = {8: 2.5, 32: 3.0}  # K -> least speedup at 1 thread on the CPU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when torch sees a GPU)")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall: time.perf_counter; cpu: time.process_time"
    )
    parser.add_argument(
        "--one-stack", action="store_true", help="train all K trials as one stack, not as the runner groups them"
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    adapter = get_adapter("torch")
    base = dataclasses.replace(mnist1d_spec(REFERENCE_MLP, "torch", epochs=args.epochs, lr=1e-3), device=device)
    data = load_dataset(base.dataset)
    print(
        f"device {adapter.device_info(device)}; load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}; "
        f"{args.clock} clock; {args.epochs} epochs; best of {args.repeats}"
    )
    met = True
    for threads in args.threads:
        adapter.configure(threads)
        train_group([base], adapter, data)  # warm-up: first-call costs of both paths
        train_trial(base, adapter, data)
        print(f"\nthreads {threads}\n   K  stacks  sequential trials/s  vectorized trials/s  speedup")
        for size in args.sizes:
            specs = [dataclasses.replace(base, seed=seed) for seed in range(size)]
            groups = [specs] if args.one_stack else stacks(specs)
            sequential = vectorized = float("inf")
            for _ in range(args.repeats):
                start = clock()
                alone = [train_trial(spec, adapter, data) for spec in specs]
                sequential = min(sequential, clock() - start)
                start = clock()
                stacked = [result for group in groups for result in train_group(group, adapter, data)]
                vectorized = min(vectorized, clock() - start)
            if any(result.status != "ok" for result in alone + stacked):
                raise RuntimeError("a benchmark trial did not end ok")
            speedup = sequential / vectorized
            target = TARGETS.get(size) if threads == 1 and device == "cpu" else None
            verdict = "" if target is None else f"   target >= {target}x: {'met' if speedup >= target else 'NOT met'}"
            met = met and (target is None or speedup >= target)
            cut = "+".join(str(len(group)) for group in groups)
            print(
                f"{size:4d}  {cut:>6}  {size / sequential:19.2f}  {size / vectorized:19.2f}  {speedup:6.2f}x{verdict}"
            )
    print(f"\ntargets {'met' if met else 'NOT met'}; load average {os.getloadavg()[0]:.1f}")


def stacks(specs: list) -> list[list]:
    """The specs cut into stacked groups as `harness run --jobs 1` cuts them (group_tasks)."""
    tasks = [Task(index, Trial("bench", "reference", (), spec)) for index, spec in enumerate(specs)]
    grouping = group_tasks(tasks, jobs=1)
    if grouping.grouped != len(specs):
        raise RuntimeError(f"the reference trials did not all stack: {grouping.describe()}")
    return [[trial.spec for trial in task.trials] for task in grouping.tasks]


if __name__ == "__main__":
    main()
