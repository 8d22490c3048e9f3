"""The canonical optimizer rules as Keras optimizers, written with `keras.ops` (any Keras backend).

Keras' built-ins differ from the canonical rules (harness.spec.components.OPTIMIZERS;
SEMANTICS.md, "Optimizers"), so none is used:
    momentum  Keras: v = mu*v - lr*g; p += v   (equal only while lr is constant)
    nesterov  Keras: p += mu*v - lr*g           (its own form)
    adagrad   Keras: accumulator starts at 0.1, eps INSIDE the sqrt (1e-7)
    rmsprop   Keras: eps INSIDE the sqrt, rho 0.9 by default
    adam      Keras: eps added to the UNcorrected sqrt(v) ("epsilon hat")
Each rule below is the canonical formula, one variable at a time (`update_step`).

The base class `CanonicalOptimizer` also realizes the two regularizers that act on the
update, through the hooks every Keras backend's `Optimizer.apply` calls in this order:
    1. `_clip_gradients`: clip_norm = scale ALL gradients by c/norm when their global L2
       norm exceeds c (Keras' `clipnorm` is per variable, `global_clipnorm` computes
       c*min(1/norm, 1/c)); then clip_value clamps each element to [-c, c].
    2. `_apply_weight_decay`: decoupled `kernel -= lr*weight_decay*kernel`, kernels only
       (Keras' weight decay touches every variable unless excluded: biases are excluded).
    3. the rule.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops

from harness.errors import BackendError
from harness.spec.components import Component
from harness.spec.types import RegularizerSpec


class CanonicalOptimizer(keras.optimizers.Optimizer):
    """Base of the canonical rules: exact global-norm clipping, then value clipping, then kernel-only decay.

    Args:
        learning_rate: lr of the canonical formula.
        clip_norm: global-norm threshold, or None.
        clip_value: element-wise threshold, or None.
        weight_decay: decoupled decay factor for kernels (0 = none).
    """

    def __init__(
        self,
        learning_rate: float,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        weight_decay: float = 0.0,
        name: str | None = None,
    ) -> None:
        # None (not 0.0) switches Keras' decay hook off entirely.
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay or None, name=name)
        self.clip_norm = clip_norm
        self.clip_value = clip_value

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
    """p -= lr*g"""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * gradient)


class Momentum(CanonicalOptimizer):
    """v = momentum*v + g; p -= lr*v   (heavy ball, v starts at 0, no dampening)"""

    def __init__(self, learning_rate: float, momentum: float, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum = momentum

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        self.assign(velocity, self.momentum * velocity + gradient)
        self.assign_sub(variable, lr * velocity)


class Nesterov(Momentum):
    """v = momentum*v + g; p -= lr*(g + momentum*v)"""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        self.assign(velocity, self.momentum * velocity + gradient)
        self.assign_sub(variable, lr * (gradient + self.momentum * velocity))


class Adagrad(CanonicalOptimizer):
    """G += g^2; p -= lr*g/(sqrt(G) + eps)   (G starts at initial_accumulator; eps outside the sqrt)"""

    def __init__(self, learning_rate: float, eps: float, initial_accumulator: float, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.eps = eps
        self.initial_accumulator = initial_accumulator

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        start = keras.initializers.Constant(self.initial_accumulator)
        self.accumulators = [self.add_variable_from_reference(v, "accumulator", initializer=start) for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        accumulator = self.accumulators[self._get_variable_index(variable)]
        self.assign_add(accumulator, ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (ops.sqrt(accumulator) + self.eps))


class RMSprop(CanonicalOptimizer):
    """s = rho*s + (1-rho)*g^2; p -= lr*g/(sqrt(s) + eps)   (s starts at 0; eps outside the sqrt)"""

    def __init__(self, learning_rate: float, rho: float, eps: float, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.eps = eps

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.mean_squares = self.add_optimizer_variables(variables, "mean_square")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        mean_square = self.mean_squares[self._get_variable_index(variable)]
        self.assign(mean_square, self.rho * mean_square + (1.0 - self.rho) * ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (ops.sqrt(mean_square) + self.eps))


class Adam(CanonicalOptimizer):
    """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr*m^/(sqrt(v^) + eps), m^, v^ bias-corrected.

    Kingma & Ba 2015, Algorithm 1: eps is added to the bias-corrected sqrt(v^) (Keras adds
    it to the uncorrected sqrt(v), the paper's "epsilon hat" variant). Also adamw: the
    decoupled kernel decay comes from the base class.
    """

    def __init__(self, learning_rate: float, beta1: float, beta2: float, eps: float, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.first_moments, self.second_moments = self.add_optimizer_variables(variables, ["first_moment", "second_moment"])

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)  # t starts at 1
        correction1 = 1.0 - ops.power(ops.cast(self.beta1, variable.dtype), step)
        correction2 = 1.0 - ops.power(ops.cast(self.beta2, variable.dtype), step)
        index = self._get_variable_index(variable)
        m, v = self.first_moments[index], self.second_moments[index]
        self.assign(m, self.beta1 * m + (1.0 - self.beta1) * gradient)
        self.assign(v, self.beta2 * v + (1.0 - self.beta2) * ops.square(gradient))
        self.assign_sub(variable, lr * (m / correction1) / (ops.sqrt(v / correction2) + self.eps))


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
    params = dict(optimizer.params)
    # adamw carries its own decay; the suite forbids also setting regularizer.weight_decay, so
    # at most one term is nonzero and their sum is that term.
    weight_decay = float(params.pop("weight_decay", 0.0)) + float(regularizer.weight_decay)
    common: dict[str, Any] = {
        "learning_rate": float(params.pop("lr")),
        "clip_norm": regularizer.clip_norm,
        "clip_value": regularizer.clip_value,
        "weight_decay": weight_decay,
    }
    name = optimizer.name
    rules: dict[str, type[CanonicalOptimizer]] = {
        "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": Adagrad,
        "rmsprop": RMSprop, "adam": Adam, "adamw": Adam,
    }
    if name not in rules:
        raise BackendError(f"optimizer: the Keras backend has no realization of {name!r}. Expected one of: {', '.join(sorted(rules))}.")
    result = rules[name](**common, **params)
    if weight_decay:
        result.exclude_from_weight_decay(var_list=biases)
    return result
