"""What reusing a finished trial's Keras model saves: tiny trials one after another in one worker, with and without reuse.

Workload: MLP 40-100-100-10 (ReLU, he_normal) on MNIST-1D, Adam, batch 100 (40 steps per epoch),
`--epochs` epochs per trial (2: a tiny trial, where tracing dominates), trials that differ only in
seed and learning rate (a seeds x lr grid's worth: what harness.adapters.keras.reuse keys around).
Two adapters in one process, the same trials interleaved trial by trial (reuse, then not, then the
order alternates), so machine drift hits both sides alike:

    reuse     the adapter as the runner's workers use it: a finished trial's model, with its traced
              functions, is restarted for the next trial of the same form
    no reuse  the same adapter keeping nothing: every trial builds and traces anew (the harness before reuse)

Prints per trial compile_seconds, train_seconds, eval_seconds and wall_seconds (TrialResult) of both
sides, then the first trial and the median of the later ones, and whether every trial's metrics were
identical on both sides (they must be: reuse changes no result).

    python -m benchmarks.bench_keras_reuse [--trials 8] [--epochs 2] [--threads 1] [--backend keras]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up banner out of the table

from benchmarks.common import REFERENCE_MLP, mnist1d_spec
from harness.adapters import get_adapter
from harness.adapters.loop import TrialResult, train_trial
from harness.data import load_dataset

COLUMNS = ("compile_seconds", "train_seconds", "eval_seconds", "wall_seconds")
RATES = (1e-3, 3e-3)


def row(result: TrialResult) -> str:
    return "  ".join(f"{getattr(result, column):7.3f}" for column in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per side (>= 3)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="keras", choices=["keras", "keras-jax", "keras-torch"])
    args = parser.parse_args()
    if args.trials < 3:
        parser.error("--trials must be >= 3 (the first trial, and a median of the later ones)")
    reuse = get_adapter(args.backend)  # imports Keras on that backend: before anything else imports it
    reuse.configure(args.threads)
    from harness.adapters.keras.reuse import ReusableModels

    fresh = type(reuse)(args.backend)  # a second adapter in the same process, keeping no model
    fresh.reusable = ReusableModels(limit=0)
    base = mnist1d_spec(REFERENCE_MLP, args.backend, epochs=args.epochs, lr=RATES[0])
    data = load_dataset(base.dataset)
    specs = [
        dataclasses.replace(
            base,
            seed=trial,
            optimizer=dataclasses.replace(
                base.optimizer, params=(*dict(base.optimizer.params, lr=RATES[trial % len(RATES)]).items(),)
            ),
        )
        for trial in range(args.trials)
    ]
    sides: dict[str, list[TrialResult]] = {"reuse": [], "no reuse": []}
    adapters = {"reuse": reuse, "no reuse": fresh}
    header = "  ".join(f"{column.replace('_seconds', ''):>7s}" for column in COLUMNS)
    print(f"trial  lr      | reuse: {header} | no reuse: {header}")
    for index, spec in enumerate(specs):
        order = list(sides) if index % 2 == 0 else list(sides)[::-1]
        for label in order:
            sides[label].append(train_trial(spec, adapters[label], data))
        print(
            f"{index + 1:5d}  {spec.optimizer['lr']:.0e} |        {row(sides['reuse'][-1])} |"
            f"           {row(sides['no reuse'][-1])}",
            flush=True,
        )
    identical = all(a.metrics == b.metrics for a, b in zip(sides["reuse"], sides["no reuse"]))
    steps = args.epochs * -(-len(data.y_train) // base.training.batch_size)
    print(f"\n{args.trials} trials x {steps} steps, threads={args.threads}, {reuse.versions()}")
    for column in COLUMNS:
        first = {label: results[0] for label, results in sides.items()}
        later = {label: statistics.median(getattr(r, column) for r in results[1:]) for label, results in sides.items()}
        print(
            f"{column:16s} first trial: reuse {getattr(first['reuse'], column):.3f} s, no reuse "
            f"{getattr(first['no reuse'], column):.3f} s | later trials (median): reuse {later['reuse']:.3f} s, "
            f"no reuse {later['no reuse']:.3f} s"
        )
    # the later trials only: the process' first trial also pays the framework's own start (jax: backend
    # start-up, each eager primitive compiled on first use), on whichever side runs first
    walls = {label: sum(r.wall_seconds for r in results[1:]) for label, results in sides.items()}
    print(
        f"wall_seconds of trials 2..{args.trials}: reuse {walls['reuse']:.2f} s, no reuse {walls['no reuse']:.2f} s, "
        f"ratio no reuse/reuse {walls['no reuse'] / walls['reuse']:.2f}"
    )
    print(f"metrics identical trial by trial: {identical}")
    if not identical:
        raise SystemExit("reuse changed a trial's metrics")


if __name__ == "__main__":
    main()
