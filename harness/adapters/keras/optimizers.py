"""The canonical optimizer rules as Keras optimizers, written with `keras.ops` (any Keras backend).

Keras' built-ins differ from the canonical rules (harness.spec.components.OPTIMIZERS, whose
formulas are each class's docstring; docs/semantics.md, "Optimizers"), so none is used:
    momentum  Keras: v = mu*v - lr*g; p += v   (equal only while lr is constant)
    nesterov  Keras: p += mu*v - lr*g           (its own form)
    adagrad   Keras: accumulator starts at 0.1, eps INSIDE the sqrt (1e-7)
    rmsprop   Keras: eps INSIDE the sqrt, rho 0.9 by default
    adam      Keras: eps added to the UNcorrected sqrt(v) ("epsilon hat")
Each rule below is the canonical formula, one variable at a time (`update_step`).

The base class `CanonicalOptimizer` also realizes the regularizers that act on the update
(their formulas: harness.spec.types.RegularizerSpec), through the hooks every Keras
backend's `Optimizer.apply` calls in this order:
    1. `_clip_gradients`: clip_norm over ALL gradients together (Keras' `clipnorm` is per
       variable, and `global_clipnorm` computes c*min(1/norm, 1/c)), then clip_value.
    2. `_apply_weight_decay`: the decoupled decay (harness.spec.types.effective_weight_decay),
       kernels only (Keras' weight decay touches every variable unless excluded: biases are excluded).
    3. the rule.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from harness.adapters.common import complete_table, look_up
from harness.spec.components import OPTIMIZERS, Component, formula_doc
from harness.spec.types import RegularizerSpec, effective_weight_decay


class CanonicalOptimizer(keras.optimizers.Optimizer):
    """Base of the canonical rules: exact global-norm clipping, then value clipping, then kernel-only decay.

    Args:
        learning_rate: lr of the canonical formula.
        clip_norm: global-norm threshold, or None.
        clip_value: element-wise threshold, or None.
        weight_decay: decoupled decay factor for kernels (0 = none).
    """

    slots: tuple[str, ...] = ()  # the rule's per-variable state, e.g. ('velocity',)

    def __init__(
        self,
        learning_rate: float,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        weight_decay: float = 0.0,
        name: str | None = None,
        **hyperparameters: float,
    ) -> None:
        # None (not 0.0) switches Keras' decay hook off entirely.
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay or None, name=name)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.hyperparameters = hyperparameters  # the rule's own parameters (momentum, rho, beta1, eps, ...)
        self.state: list[list[Any]] = []  # per slot, one variable per trainable variable

    def initializer(self, slot: str) -> Any:
        """Where a slot's state starts: zeros for every canonical rule but adagrad."""
        return "zeros"

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        if self.slots:
            initializers = [self.initializer(slot) for slot in self.slots]
            self.state = list(self.add_optimizer_variables(variables, list(self.slots), initializer=initializers))

    def state_of(self, variable: Any) -> list[Any]:
        """The slot variables of one trainable variable, in `slots` order."""
        index = self._get_variable_index(variable)
        return [slot_variables[index] for slot_variables in self.state]

    def _clip_gradients(self, grads: list[Any]) -> list[Any]:
        if self.clip_norm is not None:
            squared = ops.sum(ops.stack([ops.sum(ops.square(g)) for g in grads]))
            norm = ops.sqrt(squared)
            threshold = ops.cast(self.clip_norm, norm.dtype)
            # c/norm only when norm > c: below the threshold the gradients are untouched bit for bit.
            scale = ops.where(norm > threshold, threshold / norm, ops.ones_like(norm))
            grads = [g * ops.cast(scale, g.dtype) for g in grads]
        if self.clip_value is not None:
            limit = self.clip_value
            grads = [ops.clip(g, -limit, limit) for g in grads]
        return grads

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):  # biases are excluded by make_optimizer
                lr = ops.cast(self.learning_rate, variable.dtype)
                decay = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - lr * decay * variable)


class SGD(CanonicalOptimizer):
    __doc__ = formula_doc("optimizer", "sgd")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * gradient)


