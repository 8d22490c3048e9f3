"""Adapter overhead: the torch adapter's training time vs a hand-written PyTorch loop.

Workload: MLP 40-100-100-10 (ReLU, he_normal, shared initial weights), Adam lr 1e-3, batch 100,
20 epochs on MNIST-1D (4000 training samples: 800 steps). Both sides train the SAME network
from the SAME initial weights on the SAME batches (harness.data.batches.epoch_batches), with
the same thread count, in one process, interleaved (the order alternates every repeat; shared code in
benchmarks/common.py).

    adapter: TrialResult.train_seconds of harness.adapters.loop.train_trial (the optimizer
             steps alone; per-epoch evaluation is timed separately by the loop)
    hand:    nn.Sequential + torch.optim.Adam + F.cross_entropy, training tensors indexed in
             memory, timed the same way (per epoch, index arrays -> steps -> losses)
Prints both medians and the ratio adapter/hand. Target: ratio <= 1.10.

    python -m benchmarks.bench_torch_loop [--repeats 7] [--epochs 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from benchmarks.common import (
    REFERENCE_MLP,
    adapter_seconds,
    interleaved,
    mnist1d_spec,
    torch_loop_seconds,
)
from harness.adapters import get_adapter
from harness.data import load_dataset
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.spec import TrialSpec, initial_weights


def hand_written_seconds(spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train nn.Sequential from the same shared initial weights with a plain PyTorch loop."""
    network = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    weights = initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed)
    with torch.no_grad():
        for index, linear in zip((0, 1, 2), (network[0], network[2], network[4])):
            linear.weight.copy_(
                torch.from_numpy(weights[f"{index}.dense.kernel"].T.copy())
            )  # canonical (in, out) -> (out, in)
            linear.bias.copy_(torch.from_numpy(weights[f"{index}.dense.bias"]))
    return torch_loop_seconds(network, torch.tensor(data.x_train), torch.tensor(data.y_train), spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    args = parser.parse_args()

    adapter = get_adapter("torch")
    adapter.configure(args.threads)  # process-wide: applies to the hand loop too
    spec = mnist1d_spec(REFERENCE_MLP, "torch", epochs=args.epochs, lr=1e-3)
    data = load_dataset(spec.dataset)
    times = interleaved(
        {"adapter": lambda: adapter_seconds(spec, adapter, data), "hand": lambda: hand_written_seconds(spec, data)},
        args.repeats,
        warm_up=True,
    )
    adapter_median, hand_median = statistics.median(times["adapter"]), statistics.median(times["hand"])
    steps = args.epochs * len(epoch_batches(len(data.y_train), spec.training, spec.seed, 1))
    print(f"\n{steps} Adam steps, threads={args.threads}, torch {torch.__version__}, {args.repeats} repeats")
    print(f"adapter median {adapter_median:.3f} s  ({1e6 * adapter_median / steps:.0f} us/step)")
    print(f"hand    median {hand_median:.3f} s  ({1e6 * hand_median / steps:.0f} us/step)")
    print(f"ratio adapter/hand = {adapter_median / hand_median:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
