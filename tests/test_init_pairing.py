"""Seeds pair arms: layers that draw no random tensors shift no other layer's initial weights.

Shared-mode initial weights are keyed by a layer's position among the layers that draw
(harness.spec.init.init_keys), so a model with and without a dropout, activation, batch_norm,
pooling, flatten, ... layer starts from the same random tensors at the same seed. The layer kinds
that draw nothing are enumerated from the registry (harness.spec.LAYERS), so a new kind is covered
(or this file fails, asking for its example parameters).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.specs import trial_spec

from harness.adapters.loop import train_trial
from harness.analysis.comparisons import compare_arms
from harness.data import load_dataset, resolve_dataset
from harness.errors import SpecError
from harness.spec import LAYERS, DatasetSpec, RegularizerSpec, initial_weights
from harness.spec.init import draws_random, init_keys, init_pairing
from harness.spec.layers import infer_layer, resolve_layer

# parameters for the kinds whose required parameters have no default (every other kind: its defaults)
EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "dense": {"units": 6},
    "dropout": {"rate": 0.5},
    "activation": {"activation": "relu"},
    "conv1d": {"filters": 6, "kernel_size": 1},
    "conv2d": {"filters": 6, "kernel_size": 1},
    "reshape": {"target_shape": [-1]},
    "simple_rnn": {"units": 6},
    "lstm": {"units": 6},
    "gru": {"units": 6},
    "embedding": {"vocabulary": 10, "dim": 6},
    "multi_head_attention": {"heads": 2, "key_dim": 3},
    "transformer_encoder": {"heads": 2, "ffn_units": 8},
}
# one sample's shape a layer is tried on, in order, with the drawing layer that keeps its channels (6):
# dense acts on the last axis of a vector or a sequence with one (6, 6) kernel; conv2d 1x1 on an image
INPUTS = (((6,), "dense"), ((5, 6), "dense"), ((4, 4, 6), "conv2d"))


def drawer(rank: int) -> dict[str, Any]:
    kind = "dense" if rank <= 2 else "conv2d"
    return {kind: EXAMPLE_PARAMS[kind]}


def example_layer(kind: str) -> dict[str, Any]:
    definition = LAYERS[kind]
    missing = [key for key in definition.required if key not in EXAMPLE_PARAMS.get(kind, {})]
    assert not missing, f"layer {kind!r}: add example parameters {missing} to EXAMPLE_PARAMS in this file"
    return {kind: EXAMPLE_PARAMS.get(kind)}


def placed(kind: str) -> tuple[tuple[int, ...], Any] | None:
    """The first of INPUTS a layer of `kind` accepts (as often as its arity asks), with its plan."""
    layer = resolve_layer(example_layer(kind), kind)
    for shape, _ in INPUTS:
        try:
            return shape, infer_layer(0, layer, (shape,) * LAYERS[kind].arity[0], kind)
        except SpecError:
            continue
    return None


def kinds_that_draw_nothing() -> list[str]:
    kinds = []
    for kind in LAYERS:
        placement = placed(kind)
        assert placement is not None, f"layer {kind!r} fits none of INPUTS: add an input shape it accepts"
        if not draws_random(placement[1]):
            kinds.append(kind)
    return kinds


NON_DRAWING = kinds_that_draw_nothing()


def test_the_registry_enumeration_finds_the_known_kinds():
    # a floor, not the list: new kinds that draw nothing join the parametrized tests by themselves
    known = {"dropout", "activation", "batch_norm", "layer_norm", "flatten", "reshape", "add", "concatenate"}
    known |= {"max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "global_avg_pool", "global_max_pool"}
    assert known <= set(NON_DRAWING)
    assert not {"dense", "conv1d", "conv2d", "lstm", "embedding", "position_embedding"} & set(NON_DRAWING)


def graph(with_kind: str | None, shape: tuple[int, ...]) -> dict[str, Any]:
    """drawer -> [the layer of `with_kind`] -> drawer -> drawer: the last drawer's tensors have one shape
    whatever the middle layer does, the middle drawer's whenever that layer keeps the channels."""
    nodes: list[dict[str, Any]] = [{"name": "first", "layer": drawer(len(shape))}]
    rank = len(shape)
    if with_kind is not None:
        arity = LAYERS[with_kind].arity[0]
        nodes.append({"name": "extra", "layer": example_layer(with_kind), "from": ["first"] * arity})
        rank = len(placed(with_kind)[1].output_shape)  # type: ignore[index]
    nodes.append({"name": "middle", "layer": drawer(rank)})
    nodes.append({"name": "last", "layer": drawer(rank)})
    return {"graph": {"nodes": nodes}}


