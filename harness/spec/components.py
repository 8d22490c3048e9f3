"""Canonical components: every name a suite may use, its parameters, defaults and MEANING.

The spec fixes one meaning per name; each adapter realizes exactly that meaning
(docs/semantics.md says where the frameworks disagree).
A component in a suite is a string (`adam`) or a mapping (`{name: adam, lr: 0.01}`);
`resolve_component` turns either into a `Component` with every parameter explicit.

Notation in the formulas: g = gradient of the total objective (data loss + penalties)
after clipping, p = parameter, t = step count starting at 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import unknown_name
from harness.spec.params import Parameter, defaults, reject_unknown_keys, split_named


@dataclass(frozen=True)
class ComponentDef:
    """A canonical component: name, parameters with defaults, and its formula."""

    name: str
    kind: str
    formula: str
    params: Mapping[str, Parameter] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """A resolved component: canonical name plus EVERY parameter, defaults filled in.

    `params` is a tuple of sorted (key, value) pairs so the object is hashable and its
    JSON form is canonical.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Component:
        data = dict(data)
        name = data.pop("name")
        return cls(name=name, params=tuple(sorted(data.items())))


def _defs(kind: str, *entries: tuple[str, str, dict[str, Parameter]]) -> dict[str, ComponentDef]:
    return {name: ComponentDef(name, kind, formula, params) for name, formula, params in entries}


_LR = "learning rate"
_ADAM = {
    "lr": Parameter("number", 0.001, "> 0", _LR),
    "beta1": Parameter("number", 0.9, "[0, 1)", "decay of the first-moment average"),
    "beta2": Parameter("number", 0.999, "(0, 1)", "decay of the second-moment average"),
    "eps": Parameter("number", 1e-8, "> 0", "added to the bias-corrected sqrt(v^)"),
}

OPTIMIZERS = _defs(
    "optimizer",
    ("sgd", "p -= lr*g", {"lr": Parameter("number", 0.01, "> 0", _LR)}),
    (
        "momentum",
        "v = momentum*v + g; p -= lr*v   (heavy ball, v starts at 0, no dampening; PyTorch's form)",
        {"lr": Parameter("number", 0.01, "> 0", _LR), "momentum": Parameter("number", 0.9, "[0, 1)")},
    ),
    (
        "nesterov",
        "v = momentum*v + g; p -= lr*(g + momentum*v)   (PyTorch's form)",
        {"lr": Parameter("number", 0.01, "> 0", _LR), "momentum": Parameter("number", 0.9, "(0, 1)")},
    ),
    (
        "adagrad",
        "G += g^2; p -= lr*g/(sqrt(G) + eps)   (G starts at initial_accumulator; eps OUTSIDE the sqrt)",
        {
            "lr": Parameter("number", 0.01, "> 0", _LR),
            "eps": Parameter("number", 1e-10, "> 0"),
            "initial_accumulator": Parameter("number", 0.0, ">= 0"),
        },
    ),
    (
        "rmsprop",
        "s = rho*s + (1-rho)*g^2; p -= lr*g/(sqrt(s) + eps)   (s starts at 0; eps OUTSIDE the sqrt)",
        {
            "lr": Parameter("number", 0.01, "> 0", _LR),
            "rho": Parameter("number", 0.99, "(0, 1)"),
            "eps": Parameter("number", 1e-8, "> 0"),
        },
    ),
    (
        "adam",
        "m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; m^ = m/(1-b1^t); v^ = v/(1-b2^t); "
        "p -= lr*m^/(sqrt(v^) + eps)   (Kingma & Ba 2015, Algorithm 1: eps added to the bias-corrected sqrt)",
        _ADAM,
    ),
    (
        "adamw",
        "p -= lr*weight_decay*p on kernels (decoupled, before the step), then the adam update "
        "(Loshchilov & Hutter 2019)",
        {**_ADAM, "weight_decay": Parameter("number", 0.01, ">= 0", "decoupled decay of the kernels")},
    ),
)

LOSSES = _defs(
    "loss",
    ("cross_entropy", "mean over the batch of -log softmax(logits)[label]; logits (N, C), integer labels (N,)", {}),
    (
        "binary_cross_entropy",
        "mean over the batch of -[y*log sigmoid(z) + (1-y)*log(1-sigmoid(z))]; one logit per sample (N, 1), y in {0, 1}",
        {},
    ),
    ("mse", "mean over ALL elements of (prediction - target)^2; prediction (N, K), target (N, K)", {}),
    (
        "ctc",
        "mean over the batch of -log p(label string | x), p summed over every alignment of the string to the T "
        "output steps (Graves et al. 2006); logits (N, T, C) with class 0 the blank, labels (N, S) of classes >= 1 "
        "padded with 0; every output step counts; NOT divided by the string's length (PyTorch's reduction='mean' is)",
        {},
    ),
)

