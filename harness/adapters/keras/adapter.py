"""KerasAdapter: process setup, versions, devices, and building a KerasModel from a TrialSpec.

Keras reads KERAS_BACKEND once, when it is first imported; `harness.adapters.keras.make_adapter`
sets it before importing this module. Everything here works on the backend Keras runs on;
the framework-specific calls (threads, determinism, devices) branch on it.
"""

from __future__ import annotations

import importlib
import random
import warnings

import keras
import numpy as np

from harness.adapters.common import check_gpu_visible, check_init_mode, cpu_name, requested_gpu
from harness.adapters.keras.losses import kernel_penalty
from harness.adapters.keras.model import KerasModel
from harness.adapters.keras.network import SEED_LIMIT, build_network, restart_network
from harness.adapters.keras.optimizers import make_optimizer
from harness.adapters.keras.reuse import ReusableModels, reuse_key
from harness.adapters.keras.training import note_tensorflow_seeded
from harness.data.types import DatasetInfo
from harness.errors import BackendError
from harness.spec.init import FRAMEWORK_STREAM
from harness.spec.types import TrialSpec

SUPPORTED_BACKENDS = ("tensorflow", "torch", "jax")


def visible_gpus() -> list[str]:
    """Names of the GPUs the active Keras backend can use (empty on a CPU-only install)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if backend == "torch":
        import torch

        return (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available()
            else []
        )
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform == "gpu"]
    return []


def resolve_device(device: str) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto' -> a Keras device name ('cpu:0', 'gpu:N').

    Raises:
        BackendError: a GPU is asked for but none (or not that many) is visible, or the name is unknown.
    """
    gpus = visible_gpus()
    index = requested_gpu(device, "Keras")
    if device == "auto":
        return "gpu:0" if gpus else "cpu:0"
    if index is None:
        return "cpu:0"
    check_gpu_visible(
        device,
        index,
        len(gpus),
        f"Keras' {keras.backend.backend()} backend",
        ". Use device 'cpu' or 'auto', or install a GPU build of the backend on a GPU machine.",
    )
    return f"gpu:{index}"


_warned_thread_pools = False


def pin_tensorflow_threads(tf, threads: int) -> None:
    """Set TensorFlow's intra- and inter-op pools to `threads`; warn once if the runtime already fixed them."""
    global _warned_thread_pools
    threading = tf.config.threading
    pools = (
        (threading.get_intra_op_parallelism_threads, threading.set_intra_op_parallelism_threads),
        (threading.get_inter_op_parallelism_threads, threading.set_inter_op_parallelism_threads),
    )
    for getter, setter in pools:
        if getter() == threads:
            continue
        try:
            setter(threads)
        except RuntimeError as error:  # the runtime is already initialized: the pools stay as they are
            if not _warned_thread_pools:
                warnings.warn(f"TensorFlow's thread pools already started; keeping them ({error})", stacklevel=3)
                _warned_thread_pools = True
            return