def drawn_by_layer(spec, shape) -> list[dict[str, np.ndarray]]:
    """The initial tensors of each layer that draws, in init-key order, keyed by tensor name."""
    plans = spec.model.plan(shape)
    weights = initial_weights(plans, spec.initializer, spec.seed)
    keys = init_keys(plans)
    drawing = sorted((plan for plan in plans if plan.index in keys), key=lambda plan: keys[plan.index])
    return [{tensor.name: weights[f"{plan.name}.{tensor.name}"] for tensor in plan.tensors} for plan in drawing]


@pytest.mark.parametrize("initializer", ["he_normal", "fan_in_uniform"])  # fan_in_uniform draws biases too
@pytest.mark.parametrize("kind", NON_DRAWING)
def test_a_layer_that_draws_nothing_shifts_no_other_layers_weights(kind, initializer):
    shape = placed(kind)[0]  # type: ignore[index]
    with_it = trial_spec(graph(kind, shape), 6, initializer=initializer, seed=7)
    without = trial_spec(graph(None, shape), 6, initializer=initializer, seed=7)
    ours, theirs = drawn_by_layer(with_it, shape), drawn_by_layer(without, shape)
    assert len(ours) == len(theirs) == 3
    compared = 0
    for layer, (mine, other) in enumerate(zip(ours, theirs)):
        if {name: a.shape for name, a in mine.items()} != {name: a.shape for name, a in other.items()}:
            assert layer == 1, "only the drawer right after the layer may see another input width"
            continue
        for name in mine:
            np.testing.assert_array_equal(mine[name], other[name], err_msg=f"{kind}: drawing layer {layer} {name}")
        compared += 1
    assert compared >= 2  # the first and the last drawer always
    pairing = init_pairing(with_it, without, shape, shape)
    if compared == 3:
        assert str(pairing) == "identical"
    else:  # e.g. concatenate doubles the width the middle drawer reads
        assert pairing.verdict == "partly" and len(pairing.differing) == 1


def test_the_same_seed_draws_the_same_weights_and_another_seed_others():
    spec = trial_spec({"mlp": {"hidden": [8]}}, 3, seed=3)
    first, again = (
        initial_weights(spec.model.plan((4,)), spec.initializer, 3),
        initial_weights(spec.model.plan((4,)), spec.initializer, 3),
    )
    other = initial_weights(spec.model.plan((4,)), spec.initializer, 4)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["0.dense.kernel"], other["0.dense.kernel"])
    assert not np.array_equal(first["0.dense.kernel"], first["1.dense.kernel"][:4, :3])  # streams differ per layer


# --- what pairs and what does not (docs/semantics.md, "Initial weights") ------------------------------------


def iris_mlp(dropout: float = 0.0, hidden: tuple[int, ...] = (8,), **options: Any):
    return trial_spec(
        {"mlp": {"hidden": list(hidden)}},
        3,
        dropout=dropout,
        regularizer=RegularizerSpec(dropout=dropout),
        **options,
    )


def test_pairing_verdicts():
    shape = (4,)

    def pairing(first, second) -> str:
        return str(init_pairing(first, second, shape, shape))

    assert pairing(iris_mlp(0.0), iris_mlp(0.5)) == "identical"
    assert pairing(iris_mlp(0.0, optimizer="adam"), iris_mlp(0.0, optimizer="sgd")) == "identical"
    assert pairing(iris_mlp(0.0, backend="torch"), iris_mlp(0.0, backend="keras")) == "identical"
    # a deeper MLP keeps its first layer; the layers after the inserted one draw other streams and shapes
    assert pairing(iris_mlp(hidden=(8,)), iris_mlp(hidden=(8, 8))) == "partly (layers 1.dense differ)"
    assert pairing(iris_mlp(hidden=(8,)), iris_mlp(hidden=(16,))) == "no"  # every shape differs
    assert pairing(iris_mlp(initializer="he_normal"), iris_mlp(initializer="xavier_uniform")) == "no"
    assert pairing(iris_mlp(seed=0), iris_mlp(seed=1)) == "no"
    assert init_pairing(iris_mlp(init_mode="native"), iris_mlp(), shape, shape).reason.startswith("native")
    # fan_in_uniform draws the biases from the layer's stream too: still paired across a dropout layer
    uniform = iris_mlp(initializer="fan_in_uniform")
    assert pairing(uniform, iris_mlp(0.3, initializer="fan_in_uniform")) == "identical"


