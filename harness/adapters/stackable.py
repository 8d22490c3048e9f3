"""Which trials can be trained stacked (harness.adapters.vectorize), and what the members of a group share.

What can be stacked is a WHITELIST (`ineligible_reason`): anything not listed here (another backend,
layer, loss or optimizer, native initialization, clipping, diagnostics, any spec field or
training/regularizer key this module does not know) trains one trial at a time, with the reason.
New training features (schedules, early stopping, checkpoints) are therefore refused until they are
added here and to the stacked model on purpose.

The driver groups trials with these rules before any worker has started; this module imports no
training code, so deciding costs the driver nothing beyond the specs.
"""

from __future__ import annotations

from harness.spec.types import TrialSpec, canonical_json

VECTORIZED_BACKENDS = ("torch",)
VECTORIZED_LAYERS = ("dense", "activation", "dropout")
VECTORIZED_LOSSES = ("cross_entropy",)
VECTORIZED_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# Every key of TrialSpec.to_dict() (and of its training/regularizer blocks) the stacked model was written
# for. A key outside these sets - a feature added later - makes a trial ineligible until it is added here.
KNOWN_SPEC_KEYS = frozenset(
    {
        "dataset",
        "model",
        "loss",
        "optimizer",
        "initializer",
        "regularizer",
        "training",
        "seed",
        "backend",
        "init_mode",
        "device",
        "extras",
    }
)
KNOWN_TRAINING_KEYS = frozenset({"epochs", "batch_size", "shuffle", "drop_last", "max_seconds", "eval_every"})
KNOWN_REGULARIZER_KEYS = frozenset({"l1", "l2", "weight_decay", "dropout", "clip_norm", "clip_value"})
KNOWN_MODEL_KEYS = frozenset({"family", "layers", "graph"})  # not 'python' (a model from the user's code)
# Spec extras the stacked model realizes: per-layer diagnostics (harness.diagnostics), probed for every member
# at once through a member's view of the stacked model (_MemberView)
STACKED_EXTRAS = ("diagnostics",)
# What may differ between the members of one group (everything else is in group_key)
MEMBER_SCALARS = "seed, optimizer hyperparameters, initializer, l1, l2, weight_decay, dropout rates"


def ineligible_reason(spec: TrialSpec) -> str | None:
    """Why this trial cannot be trained stacked with others (None: it can). Conservative: a whitelist."""
    data = spec.to_dict()
    unknown = (
        (set(data) - KNOWN_SPEC_KEYS)
        | {f"training.{key}" for key in set(data["training"]) - KNOWN_TRAINING_KEYS}
        | {f"regularizer.{key}" for key in set(data["regularizer"]) - KNOWN_REGULARIZER_KEYS}
        | {f"model.{key}" for key in set(data["model"]) - KNOWN_MODEL_KEYS}
    )
    if unknown:
        return f"setting(s) the stacked model does not know: {', '.join(sorted(unknown))}"
    if spec.backend not in VECTORIZED_BACKENDS:
        return f"backend {spec.backend!r} trains one trial at a time (stacked trials: {', '.join(VECTORIZED_BACKENDS)})"
    if spec.init_mode != "shared":
        return f"init_mode {spec.init_mode!r} (stacked trials draw shared-mode weights)"
    unknown_extras = [key for key, _ in spec.extras if key not in STACKED_EXTRAS]
    if unknown_extras:
        return f"extras {', '.join(unknown_extras)} (stacked trials know: {', '.join(STACKED_EXTRAS)})"
    if spec.model.graph is not None:
        return "a graph model (stacked trials: a plain stack of layers)"
    kinds = sorted({layer.kind for layer in spec.model.layers} - set(VECTORIZED_LAYERS))
    if kinds:
        return f"layer(s) {', '.join(kinds)} (stacked trials: {', '.join(VECTORIZED_LAYERS)})"
    if spec.loss.name not in VECTORIZED_LOSSES:
        return f"loss {spec.loss.name!r} (stacked trials: {', '.join(VECTORIZED_LOSSES)})"
    if spec.optimizer.name not in VECTORIZED_OPTIMIZERS:
        return f"optimizer {spec.optimizer.name!r} (stacked trials: {', '.join(VECTORIZED_OPTIMIZERS)})"
    if spec.regularizer.clip_norm is not None or spec.regularizer.clip_value is not None:
        return "gradient clipping"
    return None


def group_key(spec: TrialSpec) -> str:
    """What members of one stacked group share: the spec without the per-member scalars (MEMBER_SCALARS).
    Only meaningful for eligible specs."""
    data = spec.to_dict()
    # under resplit: per_seed each seed has its own split, so a group is one seed's (its members share the data)
    for key in ("initializer",) if spec.dataset.resplit == "per_seed" else ("seed", "initializer"):
        data.pop(key)
    data["optimizer"] = data["optimizer"]["name"]  # the rule is shared, its hyperparameters are per member
    data["regularizer"] = {
        key: value for key, value in data["regularizer"].items() if key not in ("l1", "l2", "weight_decay", "dropout")
    }
    layers = []
    for layer in data["model"]["layers"]:
        (kind, params), *_ = layer.items()
        layers.append({kind: {**params, "rate": None}} if kind == "dropout" else layer)
    data["model"] = {**data["model"], "layers": layers}
    return canonical_json(data)
