"""The framework-free layer spec (harness.spec.layers*, graph, families, init): shapes, tensors,
canonical padding, graph wiring, family expansions, parameter counts and shared-init roles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.errors import SpecError
from harness.spec import ModelSpec, check_model_against_task, initial_weights, resolve_component, resolve_model
from harness.spec.layers import LAYERS, LayerSpec, resolve_layer
from harness.spec.layers_spatial import padding_amounts


def count(model: ModelSpec, input_shape: tuple[int, ...]) -> int:
    return sum(math.prod(t.shape) for plan in model.plan(input_shape) for t in plan.tensors if t.trainable)


def shapes(raw: dict, input_shape: tuple[int, ...], num_outputs: int = 10) -> list[tuple[int, ...]]:
    return [plan.output_shape for plan in resolve_model(raw, num_outputs).plan(input_shape)]


# The four MNIST-1D models of Greydanus & Kobak ("Scaling down deep learning with MNIST-1D", ICML 2024),
# with the paper's parameter counts.
MNIST1D_MODELS = {
    "logistic": ({"layers": [{"dense": {}}]}, (40,), 410),
    "mlp": ({"mlp": {"hidden": [100, 100], "residual": True}}, (40,), 15_210),
    "cnn": ({"cnn": {"filters": [25, 25, 25], "kernel_size": [5, 3, 3], "strides": 2, "padding": 1}}, (40, 1), 5_210),
    "gru": ({"rnn": {"cell": "gru", "units": 6, "bidirectional": True, "readout": "flatten"}}, (40, 1), 5_134),
}


@pytest.mark.parametrize("name", MNIST1D_MODELS, ids=str)
def test_mnist1d_models_have_the_papers_parameter_counts(name):
    raw, input_shape, expected = MNIST1D_MODELS[name]
    model = resolve_model(raw, 10)
    assert count(model, input_shape) == expected
    check_model_against_task(model, input_shape, "cross_entropy", "classification", 10)


def test_mnist1d_cnn_and_gru_shapes_match_the_paper():
    cnn, _, _ = MNIST1D_MODELS["cnn"]
    assert shapes(cnn, (40, 1)) == [(19, 25), (10, 25), (5, 25), (125,), (10,)]  # flatten (125) -> Linear(10)
    gru, _, _ = MNIST1D_MODELS["gru"]
    assert shapes(gru, (40, 1)) == [(40, 12), (480,), (10,)]  # flatten (2*6*40)


def tf_same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's documented SAME padding (tf.nn.convolution docs), written independently of the spec."""
    total = max(kernel - stride, 0) if length % stride == 0 else max(kernel - length % stride, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("stride", [1, 2, 3], ids=lambda s: f"s{s}")
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5], ids=lambda k: f"k{k}")
def test_same_padding_is_tensorflows_rule(kernel, stride):
    for length in range(1, 13):
        before, after = padding_amounts(length, kernel, stride, 1, "same")
        assert (before, after) == tf_same_padding(length, kernel, stride), length
        assert (length + before + after - kernel) // stride + 1 == math.ceil(length / stride)  # output ceil(L/s)


