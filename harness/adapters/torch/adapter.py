"""TorchAdapter: process setup, versions, devices, and building a TorchModel from a TrialSpec."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harness.adapters.common import check_gpu_visible, check_init_mode, cpu_name, requested_gpu
from harness.adapters.torch.losses import kernel_penalty
from harness.adapters.torch.model import TorchModel
from harness.adapters.torch.network import build_network, initialize_native
from harness.adapters.torch.optimizers import make_optimizer
from harness.adapters.torch.vectorized import StackedMLP, build_stacked
from harness.data.types import DatasetInfo
from harness.spec.init import FRAMEWORK_STREAM
from harness.spec.types import TrialSpec

SEED_LIMIT = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda if visible, else cpu) -> torch.device.

    Raises:
        BackendError: a cuda device is asked for but none is visible, or the name is unknown.
    """
    index = requested_gpu(device, "torch")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if index is None:
        return torch.device("cpu")
    check_gpu_visible(
        device,
        index,
        torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "torch",
        f" (torch.cuda.is_available() is False; torch {torch.__version__}). Use device 'cpu' or 'auto', "
        "or install a CUDA build of torch on a GPU machine.",
    )
    return torch.device("cuda", index)


class TorchAdapter:
    """Implements harness.adapters.base.Adapter for PyTorch."""

    def __init__(self, name: str = "torch") -> None:
        self.name = name

    def configure(self, threads: int | None) -> None:
        """Pin intra-op threads (workers must not oversubscribe cores) and force deterministic kernels."""
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        # The public torch.use_deterministic_algorithms imports torch._inductor.config (1.8-2.5 s per
        # worker, measured); the C setter it wraps does the same switch. torch is pinned (2.13).
        set_deterministic = getattr(torch._C, "_set_deterministic_algorithms", None)
        if set_deterministic is not None:
            set_deterministic(True, warn_only=False)
        else:  # pragma: no cover - another torch version
            torch.use_deterministic_algorithms(True)

    def versions(self) -> dict[str, str]:
        return {"torch": str(torch.__version__), "numpy": np.__version__}

    def device_info(self, device: str) -> dict[str, str]:
        """{'device': 'cpu' | 'cuda:N', 'name': CPU model or GPU name} for what `device` resolves to.

        Raises:
            BackendError: see `resolve_device`.
        """
        resolved = resolve_device(device)
        if resolved.type == "cuda":
            return {"device": f"cuda:{resolved.index}", "name": torch.cuda.get_device_name(resolved.index)}
        return {"device": "cpu", "name": cpu_name()}

    def build(self, spec: TrialSpec, info: DatasetInfo) -> TorchModel:
        """Build network, loss, penalties and canonical update for one trial.

        The framework RNG is seeded from default_rng([seed, FRAMEWORK_STREAM]): its first draw
        seeds native-mode initialization, its second the dropout masks. In 'shared' mode the loop
        loads the numpy initial weights with set_weights afterwards.

        Raises:
            SpecError: unknown init_mode. BackendError: device, layer, loss or optimizer not realized.
        """
        check_init_mode(spec.init_mode)
        device = resolve_device(spec.device)
        init_seed, dropout_seed = np.random.default_rng([spec.seed, FRAMEWORK_STREAM]).integers(0, SEED_LIMIT, size=2)
        dropout_generator = torch.Generator(device=device)
        dropout_generator.manual_seed(int(dropout_seed))
        if spec.model.python:  # the user's module, with its own initial weights drawn under the trial's seed
            from harness.adapters.torch.python_model import python_network

            torch.manual_seed(int(init_seed))
            network = python_network(spec.model, info.input_shape, info.num_outputs)
        else:
            network = build_network(spec.model.plan(info.input_shape), dropout_generator, spec.model.outputs())
        if spec.init_mode == "native" and not spec.model.python:
            init_generator = torch.Generator()  # CPU: the network is built on CPU, then moved
            init_generator.manual_seed(int(init_seed))
            initialize_native(network, spec.initializer, init_generator)
        network.module.to(device)  # in place: the slots keep pointing at the moved parameters
        regularizer = spec.regularizer
        penalty = kernel_penalty(network.kernels, regularizer.l1, regularizer.l2)
        optimizer = make_optimizer(spec.optimizer, regularizer, network.parameters, network.kernels)
        return TorchModel(network, spec.loss.name, penalty, optimizer, device)

    def build_stacked(self, specs: Sequence[TrialSpec], info: DatasetInfo) -> StackedMLP:
        """Several trials of one architecture as one stacked model (harness.adapters.vectorize).

        Raises:
            BackendError: the device is not available (see `resolve_device`).
        """
        return build_stacked(specs, info, resolve_device(specs[0].device))
