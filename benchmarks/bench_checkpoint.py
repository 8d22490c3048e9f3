"""Checkpoint overhead: what writing a checkpoint after every epoch costs, against the epoch's training time.

Workload: the `gru` arm of suites/architectures.yaml (bidirectional GRU, 6 units, on MNIST-1D as a
(40, 1) sequence; Adam 1e-2, batch 100 in order; 40 steps an epoch), seed 0, in each backend. The
suite's 150 epochs take minutes per trial here, so a few epochs are measured (--epochs, default 4):
the per-epoch cost of a checkpoint does not depend on how many epochs come after it.

Side by side in one process, interleaved (benchmarks/common.py), the same trial runs
    plain:       no checkpoints
    checkpoint:  training.checkpoint_every: 1 (a checkpoint after every epoch but the last), into a
                 temporary folder (a real file: safetensors bytes, renamed over the last one)
and the script prints per backend the median optimizer time per epoch (TrialResult.train_seconds),
the median time to write one checkpoint (TrialResult.checkpoint_seconds / checkpoints), their ratio
(target < 2%), and the ratio of whole-trial wall times checkpoint/plain (noisier: evaluation included).

    python -m benchmarks.bench_checkpoint [--epochs 4] [--repeats 3] [--threads 1] [--backend torch --backend keras]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import Any

from harness.adapters import get_adapter
from harness.adapters.loop import TrialResult, train_trial
from harness.data import load_dataset
from harness.suite import load_suite

SUITE = Path(__file__).resolve().parent.parent / "suites" / "architectures.yaml"


def gru_trial(backend: str, epochs: int) -> Any:
    """The architectures suite's gru arm, seed 0, in `backend`, cut to `epochs` epochs."""
    suite = load_suite(SUITE, backends=[backend])
    spec = next(t.spec for t in suite.trials if t.arm == "gru" and t.spec.seed == 0)
    return dataclasses.replace(spec, training=dataclasses.replace(spec.training, epochs=epochs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", action="append", help="repeatable; default torch and keras")
    args = parser.parse_args()
    for backend in args.backend or ["torch", "keras"]:
        adapter = get_adapter(backend)
        adapter.configure(args.threads)
        plain = gru_trial(backend, args.epochs)
        checkpointed = dataclasses.replace(plain, training=dataclasses.replace(plain.training, checkpoint_every=1))
        data = load_dataset(plain.dataset)
        results: dict[str, list[TrialResult]] = {"plain": [], "checkpoint": []}
        with tempfile.TemporaryDirectory(prefix="bench_checkpoint_") as folder:
            train_trial(plain, adapter, data)  # warm-up: tracing, allocator
            for repeat in range(args.repeats):
                for label in ("plain", "checkpoint") if repeat % 2 == 0 else ("checkpoint", "plain"):
                    spec, where = (plain, None) if label == "plain" else (checkpointed, folder)
                    result = train_trial(spec, adapter, data, where)
                    results[label].append(result)
                    print(
                        f"{backend} repeat {repeat + 1} {label:10s} train {result.train_seconds:7.3f} s  "
                        f"checkpoints {result.checkpoint_seconds:6.4f} s  wall {result.wall_seconds:7.3f} s",
                        flush=True,
                    )
        checkpoints = args.epochs - 1
        train_epoch = statistics.median(r.train_seconds / args.epochs for r in results["checkpoint"])
        write = statistics.median(r.checkpoint_seconds / checkpoints for r in results["checkpoint"])
        wall = statistics.median(r.wall_seconds for r in results["checkpoint"]) / statistics.median(
            r.wall_seconds for r in results["plain"]
        )
        same = all(r.metrics == results["plain"][0].metrics for r in results["checkpoint"])
        print(
            f"\n{backend}: gru arm, {args.epochs} epochs, threads={args.threads}, {args.repeats} repeats, "
            f"{adapter.versions()}\n"
            f"  train per epoch (median)      {train_epoch:.3f} s\n"
            f"  one checkpoint write (median) {write:.4f} s\n"
            f"  ratio checkpoint/train epoch  {write / train_epoch:.2%}  (target < 2%)\n"
            f"  wall checkpoint/plain         {wall:.3f}\n"
            f"  metrics identical with and without checkpoints: {same}\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