@pytest.mark.parametrize(
    "layer, input_shape, output_shape",
    [
        ({"conv1d": {"filters": 4, "kernel_size": 5}}, (40, 1), (36, 4)),
        ({"conv1d": {"filters": 4, "kernel_size": 5, "strides": 2, "padding": 1}}, (40, 1), (19, 4)),
        ({"conv1d": {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"}}, (9, 3), (5, 4)),
        ({"conv1d": {"filters": 4, "kernel_size": 3, "dilation": 3}}, (10, 2), (4, 4)),
        ({"conv1d": {"filters": 4, "kernel_size": 3, "dilation": 2, "padding": "same"}}, (10, 2), (10, 4)),
        ({"conv2d": {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same"}}, (7, 6, 2), (4, 3, 6)),
        ({"conv2d": {"filters": 6, "kernel_size": [2, 3], "padding": [1, 0]}}, (8, 8, 1), (9, 6, 6)),
        ({"max_pool1d": {}}, (9, 3), (4, 3)),
        ({"avg_pool1d": {"pool_size": 3, "strides": 2, "padding": "same"}}, (8, 3), (4, 3)),
        ({"max_pool2d": {"pool_size": 2, "padding": "same"}}, (5, 5, 2), (3, 3, 2)),
        ({"global_avg_pool": {}}, (5, 5, 7), (7,)),
        ({"global_max_pool": {}}, (12, 4), (4,)),
        ({"flatten": {}}, (5, 25), (125,)),
        ({"reshape": {"target_shape": [-1, 1]}}, (40,), (40, 1)),
        ({"batch_norm": {}}, (8, 8, 3), (8, 8, 3)),
        ({"layer_norm": {}}, (10, 16), (10, 16)),
        ({"lstm": {"units": 5}}, (10, 3), (5,)),
        ({"gru": {"units": 5, "return_sequences": True, "bidirectional": True}}, (10, 3), (10, 10)),
        ({"simple_rnn": {"units": 5, "bidirectional": True}}, (10, 3), (10,)),
        ({"embedding": {"vocabulary": 20, "dim": 8}}, (12,), (12, 8)),
        ({"position_embedding": {}}, (12, 8), (12, 8)),
        ({"multi_head_attention": {"heads": 2, "key_dim": 3, "output_dim": 5}}, (12, 8), (12, 5)),
        ({"transformer_encoder": {"heads": 2, "ffn_units": 16}}, (12, 8), (12, 8)),
    ],
    ids=[
        "conv1d-valid",
        "conv1d-int-pad-stride",
        "conv1d-same-even-kernel",
        "conv1d-dilation",
        "conv1d-same-dilation",
        "conv2d-same-stride",
        "conv2d-int-pad-per-axis",
        "max-pool1d",
        "avg-pool1d-same",
        "max-pool2d-same",
        "global-avg",
        "global-max",
        "flatten",
        "reshape-infer",
        "batch-norm",
        "layer-norm",
        "lstm",
        "gru-bi-seq",
        "rnn-bi-last",
        "embedding",
        "position",
        "attention",
        "transformer",
    ],
)
def test_output_shapes(layer, input_shape, output_shape):
    assert shapes({"layers": [layer]}, input_shape)[-1] == output_shape


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        ({"conv2d": {"filters": 6, "kernel_size": [2, 3]}}, (8, 8, 4), {"kernel": (2, 3, 4, 6), "bias": (6,)}),
        ({"lstm": {"units": 5}}, (10, 3), {"kernel": (3, 20), "recurrent_kernel": (5, 20), "bias": (20,)}),
        (
            {"gru": {"units": 5, "bidirectional": True}},
            (10, 3),
            {
                "forward_kernel": (3, 15),
                "forward_recurrent_kernel": (5, 15),
                "forward_bias": (2, 15),
                "backward_kernel": (3, 15),
                "backward_recurrent_kernel": (5, 15),
                "backward_bias": (2, 15),
            },
        ),
        (
            {"multi_head_attention": {"heads": 2, "key_dim": 3, "value_dim": 4}},
            (12, 8),
            {
                "query_kernel": (8, 6),
                "query_bias": (6,),
                "key_kernel": (8, 6),
                "key_bias": (6,),
                "value_kernel": (8, 8),
                "value_bias": (8,),
                "output_kernel": (8, 8),
                "output_bias": (8,),
            },
        ),
        (
            {"batch_norm": {}},
            (7, 3),
            {"gamma": (3,), "beta": (3,), "moving_mean": (3,), "moving_variance": (3,)},
        ),
    ],
    ids=["conv2d", "lstm-one-bias", "gru-bidirectional", "attention", "batch-norm-state"],
)
def test_canonical_tensor_names_shapes_and_draw_order(layer, input_shape, expected):
    (plan,) = resolve_model({"layers": [layer]}, 10).plan(input_shape)
    assert [(t.name, t.shape) for t in plan.tensors] == list(expected.items())


def test_roles_decide_training_and_regularization():
    (plan,) = resolve_model({"layers": [{"batch_norm": {}}]}, 3).plan((3,))
    assert [(t.trainable, t.regularized) for t in plan.tensors] == [
        (True, False),
        (True, False),
        (False, False),
        (False, False),
    ]
    (plan,) = resolve_model({"layers": [{"lstm": {"units": 2}}]}, 3).plan((4, 3))
    assert [(t.role, t.regularized) for t in plan.tensors] == [
        ("kernel", True),
        ("recurrent_kernel", True),
        ("bias", False),
    ]


@pytest.mark.parametrize(
    "layers, input_shape, fragment",
    [
        (
            [{"dense": {"units": 4}}, {"conv2d": {"filters": 2, "kernel_size": 3}}],
            (8,),
            r"model.layers\[1\] \(conv2d\): conv2d expects a \(height, width, channels\) input, got shape \(4,\)",
        ),
        (
            [{"lstm": {"units": 4}}],
            (8, 8, 1),
            r"model.layers\[0\] \(lstm\): lstm expects a \(time, channels\) input, got shape \(8, 8, 1\)",
        ),
        ([{"conv1d": {"filters": 2, "kernel_size": 3}}], (40,), r"shape: sequence.*target_shape: \[40, 1\]"),
        ([{"gru": {"units": 4}}], (40,), r"gru expects a \(time, channels\) input, got shape \(40,\)"),
        ([{"conv1d": {"filters": 2, "kernel_size": 9}}], (5, 1), r"window spans 9 positions but the input axis has 5"),
        ([{"max_pool2d": {"pool_size": 4}}], (3, 8, 1), r"window spans 4 positions but the input axis has 3"),
        (
            [{"conv1d": {"filters": 2, "kernel_size": 3, "strides": 2, "dilation": 2}}],
            (9, 1),
            r"stride > 1 with a dilation > 1",
        ),
        ([{"reshape": {"target_shape": [7, -1]}}], (40,), r"cannot reshape \(40,\) \(40 values\) to \(7, -1\)"),
        ([{"transformer_encoder": {"heads": 3, "ffn_units": 8}}], (5, 8), r"8 channels, not divisible by heads=3"),
        ([{"global_avg_pool": {}}], (8,), r"global_avg_pool pools over the positions.*got shape \(8,\)"),
        ([{"add": {}}], (8,), r"add takes at least 2 input\(s\), got 1. Merging layers exist only in the graph form"),
        ([{"position_embedding": {}}], (8,), r"position_embedding expects a \(positions..., channels\) input"),
    ],
    ids=[
        "conv2d-after-dense",
        "lstm-on-image",
        "conv1d-on-vector-hint",
        "gru-on-vector",
        "kernel-too-large",
        "pool-too-large",
        "stride-and-dilation",
        "reshape-size",
        "heads-divide",
        "global-pool-vector",
        "add-in-stack",
        "position-on-vector",
    ],
)
def test_shape_errors_name_the_layer_and_shapes(layers, input_shape, fragment):
    model = resolve_model({"layers": layers}, 10)
    with pytest.raises(SpecError, match=fragment):
        model.plan(input_shape)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"conv1d": {"filters": 2}}, "needs the parameter 'kernel_size'"),
        ({"conv2d": {"filters": 2, "kernel_size": [3, 3, 3]}}, "a list of 2 positive integers"),
        ({"conv1d": {"filters": 2, "kernel_size": 3, "padding": "full"}}, "expected 'valid', 'same', an integer >= 0"),
        ({"max_pool1d": {"padding": 1}}, "expected one of 'valid', 'same'"),
        ({"lstm": {"units": 4, "bidirectional": "yes"}}, "expected true or false"),
        ({"gru": {"units": 4, "recurrent_initializer": "orthogonl"}}, "Did you mean 'orthogonal'?"),
        ({"transformer_encoder": {"heads": 2, "ffn_units": 8, "norm": "middle"}}, "expected one of 'post', 'pre'"),
        ({"batch_norm": {"momentum": 1.0}}, "expected a number in [0, 1)"),
        ({"conv1d": {"filter": 2, "kernel_size": 3}}, "Did you mean 'filters'?"),
        ({"reshape": {"target_shape": [-1, -1]}}, "at most one dimension may be -1"),
    ],
    ids=[
        "missing-kernel",
        "kernel-rank",
        "bad-padding",
        "pool-int-padding",
        "bool",
        "initializer-typo",
        "norm",
        "momentum",
        "typo",
        "two-minus-one",
    ],
)
def test_bad_layer_parameters(raw, fragment):
    with pytest.raises(SpecError) as caught:
        resolve_layer(raw, "model.layers[0]")
    assert fragment in str(caught.value) and str(caught.value).startswith("model.layers[0]")