class Momentum(CanonicalOptimizer):
    __doc__ = formula_doc("optimizer", "momentum")
    slots = ("velocity",)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        (velocity,) = self.state_of(variable)
        self.assign(velocity, self.hyperparameters["momentum"] * velocity + gradient)
        self.assign_sub(variable, lr * self.direction(gradient, velocity))

    def direction(self, gradient: Any, velocity: Any) -> Any:
        """What the parameter moves along, times -lr: the velocity itself (heavy ball)."""
        return velocity


class Nesterov(Momentum):
    __doc__ = formula_doc("optimizer", "nesterov")

    def direction(self, gradient: Any, velocity: Any) -> Any:
        return gradient + self.hyperparameters["momentum"] * velocity


class Adagrad(CanonicalOptimizer):
    __doc__ = formula_doc("optimizer", "adagrad")
    slots = ("accumulator",)

    def initializer(self, slot: str) -> Any:
        return keras.initializers.Constant(self.hyperparameters["initial_accumulator"])

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        (accumulator,) = self.state_of(variable)
        self.assign_add(accumulator, ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (ops.sqrt(accumulator) + self.hyperparameters["eps"]))


class RMSprop(CanonicalOptimizer):
    __doc__ = formula_doc("optimizer", "rmsprop")
    slots = ("mean_square",)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        (mean_square,) = self.state_of(variable)
        rho, eps = self.hyperparameters["rho"], self.hyperparameters["eps"]
        self.assign(mean_square, rho * mean_square + (1.0 - rho) * ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (ops.sqrt(mean_square) + eps))


class Adam(CanonicalOptimizer):
    __doc__ = formula_doc(
        "optimizer",
        "adam",
        "Keras' own Adam adds eps to the uncorrected sqrt(v) (the paper's 'epsilon hat' variant). Also adamw: "
        "the decoupled kernel decay comes from the base class.",
    )
    slots = ("first_moment", "second_moment")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        beta1, beta2, eps = (self.hyperparameters[key] for key in ("beta1", "beta2", "eps"))
        step = ops.cast(self.iterations + 1, variable.dtype)  # t starts at 1
        correction1 = 1.0 - ops.power(ops.cast(beta1, variable.dtype), step)
        correction2 = 1.0 - ops.power(ops.cast(beta2, variable.dtype), step)
        m, v = self.state_of(variable)
        self.assign(m, beta1 * m + (1.0 - beta1) * gradient)
        self.assign(v, beta2 * v + (1.0 - beta2) * ops.square(gradient))
        self.assign_sub(variable, lr * (m / correction1) / (ops.sqrt(v / correction2) + eps))


RULES: dict[str, type[CanonicalOptimizer]] = complete_table(
    {
        "sgd": SGD,
        "momentum": Momentum,
        "nesterov": Nesterov,
        "adagrad": Adagrad,
        "rmsprop": RMSprop,
        "adam": Adam,
        "adamw": Adam,
    },
    OPTIMIZERS,
    "Keras",
    "optimizer",
)


def make_optimizer(
    optimizer: Component, regularizer: RegularizerSpec, biases: list[keras.Variable]
) -> CanonicalOptimizer:
    """The canonical optimizer of a spec, with clipping and kernel-only decoupled weight decay.

    Args:
        optimizer: the resolved optimizer component (every parameter explicit).
        regularizer: clip_norm, clip_value and weight_decay come from here.
        biases: the model's bias variables, excluded from weight decay.

    Raises:
        BackendError: an optimizer this adapter does not realize.
    """
    rule = look_up(RULES, optimizer.name, "Keras", "optimizer")
    weight_decay = effective_weight_decay(optimizer, regularizer)
    hyperparameters = {key: value for key, value in optimizer.params if key not in ("lr", "weight_decay")}
    result = rule(
        float(optimizer["lr"]), regularizer.clip_norm, regularizer.clip_value, weight_decay, **hyperparameters
    )
    if weight_decay:
        result.exclude_from_weight_decay(var_list=biases)
    return result
