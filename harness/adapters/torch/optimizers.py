"""Canonical optimizer rules, gradient clipping and decoupled weight decay in torch.

Every canonical rule (harness.spec.components.OPTIMIZERS, where each formula is written) is
one torch built-in configured to be exactly that formula (read from torch 2.13's
torch/optim/*.py, `_single_tensor_*`):
    sgd       SGD(momentum=0)
    momentum  SGD(momentum, dampening=0)           v starts at 0: the first v is g
    nesterov  SGD(momentum, dampening=0, nesterov)
    adagrad   Adagrad(lr_decay=0, initial_accumulator_value, eps)
    rmsprop   RMSprop(alpha=rho, momentum=0, centered=False)
    adam      Adam(betas, eps, amsgrad=False)      denom = sqrt(v)/sqrt(1-b2^t) + eps; p -= lr/(1-b1^t) * m/denom,
                                                   the canonical update rearranged
    adamw     the adam rule above, plus the decoupled decay below
No built-in gets weight_decay: torch's coupled weight_decay touches biases too, and AdamW's
decay touches every parameter of its group. The decoupled decay
(harness.spec.types.effective_weight_decay) is done here, on kernels only, before the step and
after the gradient was computed. Clipping (RegularizerSpec.clip_norm, clip_value) is done here
too: torch's clip_grad_norm_ scales by c/(norm + 1e-6), not c/norm.

Without torch._dynamo. torch.optim imports torch._dynamo (1.0-1.5 s here, more than a small
trial's training) the first time an optimizer is built or stepped, only for the compiler:
`Optimizer.add_param_group` is wrapped by `torch._disable_dynamo`, which imports it on its first
call, and every `step` by `_use_grad_for_differentiable`, which imports it to place a graph
break. Eager steps need neither. So the built-ins are run without those wrappers
(`without_compiler_wrappers`): the same torch functions do the same arithmetic, bit for bit
(tests/test_torch_adapter.py steps every rule both ways), and nothing here is compiled. What
the step's outer wrapper also does, step hooks and a profiler label, the harness never uses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness.adapters.common import complete_table, look_up
from harness.spec.components import OPTIMIZERS, Component
from harness.spec.types import RegularizerSpec, effective_weight_decay

OptimizerFactory = Callable[[list[torch.Tensor], Component], torch.optim.Optimizer]


# foreach=False: the per-tensor path the formulas above were read from (torch's CPU default;
# for a handful of small tensors as fast as the multi-tensor path). Adam uses fused=True: the
# fused kernel (aten/src/ATen/native/cpu/FusedAdamKernel.cpp) computes the same formula,
# denom = sqrt(v)/sqrt(1-b2^t) + eps, p -= lr/(1-b1^t) * m/denom, in one pass per tensor:
# measured 20-25% less time per step than the per-tensor path on MLP 40-100-100-10.
def _adam(params: list[torch.Tensor], c: Component) -> torch.optim.Optimizer:
    """Adam configured as the canonical adam (and, with CanonicalOptimizer's decoupled decay, adamw)."""
    return torch.optim.Adam(
        params,
        lr=c["lr"],
        betas=(c["beta1"], c["beta2"]),
        eps=c["eps"],
        weight_decay=0.0,
        amsgrad=False,
        fused=True,
    )


RULES: dict[str, OptimizerFactory] = complete_table(
    {
        "sgd": lambda params, c: torch.optim.SGD(params, lr=c["lr"], momentum=0.0, foreach=False),
        "momentum": lambda params, c: torch.optim.SGD(
            params, lr=c["lr"], momentum=c["momentum"], dampening=0.0, nesterov=False, foreach=False
        ),
        "nesterov": lambda params, c: torch.optim.SGD(
            params, lr=c["lr"], momentum=c["momentum"], dampening=0.0, nesterov=True, foreach=False
        ),
        "adagrad": lambda params, c: torch.optim.Adagrad(
            params,
            lr=c["lr"],
            lr_decay=0.0,
            weight_decay=0.0,
            initial_accumulator_value=c["initial_accumulator"],
            eps=c["eps"],
            foreach=False,
        ),
        "rmsprop": lambda params, c: torch.optim.RMSprop(
            params,
            lr=c["lr"],
            alpha=c["rho"],
            eps=c["eps"],
            weight_decay=0.0,
            momentum=0.0,
            centered=False,
            foreach=False,
        ),
        "adam": _adam,
        # adamw = adam + the decoupled kernel decay applied by CanonicalOptimizer
        "adamw": _adam,
    },
    OPTIMIZERS,
    "torch",
    "optimizer",
)


def global_norm(gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 norm of all gradients taken together, sqrt(sum_i ||g_i||^2), a 0-d tensor."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients]))


COMPILER_WRAPPED = ("add_param_group", "state_dict", "load_state_dict")


@functools.cache  # once per process: the attributes it sets stay
def without_compiler_wrappers() -> None:
    """Let torch.optim optimizers be built and saved without importing torch._dynamo (see the module docstring).

    `torch._disable_dynamo(fn)` caches, on `fn`'s first call, the compiler's "do not trace" version of `fn`
    in `fn.__dynamo_disable`, importing torch._dynamo to make it. Caching `fn` itself there instead
    skips the import; eager calls run `fn` either way. Done for the methods the harness calls:
    `add_param_group` (every optimizer calls it while it is built), and `state_dict` and `load_state_dict`
    (checkpoints, harness.adapters.torch.state); and only where torch's wrapper is the one this was read
    from (torch 2.13): otherwise nothing changes, and the import happens as before.
    """
    wrapper = _disable_dynamo_code()
    for name in COMPILER_WRAPPED:
        function = getattr(torch.optim.Optimizer, name)
        wrapped = getattr(function, "__wrapped__", None)
        unset = wrapped is not None and getattr(wrapped, "__dynamo_disable", None) is None
        if unset and getattr(function, "__code__", None) is wrapper:
            setattr(wrapped, "__dynamo_disable", wrapped)


def _disable_dynamo_code() -> Any:
    """The code object of the wrapper `torch._disable_dynamo` puts around a function."""
    return torch._disable_dynamo(lambda: None).__code__


def plain_step(optimizer: torch.optim.Optimizer) -> Callable[[], Any]:
    """The optimizer's own `step`, without the wrappers torch.optim adds around every step (step hooks and a
    profiler label; grad mode set to the optimizer's `differentiable` and a graph break, which import
    torch._dynamo). Call it under torch.no_grad(), as CanonicalOptimizer.step does."""
    step = inspect.unwrap(type(optimizer).step)
    return lambda: step(optimizer)


class CanonicalOptimizer:
    """One optimizer step in the canonical order: clip_norm, clip_value, kernel decay, rule.

    Args:
        optimizer: the resolved optimizer component (every hyperparameter explicit).
        regularizer: clipping and decoupled weight decay settings.
        parameters: every trainable tensor, in canonical (plan) order.
        kernels: the subset the decoupled weight decay touches.

    Raises:
        BackendError: an optimizer this adapter does not realize.
    """

    def __init__(
        self,
        optimizer: Component,
        regularizer: RegularizerSpec,
        parameters: Sequence[torch.Tensor],
        kernels: Sequence[torch.Tensor],
    ) -> None:
        self.rule = look_up(RULES, optimizer.name, "torch", "optimizer")
        self.component = optimizer
        self.parameters = list(parameters)
        self.kernels = list(kernels)
        self.clip_norm = regularizer.clip_norm
        self.clip_value = regularizer.clip_value
        weight_decay = effective_weight_decay(optimizer, regularizer)
        self.weight_decay = weight_decay
        # kernel -= lr*wd*kernel, as one multiply by (1 - lr*wd) like torch's AdamW
        self.decay_factor = 1.0 - optimizer["lr"] * weight_decay if weight_decay else None
        self._new_optimizer()

    def set_learning_rate(self, lr: float) -> None:
        """The lr of the next steps (a schedule's, harness.spec.schedules): the rule's and the decay's.
        reset() goes back to the component's lr."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.weight_decay:
            self.decay_factor = 1.0 - lr * self.weight_decay

    def reset(self) -> None:
        """Forget all optimizer state (moments, accumulators, step count)."""
        self._new_optimizer()
        if self.weight_decay:
            self.decay_factor = 1.0 - self.component["lr"] * self.weight_decay

    def _new_optimizer(self) -> None:
        """The rule's built-in with no state, and its step without the compiler wrappers."""
        without_compiler_wrappers()
        self.optimizer = self.rule(self.parameters, self.component)
        self._step = plain_step(self.optimizer)

    def zero_grad(self) -> None:
        """What `Optimizer.zero_grad(set_to_none=True)` does, without its torch._dynamo wrapper."""
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Apply clipping, decoupled decay and the rule, using the gradients in `.grad`."""
        if self.clip_norm is not None or self.clip_value is not None:
            gradients = [p.grad for p in self.parameters if p.grad is not None]
            if self.clip_norm is not None:
                # c/norm >= 1 exactly when norm <= c: clamping to 1 leaves those gradients bit-identical
                scale = torch.clamp(self.clip_norm / global_norm(gradients), max=1.0)
                for gradient in gradients:
                    gradient.mul_(scale)
            if self.clip_value is not None:
                for gradient in gradients:
                    gradient.clamp_(-self.clip_value, self.clip_value)
        if self.decay_factor is not None:
            for kernel in self.kernels:
                kernel.mul_(self.decay_factor)
        self._step()


def make_optimizer(
    optimizer: Component,
    regularizer: RegularizerSpec,
    parameters: Sequence[torch.Tensor],
    kernels: Sequence[torch.Tensor],
) -> CanonicalOptimizer:
    """The canonical optimizer of a spec, with clipping and kernel-only decoupled weight decay
    (the factory harness.adapters.keras.optimizers.make_optimizer mirrors).

    Raises:
        BackendError: an optimizer this adapter does not realize.
    """
    return CanonicalOptimizer(optimizer, regularizer, parameters, kernels)
