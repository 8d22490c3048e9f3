"""Training-step throughput per adapter for the reference MLP (pytest-benchmark; see harness.check).

Workload (the speed reference of docs/semantics.md): MLP 40-100-100-10, ReLU, he_normal shared initial
weights, Adam lr 1e-3, batch 100, MNIST-1D (4000 training samples: 40 steps per epoch). One
benchmark round is one epoch of `Model.train_epoch` (the optimizer steps alone, as
TrialResult.train_seconds times them), one intra-op thread. `extra_info` records steps/second.

    pytest benchmarks/test_bench_training.py
"""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks.common import REFERENCE_MLP, mnist1d_spec
from harness.data import load_dataset
from harness.data.batches import epoch_batches
from harness.spec import initial_weights

BACKENDS = ["torch", "keras"]
THREADS = 1  # what a worker of `harness run --jobs <cores>` gets


def adapter_or_skip(backend: str):
    from harness.adapters import BACKENDS as REGISTRY
    from harness.adapters import get_adapter
    from harness.errors import HarnessError

    missing = [name for name in REGISTRY[backend].requires if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"backend {backend!r} needs {', '.join(missing)}, not installed")
    try:
        adapter = get_adapter(backend)
    except (HarnessError, ImportError) as error:  # e.g. the Keras adapter not finished, or Keras on another backend
        pytest.skip(f"backend {backend!r} unavailable here: {error}")
    adapter.configure(THREADS)
    return adapter


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKENDS)
def test_training_epoch_throughput(benchmark, backend: str) -> None:
    adapter = adapter_or_skip(backend)
    spec = mnist1d_spec(REFERENCE_MLP, backend, epochs=1, lr=1e-3)
    data = load_dataset(spec.dataset)
    model = adapter.build(spec, data.info)
    model.set_weights(initial_weights(spec.model.plan(data.info.input_shape), spec.initializer, spec.seed))
    model.set_training_data(data.x_train, data.y_train)
    batches = epoch_batches(len(data.y_train), spec.training, spec.seed, 1)
    model.train_epoch(batches)  # warm-up: kernels, allocator, graph tracing (Keras)

    losses = benchmark.pedantic(model.train_epoch, args=(batches,), rounds=10, iterations=1, warmup_rounds=1)
    assert len(losses) == len(batches) and all(loss == loss for loss in losses)  # one finite-or-not value per step
    if benchmark.stats is not None:  # None under --benchmark-disable: one plain call, nothing timed
        benchmark.extra_info.update(
            backend=backend,
            steps_per_epoch=len(batches),
            steps_per_second=len(batches) / benchmark.stats.stats.median,
            threads=THREADS,
        )
