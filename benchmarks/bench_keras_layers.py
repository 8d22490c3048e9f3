"""Adapter speed on the layer families: the Keras adapter vs a plain hand-written Keras/TensorFlow loop.

Workloads (MNIST-1D as a (40, 1) sequence, 4000 training samples, batch 100 = 40 steps per epoch,
Adam lr 1e-2, the MNIST-1D paper's models):
    cnn  conv1d 25@5 s2 p1 -> 25@3 s2 p1 -> 25@3 s2 p1 (ReLU) -> flatten -> dense 10   (5,210 parameters)
    gru  bidirectional GRU(6), every step's output -> flatten -> dense 10              (5,134 parameters)

    adapter:  TrialResult.train_seconds + compile_seconds of harness.adapters.loop.train_trial - the
              optimizer steps and their tracing (per-epoch evaluation is timed apart by the loop)
    plain:    the same model from Keras' built-in layers (ZeroPadding1D + Conv1D; Bidirectional(GRU)),
              Keras' Adam, and the textbook custom loop: a `tf.function` step (GradientTape,
              apply_gradients) called once per batch from Python, batches sliced in order; wall time
              of the loop, its tracing included
Both build a new model every repeat (the adapter's model reuse is off here), interleaved (the order alternates; shared code in
benchmarks/common.py), one process, the same thread count. Prints both medians and the ratio
adapter/plain per workload. Target: ratio <= 1.10.

    python -m benchmarks.bench_keras_layers [--repeats 3] [--epochs 5] [--threads 1] [--models cnn gru]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up banner out of the table

from benchmarks.common import MNIST1D_MODELS, adapter_seconds, interleaved, mnist1d_spec, without_reuse
from harness.adapters import get_adapter
from harness.data import load_dataset
from harness.data.types import Dataset
from harness.spec import TrialSpec


def plain_model(model: str, input_shape: tuple[int, ...]):
    """The workload from Keras' built-in layers (Keras' own initializers: speed, not parity)."""
    import keras

    if model == "cnn":
        layers = []
        for kernel in (5, 3, 3):
            layers += [keras.layers.ZeroPadding1D(1), keras.layers.Conv1D(25, kernel, strides=2, activation="relu")]
        layers += [keras.layers.Flatten(), keras.layers.Dense(10)]
    else:
        gru = keras.layers.GRU(6, return_sequences=True, reset_after=True)
        layers = [keras.layers.Bidirectional(gru), keras.layers.Flatten(), keras.layers.Dense(10)]
    return keras.Sequential([keras.Input(shape=input_shape), *layers])


def plain_seconds(model: str, spec: TrialSpec, data: Dataset) -> tuple[float, float]:
    """Train with a hand-written tf.function step; return (seconds, last epoch's mean minibatch loss)."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(spec.seed)
    network = plain_model(model, data.info.input_shape)
    optimizer = keras.optimizers.Adam(learning_rate=spec.optimizer["lr"])
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x = tf.constant(np.asarray(data.x_train, dtype=np.float32))
    y = tf.constant(np.asarray(data.y_train, dtype=np.int32))
    size = spec.training.batch_size

    @tf.function
    def step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            loss = loss_function(y_batch, network(x_batch, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, network.trainable_variables), network.trainable_variables))
        return loss

    start = time.perf_counter()
    losses = []
    for _ in range(spec.training.epochs):
        losses = [step(x[i : i + size], y[i : i + size]) for i in range(0, len(data.y_train), size)]
    last = float(np.mean([float(loss) for loss in losses]))  # the host sync is inside the timed region
    return time.perf_counter() - start, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (>= 3)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra/inter-op threads for both sides")
    parser.add_argument("--models", nargs="+", choices=sorted(MNIST1D_MODELS), default=sorted(MNIST1D_MODELS))
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3 (the median of fewer says little)")
    adapter = without_reuse(get_adapter("keras"))
    adapter.configure(args.threads)  # before any TensorFlow op: pins the pools for both sides
    summary = []
    for model in args.models:
        spec = mnist1d_spec(
            MNIST1D_MODELS[model],
            "keras",
            epochs=args.epochs,
            lr=1e-2,
            initializer="fan_in_uniform",
            shuffle=False,
            shape="sequence",
            validation=0.0,
        )
        data = load_dataset(spec.dataset)
        times = interleaved(
            {
                "adapter": lambda spec=spec, data=data: adapter_seconds(spec, adapter, data),
                "plain": lambda model=model, spec=spec, data=data: plain_seconds(model, spec, data),
            },
            args.repeats,
            workload=model,
        )
        summary.append((model, statistics.median(times["adapter"]), statistics.median(times["plain"])))
    steps = args.epochs * 40
    print(f"\n{steps} steps per trial, threads={args.threads}, {args.repeats} repeats, {adapter.versions()}")
    for model, adapter_median, plain_median in summary:
        print(
            f"{model}: adapter {adapter_median:.3f} s, plain loop {plain_median:.3f} s, "
            f"ratio adapter/plain {adapter_median / plain_median:.3f}  (target <= 1.10)"
        )


if __name__ == "__main__":
    main()
