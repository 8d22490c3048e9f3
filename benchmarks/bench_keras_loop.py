"""Adapter speed: the Keras adapter's training time vs a plain Keras `model.fit`.

Workload: MLP 40-100-100-10 (ReLU, he_normal), Adam lr 1e-3, batch 100, 20 epochs on
MNIST-1D (4000 training samples: 800 steps), Keras on its TensorFlow backend, one process,
the same thread count for both sides, interleaved (the order alternates every repeat; shared code
in benchmarks/common.py).

    adapter: TrialResult.train_seconds + compile_seconds of harness.adapters.loop.train_trial - the
             optimizer steps and the tracing of the compiled epoch function (per-epoch evaluation is
             timed separately by the loop and left out)
    fit:     a fresh keras.Sequential with the built-in Adam and
             SparseCategoricalCrossentropy(from_logits=True), `model.fit(x, y, batch_size=100,
             epochs=20, shuffle=True, verbose=0)`, wall time of the fit call (its tracing
             included, like the adapter's)
Both sides build a new model every repeat (the adapter's model reuse is off here), so both pay
their tracing every time; benchmarks/bench_keras_reuse.py measures what reuse saves. `fit` runs
Keras' own (non-canonical) Adam and its own shuffling: it is the speed reference, not a
parity reference. Prints both medians and the ratio adapter/fit. Target: ratio <= 1.

    python -m benchmarks.bench_keras_loop [--repeats 5] [--epochs 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up banner out of the table

from benchmarks.common import REFERENCE_MLP, adapter_seconds, interleaved, mnist1d_spec, without_reuse
from harness.adapters import get_adapter
from harness.data import load_dataset
from harness.data.types import Dataset
from harness.spec import TrialSpec


def fit_seconds(spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train with plain `model.fit`; return (seconds of the fit call, last epoch's mean minibatch loss)."""
    import keras

    keras.utils.set_random_seed(spec.seed)
    network = keras.Sequential(
        [
            keras.Input(shape=data.info.input_shape),
            keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(10, kernel_initializer="he_normal"),
        ]
    )
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec.optimizer["lr"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    history = network.fit(
        data.x_train,
        data.y_train,
        batch_size=spec.training.batch_size,
        epochs=spec.training.epochs,
        shuffle=True,
        verbose=0,
    )
    return time.perf_counter() - start, float(history.history["loss"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (>= 3)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra/inter-op threads for both sides")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3 (the median of fewer says little)")
    adapter = without_reuse(get_adapter("keras"))
    adapter.configure(args.threads)  # before any TensorFlow op: pins the pools for both sides
    spec = mnist1d_spec(REFERENCE_MLP, "keras", epochs=args.epochs, lr=1e-3)
    data = load_dataset(spec.dataset)
    times = interleaved(
        {"adapter": lambda: adapter_seconds(spec, adapter, data), "fit": lambda: fit_seconds(spec, data)}, args.repeats
    )
    adapter_median, fit_median = statistics.median(times["adapter"]), statistics.median(times["fit"])
    steps = args.epochs * -(-len(data.y_train) // spec.training.batch_size)
    print(f"\n{steps} steps, threads={args.threads}, {args.repeats} repeats, {adapter.versions()}")
    print(f"adapter train+compile median: {adapter_median:.3f} s")
    print(f"model.fit seconds median:     {fit_median:.3f} s")
    print(f"ratio adapter/fit:            {adapter_median / fit_median:.3f}  (target <= 1)")


if __name__ == "__main__":
    main()