def test_int_or_list_parameters_are_stored_per_axis_and_round_trip():
    layer = resolve_layer({"conv2d": {"filters": 2, "kernel_size": 3, "padding": 1}}, "x")
    assert layer["kernel_size"] == (3, 3) and layer["strides"] == (1, 1) and layer["padding"] == (1, 1)
    assert layer.to_dict()["conv2d"]["kernel_size"] == [3, 3]  # JSON lists
    assert resolve_layer({"conv2d": {"filters": 2, "kernel_size": [3, 3], "padding": [1, 1]}}, "x") == layer


# Every layer kind in one model each, to check the JSON round trip (hashes are made from to_dict).
EVERY_KIND = {
    "dense": ((4,), [{"dense": {"units": 3}}]),
    "dropout": ((4,), [{"dropout": 0.2}]),
    "activation": ((4,), [{"activation": {"name": "leaky_relu", "negative_slope": 0.2}}]),
    "batch_norm": ((4,), [{"batch_norm": {"momentum": 0.8}}]),
    "layer_norm": ((4,), [{"layer_norm": {}}]),
    "conv1d": ((9, 2), [{"conv1d": {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}}]),
    "conv2d": ((6, 6, 1), [{"conv2d": {"filters": 3, "kernel_size": [2, 3]}}]),
    "max_pool1d": ((9, 2), [{"max_pool1d": {"padding": "same"}}]),
    "max_pool2d": ((6, 6, 1), [{"max_pool2d": {}}]),
    "avg_pool1d": ((9, 2), [{"avg_pool1d": {"strides": 1}}]),
    "avg_pool2d": ((6, 6, 1), [{"avg_pool2d": {"pool_size": 3}}]),
    "global_avg_pool": ((6, 2), [{"global_avg_pool": None}]),
    "global_max_pool": ((6, 2), [{"global_max_pool": {}}]),
    "flatten": ((6, 2), [{"flatten": {}}]),
    "reshape": ((6,), [{"reshape": {"target_shape": [3, 2]}}]),
    "simple_rnn": ((5, 2), [{"simple_rnn": {"units": 3}}]),
    "lstm": ((5, 2), [{"lstm": {"units": 3, "recurrent_initializer": {"name": "orthogonal", "gain": 2.0}}}]),
    "gru": ((5, 2), [{"gru": {"units": 3, "bidirectional": True}}]),
    "embedding": ((5,), [{"embedding": {"vocabulary": 7, "dim": 3}}]),
    "position_embedding": ((5, 2), [{"position_embedding": {}}]),
    "multi_head_attention": ((5, 4), [{"multi_head_attention": {"heads": 2, "key_dim": 2, "causal": True}}]),
    "transformer_encoder": ((5, 4), [{"transformer_encoder": {"heads": 2, "ffn_units": 8, "activation": "gelu"}}]),
    "add": ((4,), None),
    "concatenate": ((4,), None),
}
GRAPH = {
    "inputs": "x",
    "nodes": [
        {"name": "a", "layer": {"dense": {"units": 5, "activation": "relu"}}, "from": "x"},
        {"name": "b", "layer": {"dense": {"units": 5, "activation": "tanh"}}, "from": "x"},
        {"name": "summed", "layer": {"add": {}}, "from": ["a", "b"]},
        {"name": "joined", "layer": {"concatenate": {}}, "from": ["summed", "a"]},
        {"name": "logits", "layer": {"dense": {}}},
        {"name": "aux", "layer": {"dense": {}}, "from": "b"},
    ],
    "outputs": [{"from": "logits"}, {"from": "aux", "weight": 0.5, "loss": "cross_entropy"}],
}