class KerasAdapter:
    """Implements harness.adapters.base.Adapter for Keras 3 on its active backend.

    Args:
        name: the harness backend name ('keras', 'keras-tensorflow', 'keras-jax', 'keras-torch').
    """

    def __init__(self, name: str = "keras") -> None:
        self.name = name
        self.keras_backend = keras.backend.backend()
        self.reusable = ReusableModels()  # released models, handed back by build (harness.adapters.keras.reuse)
        if self.keras_backend not in SUPPORTED_BACKENDS:
            raise BackendError(
                f"backend {name!r}: Keras runs on {self.keras_backend!r}, which this adapter does not drive. "
                f"Set KERAS_BACKEND to one of {', '.join(SUPPORTED_BACKENDS)}."
            )

    def configure(self, threads: int | None) -> None:
        """Pin intra-op threads and make kernels deterministic (docs/semantics.md, "Batch order, seeds and determinism").

        TensorFlow fixes its thread pools when its runtime starts; if it already started with
        another count, the call warns instead of failing (the pools stay as they are).
        """
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if self.keras_backend == "tensorflow":
            import tensorflow as tf

            if threads is not None:
                pin_tensorflow_threads(tf, threads)
            tf.config.experimental.enable_op_determinism()
        elif self.keras_backend == "torch":
            import torch

            if threads is not None:
                torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True)
        # jax: XLA's CPU thread count comes from XLA_FLAGS, set by the runner before import.

    def versions(self) -> dict[str, str]:
        """{'keras': ..., 'keras_backend': ..., '<backend framework>': ..., 'numpy': ...}."""
        framework = importlib.import_module(self.keras_backend)
        return {
            "keras": keras.__version__,
            "keras_backend": self.keras_backend,
            self.keras_backend: str(framework.__version__),
            "numpy": np.__version__,
        }

    def device_info(self, device: str) -> dict[str, str]:
        """{'device': 'cpu' | 'cuda:N', 'name': CPU model or GPU name} for what `device` resolves to."""
        resolved = resolve_device(device)
        if resolved.startswith("gpu"):
            index = int(resolved.split(":")[1])
            return {"device": f"cuda:{index}", "name": visible_gpus()[index]}
        return {"device": "cpu", "name": cpu_name()}

    def build(self, spec: TrialSpec, info: DatasetInfo) -> KerasModel:
        """Build network, loss, penalties and the canonical optimizer for one trial.

        Seeds come from default_rng([seed, FRAMEWORK_STREAM]) (network.layer_seeds draws
        the per-layer native-init and dropout seeds from it); the global generators are seeded
        from the trial seed too (`seed_globals`). In 'shared' mode the loop loads the numpy
        initial weights with set_weights afterwards.

        A model released by an earlier trial with the same reuse key (harness.adapters.keras.reuse)
        is returned instead of a new one, every variable restarted where a new build would start
        it, its traced functions kept: `reused` tells which.

        Raises:
            SpecError: unknown init_mode. BackendError: device not available, or a layer, loss or
                optimizer this adapter does not realize.
        """
        check_init_mode(spec.init_mode)
        device = resolve_device(spec.device)
        global_seed = int(np.random.default_rng([spec.seed, FRAMEWORK_STREAM, 1]).integers(0, SEED_LIMIT))
        self.seed_globals(global_seed, everything=bool(spec.model.python))
        key = reuse_key(spec, info, device)
        reused = self.reusable.take(key) if key is not None else None
        if reused is not None:
            with keras.device(device):
                restart_network(reused.network, spec.model.plan(info.input_shape), spec.initializer, spec.seed)
                reused.restart_optimizer(float(spec.optimizer["lr"]))
            reused.reused = True
            return reused
        with keras.device(device):
            if spec.model.python:  # the user's model, its own initial weights drawn under the global seed above
                from harness.adapters.keras.python_model import python_network

                network = python_network(spec.model, info.input_shape, info.num_outputs)
            else:
                network = build_network(
                    spec.model.plan(info.input_shape),
                    info.input_shape,
                    spec.initializer,
                    spec.seed,
                    spec.model.outputs(),
                )
        regularizer = spec.regularizer
        penalty = kernel_penalty(network.kernels, regularizer.l1, regularizer.l2)
        optimizer = make_optimizer(spec.optimizer, regularizer, network.biases)
        model = KerasModel(network, spec.loss.name, penalty, optimizer, info.num_outputs, device)
        model.reuse_key = key if network.restart_problem is None else None
        return model

    def seed_globals(self, seed: int, everything: bool) -> None:
        """Seed the process' global generators for a trial's build.

        everything (a Python model: the user's code may draw from any of them): keras.utils.set_random_seed,
        i.e. Python's, NumPy's, Keras' (its global SeedGenerator), TensorFlow's and torch's. Otherwise
        Python's, NumPy's and (Keras on torch) torch's only: a harness-built network draws every value from
        an explicitly seeded initializer or seed state (Keras' random ops are stateless, seeded from those),
        so it reads neither Keras' nor TensorFlow's global generator, and tf.random.set_seed would clear
        TensorFlow's kernel cache - the instantiated graphs of every traced function, the kept models'
        (harness.adapters.keras.reuse) too, ~0.1 s each to redo. When it does run, the traced functions are
        instantiated again before their next call, timed as compile time (training.note_tensorflow_seeded).
        """
        if everything:
            keras.utils.set_random_seed(seed)
            if self.keras_backend == "tensorflow":
                note_tensorflow_seeded()
            return
        random.seed(seed)
        np.random.seed(seed)
        if self.keras_backend == "torch":
            import torch

            torch.manual_seed(seed)

    def release(self, model: KerasModel) -> None:
        """The caller is done with `model` (harness.adapters.loop at a trial's end) and never touches it again:
        keep it, without its training data, for a later `build` with the same reuse key."""
        if model.reuse_key is not None:
            model.clear_training_data()
            self.reusable.keep(model.reuse_key, model)
