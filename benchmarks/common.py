"""Shared by the benchmark scripts (benchmarks/bench_*.py) and the pytest benchmarks (benchmarks/test_bench_*.py):
the MNIST-1D workloads as TrialSpecs, the adapter's side of a timing, the hand-written PyTorch loop the
torch adapter is compared with, and interleaved repeats.

Imports no framework at module level (the Keras scripts must not pay for torch); the PyTorch loop
imports torch when called. Both import it as `benchmarks.common` (see benchmarks/__init__.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.adapters.loop import train_trial
from harness.data import dataset_info, resolve_dataset
from harness.data.batches import epoch_batches
from harness.data.types import Dataset
from harness.spec import (
    RegularizerSpec,
    TrainingSpec,
    TrialSpec,
    resolve_component,
    resolve_model,
)

# The speed reference workload (docs/semantics.md, "How the Keras adapter runs (speed)"): MLP 40-100-100-10
# with ReLU (Adam lr 1e-3, batch 100, he_normal).
REFERENCE_MLP = {"mlp": {"hidden": [100, 100], "activation": "relu"}}
# The MNIST-1D paper's models on the (40, 1) sequence (Greydanus & Kobak, "Scaling down deep learning with
# MNIST-1D", ICML 2024; Adam lr 1e-2, batch 100).
MNIST1D_MODELS = {
    "cnn": {"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}},  # 5,210 parameters
    "gru": {"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}},  # 5,134 parameters
}


def mnist1d_spec(
    model: Mapping[str, Any],
    backend: str,
    *,
    epochs: int,
    lr: float,
    initializer: str = "he_normal",
    shuffle: bool = True,
    seed: int = 0,
    **dataset_options: Any,
) -> TrialSpec:
    """A trial of `model` on MNIST-1D: cross entropy, Adam at `lr`, batch 100 (40 steps per epoch of the
    4000 training samples), no regularizer.

    Args:
        model: a raw model (REFERENCE_MLP, one of MNIST1D_MODELS, ...).
        backend: 'torch', 'keras', ...
        dataset_options: the dataset's options, e.g. shape="sequence" for the (40, 1) input.
    """
    dataset = resolve_dataset({"name": "mnist1d", **dataset_options})
    info = dataset_info(dataset)
    return TrialSpec(
        dataset=dataset,
        model=resolve_model(model, num_outputs=info.num_outputs, input_shape=info.input_shape),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", {"name": "adam", "lr": lr}, "optimizer"),
        initializer=resolve_component("initializer", initializer, "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=100, shuffle=shuffle),
        seed=seed,
        backend=backend,
    )


def adapter_seconds(spec: TrialSpec, adapter: Any, data: Dataset) -> tuple[float, float]:
    """Train through the harness loop; return (TrialResult.train_seconds + compile_seconds, last epoch's
    mean minibatch loss).

    train_seconds times the optimizer steps alone (the loop times per-epoch evaluation apart);
    compile_seconds is Keras' tracing of its functions (0 for torch), added back so the adapter pays its
    tracing like the plain loops it is compared with do. A Keras adapter that reuses a model across trials
    (harness.adapters.keras.reuse) pays it only once: the Keras scripts switch reuse off
    (`without_reuse`) so that every repeat builds and traces anew, like their reference side.
    """
    result = train_trial(spec, adapter, data)
    if result.status != "ok":
        raise RuntimeError(f"the adapter's trial ended {result.status}: {result.error}")
    return result.train_seconds + result.compile_seconds, result.final()["minibatch_loss"]


def without_reuse(adapter: Any) -> Any:
    """The Keras adapter, keeping no finished trial's model: each trial builds and traces its own."""
    from harness.adapters.keras.reuse import ReusableModels

    adapter.reusable = ReusableModels(limit=0)
    return adapter


def torch_loop_seconds(network: Any, x: Any, y: Any, spec: TrialSpec) -> tuple[float, float]:
    """Train a torch module the usual hand-written way: torch.optim.Adam at the spec's lr,
    F.cross_entropy, the training tensors indexed in memory by the trial's own batches
    (harness.data.batches.epoch_batches, so both sides see the same ones).

    Args:
        network: the torch.nn.Module, its weights already loaded.
        x, y: the training inputs as the module takes them, and the int64 labels (torch tensors).
    Returns:
        (seconds in the steps, timed per epoch from index arrays to losses, last epoch's mean loss).
    """
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(network.parameters(), lr=spec.optimizer["lr"])
    seconds, mean_loss = 0.0, float("nan")
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


def interleaved(
    runs: Mapping[str, Callable[[], tuple[float, float]]],
    repeats: int,
    workload: str = "",
    warm_up: bool = False,
) -> dict[str, list[float]]:
    """Time the `runs` side by side: `repeats` rounds, the order alternating every round, so a drift in
    the machine's speed (other processes, clocks) hits every side alike. Prints one line per run.

    Args:
        runs: label -> a call returning (seconds, final mean minibatch loss).
        workload: a name printed before each line (several workloads in one script).
        warm_up: run each once first, untimed (allocator, kernels), for sides that pay no tracing.
    Returns:
        label -> the seconds of each round.
    """
    if warm_up:
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs)
    for repeat in range(repeats):
        for label in order if repeat % 2 == 0 else order[::-1]:
            seconds, loss = runs[label]()
            times[label].append(seconds)
            prefix = f"{workload} " if workload else ""
            print(
                f"{prefix}repeat {repeat + 1} {label:8s} {seconds:7.3f} s  final minibatch loss {loss:.4f}", flush=True
            )
    return times