def test_every_layer_kind_is_covered_here():
    assert set(EVERY_KIND) == set(LAYERS)


@pytest.mark.parametrize("kind", sorted(EVERY_KIND), ids=str)
def test_every_layer_kind_round_trips_through_json(kind):
    input_shape, layers = EVERY_KIND[kind]
    model = resolve_model({"graph": GRAPH} if layers is None else {"layers": layers}, 3)
    again = ModelSpec.from_dict(model.to_dict())
    assert again == model and again.to_dict() == model.to_dict()
    assert [p.output_shape for p in again.plan(input_shape)] == [p.output_shape for p in model.plan(input_shape)]


def test_plain_stacks_have_no_graph_key_so_their_hashes_do_not_move():
    model = resolve_model({"mlp": {"hidden": [100, 100]}}, 10)
    assert model.to_dict() == {
        "family": "mlp",
        "layers": [
            {"dense": {"activation": {"name": "relu"}, "units": 100, "use_bias": True}},
            {"dense": {"activation": {"name": "relu"}, "units": 100, "use_bias": True}},
            {"dense": {"activation": {"name": "linear"}, "units": 10, "use_bias": True}},
        ],
    }


class TestGraph:
    def test_wiring_shapes_and_outputs(self):
        model = resolve_model({"graph": GRAPH}, 3)
        plans = model.plan((4,))
        assert [(p.node, p.inputs, p.output_shape) for p in plans] == [
            ("a", (-1,), (5,)),
            ("b", (-1,), (5,)),
            ("summed", (0, 1), (5,)),
            ("joined", (2, 0), (10,)),
            ("logits", (3,), (3,)),
            ("aux", (1,), (3,)),
        ]
        assert [(o.name, o.index, o.loss, o.weight) for o in model.outputs()] == [
            ("logits", 4, None, 1.0),
            ("aux", 5, "cross_entropy", 0.5),
        ]
        assert plans[3].input_shapes == ((5,), (5,))
        check_model_against_task(model, (4,), "cross_entropy", "classification", 3)

    def test_defaults_input_name_from_previous_node_and_last_node_output(self):
        model = resolve_model(
            {
                "graph": {
                    "nodes": [{"name": "h", "layer": {"dense": {"units": 4}}}, {"name": "out", "layer": {"dense": {}}}]
                }
            },
            2,
        )
        assert model.graph.input == "input" and [n.sources for n in model.graph.nodes] == [("input",), ("h",)]
        assert [o.name for o in model.outputs()] == ["out"] and model.layers[-1]["units"] == 2

    @pytest.mark.parametrize(
        "change, fragment",
        [
            (
                {"nodes": [{"name": "a", "layer": {"dense": {"units": 2}}, "from": "y"}]},
                "'y' is not the input or an earlier node",
            ),
            (
                {
                    "nodes": [
                        {"name": "a", "layer": {"dense": {"units": 2}}, "from": "b"},
                        {"name": "b", "layer": {"dense": {"units": 2}}},
                    ]
                },
                "'b' is listed below this node",
            ),
            (
                {
                    "nodes": [
                        {"name": "a", "layer": {"dense": {"units": 2}}},
                        {"name": "a", "layer": {"dense": {"units": 2}}},
                    ]
                },
                "already used",
            ),
            (
                {
                    "nodes": [
                        {"name": "a", "layer": {"dense": {"units": 2}}},
                        {"name": "b", "layer": {"dense": {"units": 2}}, "from": "x"},
                    ],
                    "outputs": ["b"],
                },
                "node(s) 'a' feed no other node and no output",
            ),
            ({"outputs": [{"from": "logits", "loss": "hinge"}]}, "unknown loss 'hinge'"),
            ({"outputs": [{"from": "logits", "weight": 0}]}, "expected a number > 0"),
            ({"outputs": ["logit"]}, "Did you mean 'logits'?"),
            ({"outputs": ["logits", "logits"]}, "output names must be unique"),
            ({"edges": []}, "unknown key 'edges'"),
            ({"nodes": [{"name": "2a", "layer": {"dense": {"units": 2}}}]}, "expected a name of letters"),
        ],
        ids=[
            "unknown-source",
            "forward-reference",
            "duplicate",
            "dead-node",
            "bad-loss",
            "zero-weight",
            "typo-output",
            "duplicate-output",
            "unknown-key",
            "bad-name",
        ],
    )
    def test_wiring_errors(self, change, fragment):
        raw = {**GRAPH, **change}
        if "nodes" in change and "outputs" not in change:
            del raw["outputs"]  # the default: the last node
        with pytest.raises(SpecError) as caught:
            resolve_model({"graph": raw}, 3)
        assert fragment in str(caught.value) and str(caught.value).startswith("model.graph")

    def test_add_of_different_shapes_names_the_node_and_shapes(self):
        raw = {
            "inputs": "x",
            "nodes": [
                {"name": "wide", "layer": {"dense": {"units": 8}}, "from": "x"},
                {"name": "narrow", "layer": {"dense": {"units": 4}}, "from": "x"},
                {"name": "merged", "layer": {"add": {}}, "from": ["wide", "narrow"]},
                {"name": "out", "layer": {"dense": {}}},
            ],
        }
        with pytest.raises(
            SpecError,
            match=r"model.graph.nodes\[2\] 'merged' \(add\): add needs inputs of one shape, got \(8,\), \(4,\)",
        ):
            resolve_model({"graph": raw}, 3).plan((5,))

    def test_concatenate_mismatch_and_conv_after_dense_in_a_graph(self):
        raw = {
            "nodes": [
                {"name": "seq", "layer": {"conv1d": {"filters": 2, "kernel_size": 3}}},
                {"name": "same", "layer": {"conv1d": {"filters": 2, "kernel_size": 1}}, "from": "input"},
                {"name": "joined", "layer": {"concatenate": {}}, "from": ["seq", "same"]},
                {"name": "out", "layer": {"dense": {}}},
            ]
        }
        with pytest.raises(SpecError, match=r"nodes\[2\] 'joined' \(concatenate\).*got \(6, 2\), \(8, 2\)"):
            resolve_model({"graph": raw}, 3).plan((8, 1))

    def test_output_checks_per_output(self):
        raw = {
            "nodes": [
                {"name": "h", "layer": {"dense": {"units": 4}}},
                {"name": "out", "layer": {"dense": {"units": 5}}},
            ]
        }
        with pytest.raises(SpecError, match=r"model.graph.outputs 'out': the output shape is \(5,\)"):
            check_model_against_task(resolve_model({"graph": raw}, 3), (4,), "cross_entropy", "classification", 3)
        raw = {**GRAPH, "outputs": [{"from": "logits", "loss": "mse"}, "aux"]}
        with pytest.raises(
            SpecError, match=r"loss 'mse' needs a regression dataset, but this dataset is a classification"
        ):
            check_model_against_task(resolve_model({"graph": raw}, 3), (4,), "cross_entropy", "classification", 3)
        softmax = {"nodes": [{"name": "out", "layer": {"dense": {"activation": "softmax"}}}]}
        with pytest.raises(SpecError, match="takes logits"):
            check_model_against_task(resolve_model({"graph": softmax}, 3), (4,), "cross_entropy", "classification", 3)


