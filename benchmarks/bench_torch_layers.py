"""Adapter overhead on conv and recurrent models: the torch adapter vs a hand-written PyTorch loop.

Workloads (the MNIST-1D recipe of Greydanus & Kobak, "Scaling down deep learning with MNIST-1D",
ICML 2024: Adam lr 1e-2, batch 100, batches in order):
    cnn  Conv1d(1->25, k5, s2, p1) -> Conv1d(25->25, k3, s2, p1) -> Conv1d(25->25, k3, s2, p1), ReLU
         after each, flatten (125) -> Linear(10); 5,210 parameters
    gru  bidirectional GRU, hidden 6, over the 40 steps, flatten (480) -> Linear(10); 5,134 parameters
Both sides train the SAME function from the SAME initial weights on the SAME batches, with the
same thread count, in one process, interleaved (the order alternates every repeat; shared code in
benchmarks/common.py).

    adapter: TrialResult.train_seconds of harness.adapters.loop.train_trial (optimizer steps alone)
    hand:    the model written the usual torch way (channels-first input prepared once, nn.Conv1d,
             nn.Flatten of NCL; nn.GRU) + torch.optim.Adam + F.cross_entropy, timed the same way.
             The canonical weights are converted by hand (conv kernels, the NCL flatten order of the
             dense rows, GRU gate order), so equal final losses also cross-check the adapter's layouts.
Prints both medians and the ratio adapter/hand per model. Target: ratio <= 1.10.

    python -m benchmarks.bench_torch_layers [--repeats 5] [--cnn-epochs 10] [--gru-epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    MNIST1D_MODELS,
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


def hand_cnn(weights: dict[str, np.ndarray]) -> nn.Module:
    network = nn.Sequential(
        nn.Conv1d(1, 25, 5, 2, 1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, 2, 1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(125, 10),
    )
    with torch.no_grad():
        for index, conv in zip((0, 1, 2), (network[0], network[2], network[4])):
            conv.weight.copy_(
                torch.from_numpy(weights[f"{index}.conv1d.kernel"].transpose(2, 1, 0).copy())
            )  # (k,in,out)->(out,in,k)
            conv.bias.copy_(torch.from_numpy(weights[f"{index}.conv1d.bias"]))
        # canonical flatten is (length 5, channels 25) row-major; nn.Flatten of NCL is (channels, length)
        kernel = weights["4.dense.kernel"].reshape(5, 25, 10).transpose(1, 0, 2).reshape(125, 10)
        network[7].weight.copy_(torch.from_numpy(kernel.T.copy()))
        network[7].bias.copy_(torch.from_numpy(weights["4.dense.bias"]))
    return network


class HandGRU(nn.Module):
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 6, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(480, 10)
        reorder = [1, 0, 2]  # canonical gate blocks (z, r, n) -> torch (r, z, n)

        def gates(matrix: np.ndarray) -> torch.Tensor:  # canonical (in, 3h) -> torch (3h, in)
            rows = matrix.T
            return torch.from_numpy(rows.reshape(3, 6, -1)[reorder].reshape(rows.shape).copy())

        with torch.no_grad():
            for direction, suffix in (("forward", ""), ("backward", "_reverse")):
                getattr(self.gru, f"weight_ih_l0{suffix}").copy_(gates(weights[f"0.gru.{direction}_kernel"]))
                getattr(self.gru, f"weight_hh_l0{suffix}").copy_(gates(weights[f"0.gru.{direction}_recurrent_kernel"]))
                bias = weights[f"0.gru.{direction}_bias"]
                getattr(self.gru, f"bias_ih_l0{suffix}").copy_(
                    torch.from_numpy(bias[0].reshape(3, 6)[reorder].reshape(-1).copy())
                )
                getattr(self.gru, f"bias_hh_l0{suffix}").copy_(
                    torch.from_numpy(bias[1].reshape(3, 6)[reorder].reshape(-1).copy())
                )
            self.linear.weight.copy_(torch.from_numpy(weights["2.dense.kernel"].T.copy()))
            self.linear.bias.copy_(torch.from_numpy(weights["2.dense.bias"]))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(inputs)
        return self.linear(outputs.reshape(len(inputs), -1))


def hand_written_seconds(name: str, spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train the hand-written module from the same shared initial weights with a plain PyTorch loop."""
    weights = initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed)
    network = hand_cnn(weights) if name == "cnn" else HandGRU(weights)
    x = torch.tensor(data.x_train)  # (N, 40, 1)
    if name == "cnn":
        x = x.permute(0, 2, 1).contiguous()  # NCL once, as a hand-written loop would store it
    return torch_loop_seconds(network, x, torch.tensor(data.y_train), spec)


def compare(name: str, epochs: int, repeats: int, threads: int) -> float:
    adapter = get_adapter("torch")
    spec = mnist1d_spec(
        MNIST1D_MODELS[name],
        "torch",
        epochs=epochs,
        lr=1e-2,
        initializer="fan_in_uniform",
        shuffle=False,
        shape="sequence",
    )
    data = load_dataset(spec.dataset)
    times = interleaved(
        {
            "adapter": lambda: adapter_seconds(spec, adapter, data),
            "hand": lambda: hand_written_seconds(name, spec, data),
        },
        repeats,
        workload=name,
        warm_up=True,
    )
    adapter_median, hand_median = statistics.median(times["adapter"]), statistics.median(times["hand"])
    steps = epochs * len(epoch_batches(len(data.y_train), spec.training, spec.seed, 1))
    print(f"{name}: {steps} Adam steps, threads={threads}, torch {torch.__version__}, {repeats} repeats")
    print(
        f"{name}: adapter median {adapter_median:.3f} s ({1e6 * adapter_median / steps:.0f} us/step), "
        f"hand median {hand_median:.3f} s ({1e6 * hand_median / steps:.0f} us/step)"
    )
    ratio = adapter_median / hand_median
    print(f"{name}: ratio adapter/hand = {ratio:.3f}  (target <= 1.10)\n")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-epochs", type=int, default=10)
    parser.add_argument("--gru-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    parser.add_argument("--models", nargs="+", default=list(MNIST1D_MODELS), choices=list(MNIST1D_MODELS))
    args = parser.parse_args()
    get_adapter("torch").configure(args.threads)  # process-wide: applies to the hand loop too
    ratios = {
        name: compare(name, args.cnn_epochs if name == "cnn" else args.gru_epochs, args.repeats, args.threads)
        for name in args.models
    }
    print("  ".join(f"{name} ratio {ratio:.3f}" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