INITIALIZERS = _defs(
    "initializer",
    ("zeros", "w = 0", {}),
    ("normal", "w ~ N(0, std^2), plain (not truncated)", {"std": Parameter("number", 0.01, "> 0")}),
    ("uniform", "w ~ U(-limit, limit)", {"limit": Parameter("number", 0.05, "> 0")}),
    (
        "xavier_uniform",
        "w ~ U(-a, a), a = gain*sqrt(6/(fan_in+fan_out))   (Glorot & Bengio 2010)",
        {"gain": Parameter("number", 1.0, "> 0")},
    ),
    (
        "xavier_normal",
        "w ~ N(0, s^2), s = gain*sqrt(2/(fan_in+fan_out)), plain (not truncated)",
        {"gain": Parameter("number", 1.0, "> 0")},
    ),
    ("he_normal", "w ~ N(0, s^2), s = sqrt(2/fan_in), plain (not truncated)   (He et al. 2015)", {}),
    ("he_uniform", "w ~ U(-a, a), a = sqrt(6/fan_in)", {}),
    ("lecun_normal", "w ~ N(0, s^2), s = sqrt(1/fan_in), plain (not truncated)   (the book's 'Xavier')", {}),
    (
        "orthogonal",
        "w = gain * Q, Q from the QR decomposition of a N(0,1) matrix of shape (fan_in, fan_out), "
        "sign-corrected by diag(R)   (Saxe et al. 2014)",
        {"gain": Parameter("number", 1.0, "> 0")},
    ),
    (
        "fan_in_uniform",
        "w ~ U(-a, a) and b ~ U(-a, a), a = 1/sqrt(fan_in)   (PyTorch's default for Linear/Conv; "
        "the only initializer that draws biases)",
        {},
    ),
)

ACTIVATIONS = _defs(
    "activation",
    ("linear", "f(x) = x", {}),
    ("relu", "f(x) = max(x, 0)", {}),
    ("sigmoid", "f(x) = 1/(1 + exp(-x))", {}),
    ("tanh", "f(x) = tanh(x)", {}),
    ("leaky_relu", "f(x) = x if x > 0 else negative_slope*x", {"negative_slope": Parameter("number", 0.01, ">= 0")}),
    ("elu", "f(x) = x if x > 0 else alpha*(exp(x) - 1)", {"alpha": Parameter("number", 1.0, "> 0")}),
    ("gelu", "f(x) = x*Phi(x), Phi the standard normal CDF (exact erf form, not the tanh approximation)", {}),
    ("softmax", "f(x)_i = exp(x_i)/sum_j exp(x_j) over the last axis; only for probabilities, never before a loss", {}),
)

REGISTRIES: dict[str, dict[str, ComponentDef]] = {
    "optimizer": OPTIMIZERS,
    "loss": LOSSES,
    "initializer": INITIALIZERS,
    "activation": ACTIVATIONS,
}


def formula_doc(kind: str, name: str, realization: str = "") -> str:
    """The docstring of an adapter's realization of a canonical component: the canonical formula
    (written once, here) and then what the adapter adds about how it realizes it.

        class SGD(CanonicalOptimizer):
            __doc__ = formula_doc("optimizer", "sgd")
    """
    text = f"{kind} {name}: {REGISTRIES[kind][name].formula}"
    return f"{text}\n\n{realization}" if realization else text


def resolve_component(kind: str, raw: Any, where: str) -> Component:
    """Turn `'adam'` or `{name: adam, lr: 0.01}` into a Component with all defaults filled.

    Raises:
        SpecError: unknown name (with did-you-mean), unknown parameter, or a bad value.
    """
    registry = REGISTRIES[kind]
    name, given = split_named(raw, where, kind, f"name: {next(iter(registry))}, ...")
    if not isinstance(name, str) or name not in registry:
        raise unknown_name(kind, str(name), registry, where)
    definition = registry[name]
    reject_unknown_keys(given, sorted(definition.params), where, f"{kind} {name!r}")
    params = defaults(definition.params)
    params.update((key, definition.params[key].check(value, f"{where}.{key}")) for key, value in given.items())
    return Component(name=name, params=tuple(sorted(params.items())))