class TestFamilies:
    def test_residual_mlp_is_the_papers_graph(self):
        model = resolve_model({"mlp": {"hidden": [100, 100], "residual": True}}, 10)
        assert model.family == "mlp"
        assert [(n.name, n.sources) for n in model.graph.nodes] == [
            ("hidden0", ("input",)),
            ("branch1", ("hidden0",)),
            ("residual1", ("hidden0", "branch1")),
            ("logits", ("residual1",)),
        ]
        assert model.layers[1]["activation"].name == "relu" and model.layers[3]["activation"].name == "linear"

    def test_residual_mlp_with_dropout_drops_each_branch(self):
        model = resolve_model({"mlp": {"hidden": [8, 8], "residual": True}}, 3, dropout=0.5)
        assert [layer.kind for layer in model.layers] == ["dense", "dropout", "dense", "dropout", "add", "dense"]
        assert model.graph.nodes[4].sources == ("dropout0", "dropout1")

    def test_residual_widths_must_match(self):
        with pytest.raises(SpecError, match=r"model.mlp.hidden\[1\]: .*got 50 after 100"):
            resolve_model({"mlp": {"hidden": [100, 50], "residual": True}}, 10)

    def test_cnn_picks_conv2d_on_images_and_builds_blocks(self):
        raw = {"cnn": {"filters": [4, 8], "padding": "same", "batch_norm": True, "pool": "max", "dense": [16]}}
        model = resolve_model(raw, 10, input_shape=(8, 8, 1), dropout=0.25)
        assert [layer.kind for layer in model.layers] == [
            "conv2d",
            "batch_norm",
            "activation",
            "max_pool2d",
            "conv2d",
            "batch_norm",
            "activation",
            "max_pool2d",
            "flatten",
            "dropout",
            "dense",
            "dropout",
            "dense",
        ]
        assert model.layers[0]["activation"].name == "linear" and model.layers[2]["activation"].name == "relu"
        assert [p.output_shape for p in model.plan((8, 8, 1))][-5:] == [(32,), (32,), (16,), (16,), (10,)]
        assert resolve_model({"cnn": {"filters": [4]}}, 10).layers[0].kind == "conv1d"  # no input shape: 1-D

    def test_cnn_per_layer_lists_must_have_one_value_per_layer(self):
        with pytest.raises(
            SpecError, match=r"model.cnn.kernel_size: a list gives one value per conv layer: expected 3 values, got 2"
        ):
            resolve_model({"cnn": {"filters": [2, 2, 2], "kernel_size": [3, 3]}}, 10)

    def test_lenet5_on_digits_and_on_mnist_sized_images(self):
        model = resolve_model({"lenet5": {}}, 10, input_shape=(8, 8, 1))
        assert [p.output_shape for p in model.plan((8, 8, 1))] == [
            (8, 8, 6),
            (4, 4, 6),
            (4, 4, 16),
            (2, 2, 16),
            (64,),
            (120,),
            (84,),
            (10,),
        ]
        classic = resolve_model({"lenet5": {"padding": "valid"}}, 10, input_shape=(28, 28, 1))
        # LeCun et al. 1998: C1 28x28x6, S2 14x14, C3 10x10x16, S4 5x5 -> 400 -> 120 -> 84 -> 10
        assert [p.output_shape for p in classic.plan((28, 28, 1))][:5] == [
            (28, 28, 6),
            (14, 14, 6),
            (10, 10, 16),
            (5, 5, 16),
            (400,),
        ]
        assert count(classic, (28, 28, 1)) == 156 + 2416 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10

    def test_rnn_stacks_return_sequences_below_the_top(self):
        model = resolve_model({"rnn": {"cell": "lstm", "units": 4, "depth": 3}}, 2)
        assert [layer["return_sequences"] for layer in model.layers[:3]] == [True, True, False]
        mean = resolve_model({"rnn": {"units": 4, "readout": "mean"}}, 2)
        assert [layer.kind for layer in mean.layers] == ["gru", "global_avg_pool", "dense"]
        with pytest.raises(SpecError, match=r"model.rnn: units must be given"):
            resolve_model({"rnn": {"cell": "gru"}}, 2)

    def test_transformer_expansion(self):
        model = resolve_model({"transformer": {"depth": 2, "heads": 2, "width": 8}}, 3, dropout=0.1)
        assert [layer.kind for layer in model.layers] == [
            "conv1d",
            "position_embedding",
            "transformer_encoder",
            "transformer_encoder",
            "layer_norm",
            "global_avg_pool",
            "dense",
        ]
        block = model.layers[2]
        assert (block["ffn_units"], block["dropout"], block["norm"]) == (32, 0.1, "pre")
        assert [p.output_shape for p in model.plan((40, 1))][-3:] == [(40, 8), (8,), (3,)]
        with pytest.raises(SpecError, match=r"model.transformer.heads: width 10 is not divisible by heads 4"):
            resolve_model({"transformer": {"heads": 4, "width": 10}}, 3)

    @pytest.mark.parametrize("family", ["cnn", "lenet5", "rnn", "transformer"], ids=str)
    def test_unknown_family_keys(self, family):
        with pytest.raises(SpecError, match=rf"model.{family}.widht: unknown key 'widht'"):
            resolve_model({family: {"widht": 3}}, 2)