def test_a_deeper_mlp_keeps_the_weights_of_its_first_layers():
    shallow, deep = iris_mlp(hidden=(8, 8)), iris_mlp(hidden=(8, 8, 5))
    first = initial_weights(shallow.model.plan((4,)), shallow.initializer, 0)
    second = initial_weights(deep.model.plan((4,)), deep.initializer, 0)
    for key in ("0.dense.kernel", "0.dense.bias", "1.dense.kernel", "1.dense.bias"):
        np.testing.assert_array_equal(first[key], second[key])


# --- both adapters load exactly these weights --------------------------------------------------------------

CNN_WITH = [
    {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
    {"batch_norm": {}},
    {"activation": "relu"},
    {"max_pool2d": {"pool_size": 2}},
    {"dropout": 0.3},
    {"conv2d": {"filters": 5, "kernel_size": 3}},
    {"global_avg_pool": {}},
    {"dense": {}},
]
CNN_WITHOUT = [CNN_WITH[0], CNN_WITH[5], CNN_WITH[6], CNN_WITH[7]]


def test_both_adapters_load_the_same_random_weights_with_and_without_layers_that_draw_nothing(adapter):
    dataset_spec = resolve_dataset({"name": "digits", "shape": "image"})
    dataset = load_dataset(dataset_spec)
    loaded = []
    for layers in (CNN_WITH, CNN_WITHOUT):
        spec = trial_spec(layers, 10, seed=11, backend=adapter.name, dataset=dataset_spec)
        model = adapter.build(spec, dataset.info)
        model.set_weights(initial_weights(spec.model.plan(dataset.info.input_shape), spec.initializer, spec.seed))
        loaded.append(model.get_weights())
    with_it, without = loaded
    for ours, theirs in (("0.conv2d", "0.conv2d"), ("5.conv2d", "1.conv2d"), ("7.dense", "3.dense")):
        for tensor in ("kernel", "bias"):
            np.testing.assert_array_equal(with_it[f"{ours}.{tensor}"], without[f"{theirs}.{tensor}"])
    assert with_it["7.dense.kernel"].any()  # random, not constant


DROPOUT_GRID = (0.0, 0.2, 0.5)


def test_iris_dropout_grid_starts_from_one_train_loss(adapter):
    """The measured case: at epoch 0 (before training, dropout off at evaluation) every dropout rate had
    the train loss 1.069 and dropout 0.0 had 1.540, because the dropout layer re-keyed the output layer."""
    dataset_spec = resolve_dataset("iris")
    dataset = load_dataset(dataset_spec)
    losses = []
    for rate in DROPOUT_GRID:
        spec = iris_mlp(rate, optimizer={"name": "sgd", "lr": 1e-4}, backend=adapter.name, dataset=dataset_spec)
        result = train_trial(spec, adapter, dataset)
        losses.append(next(value for epoch, name, value in result.metrics if epoch == 0 and name == "train_loss"))
    np.testing.assert_allclose(losses, losses[0], rtol=1e-6)


# --- the comparisons table says whether each comparison's arms shared initial weights ------------------------


def test_comparisons_say_whether_the_arms_shared_initial_weights():
    iris = DatasetSpec("iris")
    arms = {
        "none": iris_mlp(0.0, dataset=iris),
        "dropout": iris_mlp(0.5, dataset=iris),
        "deeper": iris_mlp(hidden=(8, 8), dataset=iris),
        "xavier": iris_mlp(initializer="xavier_uniform", dataset=iris),
    }
    rows = [
        {
            "arm": arm,
            "backend": "torch",
            "seed": seed,
            "status": "ok",
            "test_accuracy": 0.5 + 0.01 * seed + 0.1 * index,
            "spec": dataclasses.replace(spec, seed=seed).to_json(),
        }
        for index, (arm, spec) in enumerate(arms.items())
        for seed in range(3)
    ]
    final = pd.DataFrame(rows)
    table = compare_arms(
        final,
        metric="test_accuracy",
        references=dict.fromkeys(arms, "none"),
        arms=list(arms),
        backends=["torch"],
        axes=[],
    )
    assert dict(zip(table["arm"], table["initial_weights"])) == {
        "dropout": "identical",
        "deeper": "partly (layers 1.dense differ)",
        "xavier": "no",
    }
    without_specs = compare_arms(
        final.drop(columns="spec"),
        metric="test_accuracy",
        references=dict.fromkeys(arms, "none"),
        arms=list(arms),
        backends=["torch"],
        axes=[],
    )
    assert set(without_specs["initial_weights"]) == {"-"}
