"""The torch network of a spec: modules, canonical weight keys, native-mode initialization.

The layer plan (harness.spec.layers) becomes an `nn.Sequential`. Every trainable tensor is
reachable by its canonical key (harness.spec.init.weight_key, e.g. '0.dense.kernel').
Canonical dense kernels are (fan_in, fan_out) so that y = x @ kernel + bias; torch's
`Linear.weight` is (fan_out, fan_in), so kernels are transposed on the way in and out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.errors import BackendError
from harness.spec.components import ACTIVATIONS, Component
from harness.spec.init import weight_key
from harness.spec.layers import LayerPlan


class InvertedDropout(nn.Module):
    """Canonical dropout: in training, zero each element with probability `rate` and scale
    the survivors by 1/(1-rate); identity in evaluation mode.

    Same arithmetic as `nn.Dropout`, but the masks come from the model's own generator, so a
    trial's masks depend only on its seed (not on whatever else used torch's global RNG).
    """

    def __init__(self, rate: float, generator: torch.Generator) -> None:
        super().__init__()
        self.rate = rate
        self.keep = 1.0 - rate
        self.generator = generator

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return inputs
        # mask elements are 0 or 1/keep: one bernoulli draw per element, keep-probability `keep`
        mask = torch.empty_like(inputs).bernoulli_(self.keep, generator=self.generator).div_(self.keep)
        return inputs * mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


# Each canonical activation, configured to its canonical parameters (None: identity, no module).
ACTIVATION_MODULES: dict[str, Callable[[Component], nn.Module | None]] = {
    "linear": lambda component: None,
    "relu": lambda component: nn.ReLU(),
    "sigmoid": lambda component: nn.Sigmoid(),
    "tanh": lambda component: nn.Tanh(),
    "leaky_relu": lambda component: nn.LeakyReLU(negative_slope=component["negative_slope"]),
    "elu": lambda component: nn.ELU(alpha=component["alpha"]),
    "gelu": lambda component: nn.GELU(approximate="none"),  # exact x*Phi(x), erf form
    "softmax": lambda component: nn.Softmax(dim=-1),
}
assert set(ACTIVATION_MODULES) == set(ACTIVATIONS), "every canonical activation needs a torch realization"


def activation_module(activation: Component) -> nn.Module | None:
    """The torch module realizing a canonical activation, or None for 'linear'."""
    return ACTIVATION_MODULES[activation.name](activation)


@dataclass(frozen=True)
class TensorSlot:
    """Where one canonical tensor lives in torch: the parameter, and whether it is transposed."""

    key: str  # canonical key, e.g. '0.dense.kernel'
    parameter: nn.Parameter
    transposed: bool  # True for dense kernels: torch (out, in) vs canonical (in, out)
    role: str  # 'kernel' | 'bias' (TensorSpec.role)
    fan_in: int  # of the layer's kernel: fan_in_uniform draws the bias from U(+-1/sqrt(fan_in))


@dataclass(frozen=True)
class Network:
    """An `nn.Sequential` plus the canonical view of its trainable tensors (plan order)."""

    module: nn.Sequential
    slots: tuple[TensorSlot, ...]

    @property
    def kernels(self) -> list[nn.Parameter]:
        """Tensors the l1/l2 penalties and decoupled weight decay touch."""
        return [slot.parameter for slot in self.slots if slot.role == "kernel"]

    @property
    def parameters(self) -> list[nn.Parameter]:
        return [slot.parameter for slot in self.slots]


def build_network(plans: tuple[LayerPlan, ...], dropout_generator: torch.Generator) -> Network:
    """Build the modules of a layer plan (float32, CPU; move with `.to(device)` afterwards).

    Raises:
        BackendError: a layer kind this adapter does not realize.
    """
    modules: list[nn.Module] = []
    slots: list[TensorSlot] = []
    for plan in plans:
        layer = plan.layer
        if layer.kind == "dense":
            (fan_in,) = plan.input_shape
            linear = nn.Linear(fan_in, layer["units"], bias=layer["use_bias"], dtype=torch.float32)
            modules.append(linear)
            for tensor in plan.tensors:
                parameter = linear.weight if tensor.role == "kernel" else linear.bias
                slots.append(TensorSlot(weight_key(plan, tensor), parameter, tensor.role == "kernel", tensor.role, fan_in))
            activation = activation_module(layer["activation"])
            if activation is not None:
                modules.append(activation)
        elif layer.kind == "activation":
            activation = activation_module(layer["activation"])
            if activation is not None:
                modules.append(activation)
        elif layer.kind == "dropout":
            if layer["rate"] > 0:
                modules.append(InvertedDropout(layer["rate"], dropout_generator))
        else:
            raise BackendError(
                f"model.layers[{plan.index}]: the torch backend has no realization of layer {layer.kind!r}. "
                "Use a layer it supports (dense, dropout, activation) or another backend."
            )
    return Network(nn.Sequential(*modules), tuple(slots))


def load_weights(network: Network, weights: dict[str, np.ndarray]) -> None:
    """Copy canonical-layout arrays into the network's parameters.

    Raises:
        ValueError: the keys or shapes do not match the network (names the offending keys).
    """
    expected = {slot.key for slot in network.slots}
    if set(weights) != expected:
        raise ValueError(
            f"weights do not match the model: missing {sorted(expected - set(weights))}, "
            f"unexpected {sorted(set(weights) - expected)}"
        )
    with torch.no_grad():
        for slot in network.slots:
            array = np.asarray(weights[slot.key], dtype=np.float32)
            if slot.transposed:
                array = array.T
            if tuple(array.shape) != tuple(slot.parameter.shape):
                canonical = tuple(reversed(slot.parameter.shape)) if slot.transposed else tuple(slot.parameter.shape)
                raise ValueError(f"weight {slot.key!r}: expected canonical shape {canonical}, got {weights[slot.key].shape}")
            slot.parameter.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def read_weights(network: Network) -> dict[str, np.ndarray]:
    """Every trainable tensor as a float32 array in canonical layout (copies, not views)."""
    weights = {}
    for slot in network.slots:
        array = slot.parameter.detach().cpu().numpy()
        weights[slot.key] = np.array(array.T if slot.transposed else array, dtype=np.float32, order="C")
    return weights


# Native mode: torch.nn.init configured to each canonical formula. Every function receives the
# torch weight of shape (fan_out, fan_in); torch's fan rule for it (fan_in = size(1)) equals the
# canonical one for the (fan_in, fan_out) kernel. All normals here are plain (torch's normal_,
# kaiming_normal_, xavier_normal_ never truncate).
KernelInit = Callable[[torch.Tensor, Component, torch.Generator], object]
KERNEL_INITIALIZERS: dict[str, KernelInit] = {
    "zeros": lambda weight, c, generator: nn.init.zeros_(weight),
    "normal": lambda weight, c, generator: nn.init.normal_(weight, 0.0, c["std"], generator=generator),
    "uniform": lambda weight, c, generator: nn.init.uniform_(weight, -c["limit"], c["limit"], generator=generator),
    # a = gain*sqrt(6/(fan_in+fan_out))
    "xavier_uniform": lambda weight, c, generator: nn.init.xavier_uniform_(weight, gain=c["gain"], generator=generator),
    # std = gain*sqrt(2/(fan_in+fan_out))
    "xavier_normal": lambda weight, c, generator: nn.init.xavier_normal_(weight, gain=c["gain"], generator=generator),
    # std = gain('relu')/sqrt(fan_in) = sqrt(2/fan_in)
    "he_normal": lambda weight, c, generator: nn.init.kaiming_normal_(
        weight, mode="fan_in", nonlinearity="relu", generator=generator
    ),
    # bound = gain('relu')*sqrt(3/fan_in) = sqrt(6/fan_in)
    "he_uniform": lambda weight, c, generator: nn.init.kaiming_uniform_(
        weight, mode="fan_in", nonlinearity="relu", generator=generator
    ),
    # std = gain('linear')/sqrt(fan_in) = sqrt(1/fan_in)
    "lecun_normal": lambda weight, c, generator: nn.init.kaiming_normal_(
        weight, mode="fan_in", nonlinearity="linear", generator=generator
    ),
    # QR of a N(0,1) matrix, sign-corrected by diag(R); orthonormal along the smaller dimension
    "orthogonal": lambda weight, c, generator: nn.init.orthogonal_(weight, gain=c["gain"], generator=generator),
    # U(+-1/sqrt(fan_in)): written out rather than kaiming_uniform_(a=sqrt(5)), which equals it
    "fan_in_uniform": lambda weight, c, generator: nn.init.uniform_(
        weight, -1.0 / np.sqrt(weight.shape[1]), 1.0 / np.sqrt(weight.shape[1]), generator=generator
    ),
}


def initialize_native(network: Network, initializer: Component, generator: torch.Generator) -> None:
    """Draw every tensor with torch's own initializers, configured to the canonical meaning.

    Kernels follow the initializer's formula; biases are zero, except under fan_in_uniform,
    which draws them U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Tensors are drawn in plan order.

    Raises:
        BackendError: an initializer this adapter does not realize.
    """
    if initializer.name not in KERNEL_INITIALIZERS:
        raise BackendError(
            f"initializer: the torch backend has no native realization of {initializer.name!r}. "
            f"Use init_mode 'shared', or one of: {', '.join(sorted(KERNEL_INITIALIZERS))}."
        )
    with torch.no_grad():
        for slot in network.slots:
            if slot.role == "kernel":
                KERNEL_INITIALIZERS[initializer.name](slot.parameter, initializer, generator)
            elif initializer.name == "fan_in_uniform":
                bound = 1.0 / np.sqrt(slot.fan_in)
                nn.init.uniform_(slot.parameter, -bound, bound, generator=generator)
            else:
                nn.init.zeros_(slot.parameter)