class TestInitialWeights:
    def weights(self, layers, input_shape, initializer="he_normal", seed=0):
        plans = resolve_model({"layers": layers}, 3).plan(input_shape)
        return initial_weights(plans, resolve_component("initializer", initializer, "i"), seed)

    def test_constant_roles(self):
        weights = self.weights([{"batch_norm": {}}, {"layer_norm": {}}], (6,), "fan_in_uniform")
        assert (
            weights["0.batch_norm.gamma"].tolist() == [1.0] * 6 and weights["0.batch_norm.beta"].tolist() == [0.0] * 6
        )
        assert weights["0.batch_norm.moving_mean"].tolist() == [0.0] * 6
        assert weights["0.batch_norm.moving_variance"].tolist() == [1.0] * 6
        assert weights["1.layer_norm.gamma"].tolist() == [1.0] * 6 and not weights["1.layer_norm.beta"].any()

    def test_recurrent_kernel_is_orthogonal_and_kernel_follows_the_suite(self):
        weights = self.weights([{"lstm": {"units": 50}}], (10, 200), "he_normal")
        recurrent = weights["0.lstm.recurrent_kernel"].astype(np.float64)  # (50, 200): orthonormal rows
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(50), atol=1e-5)  # float32 storage
        kernel = weights["0.lstm.kernel"].ravel()  # (200, 200) he_normal: std sqrt(2/200)
        assert stats.kstest(kernel, stats.norm(0, np.sqrt(2 / 200)).cdf).pvalue > 1e-3
        assert not weights["0.lstm.bias"].any()

    def test_layer_initializers_override(self):
        weights = self.weights([{"gru": {"units": 4, "recurrent_initializer": {"name": "normal", "std": 0.5}}}], (3, 2))
        assert 0.2 < weights["0.gru.recurrent_kernel"].std() < 0.8
        table = self.weights([{"embedding": {"vocabulary": 1000, "dim": 20}}], (5,))["0.embedding.embeddings"]
        assert np.abs(table).max() <= 0.05 and stats.kstest(table.ravel(), stats.uniform(-0.05, 0.1).cdf).pvalue > 1e-3

    def test_kernel_initializer_gives_pytorchs_recurrent_default(self):
        """nn.GRU draws every tensor U(+-1/sqrt(units)): fan_in_uniform (biases) plus both kernel initializers."""
        limit = 1 / np.sqrt(100)
        uniform = {"name": "uniform", "limit": limit}
        layer = {"gru": {"units": 100, "kernel_initializer": uniform, "recurrent_initializer": uniform}}
        weights = self.weights([layer], (5, 3), "fan_in_uniform")
        for key in ("0.gru.kernel", "0.gru.recurrent_kernel", "0.gru.bias"):
            values = weights[key].ravel().astype(np.float64)
            assert stats.kstest(values, stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3, key
        # without it the input kernel (3, 300) follows the suite's rule, U(+-1/sqrt(3))
        default = self.weights([{"gru": {"units": 100}}], (5, 3), "fan_in_uniform")["0.gru.kernel"]
        assert np.abs(default).max() > 0.5

    def test_fan_in_uniform_biases_use_each_tensors_fan(self):
        conv = self.weights([{"conv1d": {"filters": 400, "kernel_size": 5}}], (9, 4), "fan_in_uniform")
        assert np.abs(conv["0.conv1d.bias"]).max() <= 1 / np.sqrt(20) and np.abs(
            conv["0.conv1d.bias"]
        ).max() > 0.9 / np.sqrt(20)
        rnn = self.weights([{"gru": {"units": 100}}], (5, 3), "fan_in_uniform")
        bias = rnn["0.gru.bias"]  # PyTorch's RNN rule: U(+-1/sqrt(units))
        assert bias.shape == (2, 300) and np.abs(bias).max() <= 0.1 and np.abs(bias).max() > 0.09

    def test_orthogonal_conv_kernel_is_orthogonal_as_a_matrix(self):
        kernel = self.weights([{"conv1d": {"filters": 8, "kernel_size": 3}}], (9, 4), "orthogonal")["0.conv1d.kernel"]
        matrix = kernel.reshape(12, 8).astype(np.float64)  # (k*in, out): orthonormal columns
        np.testing.assert_allclose(matrix.T @ matrix, np.eye(8), atol=1e-6)

    def test_every_tensor_is_float32_and_seeded(self):
        layers = [
            {"conv1d": {"filters": 4, "kernel_size": 3}},
            {"gru": {"units": 3, "bidirectional": True}},
            {"dense": {}},
        ]
        first, again, other = (self.weights(layers, (8, 2), seed=s) for s in (1, 1, 2))
        assert {w.dtype for w in first.values()} == {np.dtype(np.float32)}
        assert all(np.array_equal(first[k], again[k]) for k in first)
        assert not np.array_equal(first["1.gru.forward_kernel"], other["1.gru.forward_kernel"])
        assert not np.array_equal(first["1.gru.forward_kernel"], first["1.gru.backward_kernel"])


@pytest.mark.parametrize("kernel_initializer", [None, "he_uniform"], ids=["suites", "own"])
def test_layer_spec_hashable_and_equal_after_json(kernel_initializer):
    layer = resolve_layer(
        {"gru": {"units": 3, "recurrent_initializer": "he_uniform", "kernel_initializer": kernel_initializer}}, "x"
    )
    assert hash(layer) == hash(LayerSpec.from_dict(layer.to_dict())) and LayerSpec.from_dict(layer.to_dict()) == layer
    assert (layer["kernel_initializer"] is None) == (kernel_initializer is None)
