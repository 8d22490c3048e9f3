"""Adapter overhead: the torch adapter's training time vs a hand-written PyTorch loop.

Workload: MLP 40-100-100-10 (ReLU, he_normal, shared initial weights), Adam lr 1e-3, batch 100,
20 epochs on MNIST-1D (4000 training samples: 800 steps). Both sides train the SAME network
from the SAME initial weights on the SAME batches (harness.data.batches.epoch_batches), with
the same thread count, in one process, interleaved (the order alternates every repeat).

    adapter: TrialResult.train_seconds of harness.adapters.loop.train_trial (the optimizer
             steps alone; per-epoch evaluation is timed separately by the loop)
    hand:    nn.Sequential + torch.optim.Adam + F.cross_entropy, training tensors indexed in
             memory, timed the same way (per epoch, index arrays -> steps -> losses)
Prints both medians and the ratio adapter/hand. Target (issue 4): ratio <= 1.10.

    python benchmarks/bench_torch_loop.py [--repeats 7] [--epochs 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from harness.adapters import get_adapter
from harness.adapters.loop import train_trial
from harness.data import dataset_info, load_dataset, resolve_dataset
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.spec import RegularizerSpec, TrainingSpec, TrialSpec, initial_weights, resolve_component, resolve_model


def make_spec(epochs: int, seed: int = 0) -> TrialSpec:
    dataset = resolve_dataset("mnist1d")
    info = dataset_info(dataset)
    return TrialSpec(
        dataset=dataset,
        model=resolve_model({"mlp": {"hidden": [100, 100], "activation": "relu"}}, num_outputs=info.num_outputs),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", {"name": "adam", "lr": 1e-3}, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=100),
        seed=seed,
        backend="torch",
    )


def hand_written_seconds(spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train with a plain PyTorch loop; return (seconds in the steps, final mean minibatch loss)."""
    network = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    weights = initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed)
    with torch.no_grad():
        for index, linear in zip((0, 1, 2), (network[0], network[2], network[4])):
            linear.weight.copy_(torch.from_numpy(weights[f"{index}.dense.kernel"].T.copy()))
            linear.bias.copy_(torch.from_numpy(weights[f"{index}.dense.bias"]))
    optimizer = torch.optim.Adam(network.parameters(), lr=spec.optimizer["lr"])
    x = torch.tensor(data.x_train)
    y = torch.tensor(data.y_train)
    seconds = 0.0
    mean_loss = float("nan")
    network.train()
    for epoch in range(1, spec.training.epochs + 1):
        batches = epoch_batches(len(y), spec.training, spec.seed, epoch)
        start = time.perf_counter()
        losses = []
        for batch in batches:
            index = torch.from_numpy(batch)
            loss = F.cross_entropy(network(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        mean_loss = float(torch.stack(losses).mean())
        seconds += time.perf_counter() - start
    return seconds, mean_loss


def adapter_seconds(spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train through the harness loop; return (train_seconds, final mean minibatch loss)."""
    result = train_trial(spec, get_adapter("torch"), data)
    assert result.status == "ok", result
    return result.train_seconds, result.final()["minibatch_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    args = parser.parse_args()

    get_adapter("torch").configure(args.threads)  # process-wide: applies to the hand loop too
    spec = make_spec(args.epochs)
    data = load_dataset(spec.dataset)
    adapter_seconds(spec, data), hand_written_seconds(spec, data)  # warm-up (allocator, kernels)

    adapter_times, hand_times = [], []
    for repeat in range(args.repeats):
        runs = [("adapter", adapter_seconds), ("hand", hand_written_seconds)]
        for label, run in runs if repeat % 2 == 0 else runs[::-1]:
            seconds, loss = run(spec, data)
            (adapter_times if label == "adapter" else hand_times).append(seconds)
            print(f"repeat {repeat} {label:8s} {seconds:.3f} s  final minibatch loss {loss:.4f}")
    adapter_median, hand_median = statistics.median(adapter_times), statistics.median(hand_times)
    steps = args.epochs * len(epoch_batches(len(data.y_train), spec.training, spec.seed, 1))
    print(f"\n{steps} Adam steps, threads={args.threads}, torch {torch.__version__}, {args.repeats} repeats")
    print(f"adapter median {adapter_median:.3f} s  ({1e6 * adapter_median / steps:.0f} us/step)")
    print(f"hand    median {hand_median:.3f} s  ({1e6 * hand_median / steps:.0f} us/step)")
    print(f"ratio adapter/hand = {adapter_median / hand_median:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
