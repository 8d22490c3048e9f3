"""Grid expansion (harness.suite.grid): axes, labels, cartesian product, zip, exclude, applying cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.suites import BASE_SUITE, load_suite_text

from harness.errors import SpecError
from harness.suite import load_suite
from harness.suite.grid import (
    apply_cell,
    expand_grid,
    normalize_document,
    parse_axis_path,
    parse_grid,
    value_label,
)
from harness.suite.yaml_source import SuiteIssue


class TestLabels:
    @pytest.mark.parametrize(
        "value, label",
        [
            (0.1, "0.1"),
            (1e-05, "1e-05"),
            (32, "32"),
            (True, "true"),
            (None, "null"),
            ("relu", "relu"),
            ([64, 64], "[64, 64]"),
            ([], "[]"),
            ({"name": "adam", "lr": 0.001}, "adam"),
            ({"mlp": {"hidden": [8]}}, "{mlp: {hidden: [8]}}"),
        ],
        ids=["float", "small-float", "int", "bool", "null", "string", "list", "empty-list", "component", "mapping"],
    )
    def test_value_label(self, value, label):
        assert value_label(value) == label

    @pytest.mark.parametrize(
        "text, path",
        [
            ("optimizer", ("optimizer",)),
            ("optimizer.lr", ("optimizer", "lr")),
            ("model.mlp.hidden", ("model", "mlp", "hidden")),
            ("model.layers[0].dense.units", ("model", "layers", 0, "dense", "units")),
            ("model.layers.1.dense.units", ("model", "layers", 1, "dense", "units")),
        ],
        ids=["field", "component-param", "family", "bracket-index", "dotted-index"],
    )
    def test_parse_axis_path(self, text, path):
        assert parse_axis_path(text, ("grid", text)) == path

    @pytest.mark.parametrize(
        "text, fragment",
        [
            ("optimiser.lr", "Did you mean 'optimizer'?"),
            ("name", "'name' cannot be a grid axis"),
            ("model..mlp", "malformed path"),
        ],
        ids=["typo-root", "not-variable", "empty-segment"],
    )
    def test_parse_axis_path_errors(self, text, fragment):
        with pytest.raises(SuiteIssue, match=fragment):
            parse_axis_path(text, ("grid", text))


class TestExpansion:
    def test_no_grid_is_one_base_cell(self):
        (cell,) = expand_grid(parse_grid(None), None)
        assert cell.arm == "base" and cell.labels == () and cell.assignments == ()

    def test_cartesian_product_first_axis_slowest(self):
        axes = parse_grid({"optimizer": {"sgd": "sgd", "adam": "adam"}, "training.batch_size": [16, 32, 64]})
        cells = expand_grid(axes, None)
        assert len(cells) == 6
        assert [cell.arm for cell in cells] == [
            "sgd,batch_size=16",
            "sgd,batch_size=32",
            "sgd,batch_size=64",
            "adam,batch_size=16",
            "adam,batch_size=32",
            "adam,batch_size=64",
        ]
        assert cells[4].labels == (("optimizer", "adam"), ("training.batch_size", "32"))

    def test_single_axis_arm_is_the_bare_label(self):
        cells = expand_grid(parse_grid({"model.mlp.hidden": [[32], [64, 64]]}), None)
        assert [cell.arm for cell in cells] == ["[32]", "[64, 64]"]

    def test_list_of_components_is_labelled_by_name(self):
        cells = expand_grid(
            parse_grid({"optimizer": ["sgd", {"name": "adam", "lr": 0.01}], "loss": ["cross_entropy"]}), None
        )
        assert [cell.arm for cell in cells] == ["optimizer=sgd,loss=cross_entropy", "optimizer=adam,loss=cross_entropy"]

    def test_zip_is_one_axis_of_paired_values(self):
        axes = parse_grid(
            {"lr_batch": {"zip": {"optimizer.lr": [0.1, 0.01, 0.001], "training.batch_size": [32, 64, 128]}}}
        )
        assert len(axes) == 1 and axes[0].kind == "zip"
        cells = expand_grid(axes, None)
        assert [cell.arm for cell in cells] == [
            "lr=0.1,batch_size=32",
            "lr=0.01,batch_size=64",
            "lr=0.001,batch_size=128",
        ]
        assert [(a.target, a.value) for a in cells[1].assignments] == [
            (("optimizer", "lr"), 0.01),
            (("training", "batch_size"), 64),
        ]

    def test_zip_times_another_axis(self):
        axes = parse_grid(
            {"optimizer": {"sgd": "sgd", "adam": "adam"}, "lr_batch": {"zip": {"optimizer.lr": [0.1, 0.01, 0.001]}}}
        )
        assert len(expand_grid(axes, None)) == 6

    def test_exclude_removes_every_matching_cell(self):
        axes = parse_grid({"optimizer": {"sgd": "sgd", "adam": "adam"}, "training.batch_size": [16, 32, 64]})
        cells = expand_grid(axes, [{"optimizer": "adam", "training.batch_size": "32"}, {"training.batch_size": 64}])
        assert [cell.arm for cell in cells] == ["sgd,batch_size=16", "sgd,batch_size=32", "adam,batch_size=16"]

    def test_exclude_accepts_the_value_or_its_label(self):
        axes = parse_grid({"model.mlp.hidden": [[32], [64, 64]], "optimizer.lr": [0.1, 0.01]})
        as_label = expand_grid(axes, [{"model.mlp.hidden": "[32]", "optimizer.lr": "0.1"}])
        as_value = expand_grid(axes, [{"model.mlp.hidden": [32], "optimizer.lr": 0.1}])
        assert (
            [c.arm for c in as_label]
            == [c.arm for c in as_value]
            == ["hidden=[32],lr=0.01", "hidden=[64, 64],lr=0.1", "hidden=[64, 64],lr=0.01"]
        )

    @pytest.mark.parametrize(
        "grid, exclude, path, fragment",
        [
            (
                {"optimizer": ["sgd", "adam"]},
                [{"optimzer": "sgd"}],
                ("exclude", 0, "optimzer"),
                "Did you mean 'optimizer'?",
            ),
            (
                {"optimizer": ["sgd", "adam"]},
                [{"optimizer": "sdg"}],
                ("exclude", 0, "optimizer"),
                "Did you mean 'sgd'?",
            ),
            (
                {"optimizer": ["sgd", "adam"], "optimizer.lr": [0.1, 0.2]},
                [{"optimizer": "sgd"}, {"optimizer": "sgd", "optimizer.lr": 0.1}],
                ("exclude", 1),
                "matches no cell that is not already excluded",
            ),
            (
                {"optimizer": ["sgd", "adam"]},
                [{"optimizer": "sgd"}, {"optimizer": "adam"}],
                ("exclude",),
                "remove every cell",
            ),
            ({"optimizer": ["sgd", "adam"]}, [{}], ("exclude", 0), "expected a mapping of axis: label"),
            ({"optimizer": ["sgd", "adam"]}, ["sgd"], ("exclude", 0), "expected a mapping of axis: label"),
            (None, [{"optimizer": "sgd"}], ("exclude",), "no grid to exclude"),
        ],
        ids=["unknown-axis", "unknown-label", "redundant", "everything", "empty-entry", "not-mapping", "no-grid"],
    )
    def test_exclude_errors(self, grid, exclude, path, fragment):
        with pytest.raises(SuiteIssue, match=fragment) as raised:
            expand_grid(parse_grid(grid), exclude)
        assert raised.value.path == path

    @pytest.mark.parametrize(
        "grid, path, fragment",
        [
            ({"optimizer": []}, ("grid", "optimizer"), "the axis is empty"),
            ({"optimizer": {}}, ("grid", "optimizer"), "the axis is empty"),
            ({"optimizer": "adam"}, ("grid", "optimizer"), "expected a list of values"),
            ({"optimizer": ["sgd", {"name": "sgd", "lr": 0.5}]}, ("grid", "optimizer", 1), "duplicate label 'sgd'"),
            ({"optimizer.lr": [0.1, 0.1]}, ("grid", "optimizer.lr", 1), "duplicate label '0.1'"),
            (
                {"ab": {"zip": {"optimizer.lr": [0.1, 0.2], "training.epochs": [1]}}},
                ("grid", "ab", "zip"),
                "equal lengths",
            ),
            ({"ab": {"zip": {"optimizer.lr": []}}}, ("grid", "ab", "zip", "optimizer.lr"), "non-empty list"),
            (
                {"optimizer.lr": [0.1, 0.2], "ab": {"zip": {"optimizer.lr": [0.3, 0.4]}}},
                ("grid", "ab"),
                "both set optimizer.lr",
            ),
            ({"seeds": [1, 2]}, ("grid", "seeds"), "cannot be a grid axis"),
        ],
        ids=[
            "empty-list",
            "empty-mapping",
            "scalar",
            "duplicate-component-label",
            "duplicate-value-label",
            "zip-unequal",
            "zip-empty",
            "same-path-twice",
            "not-an-axis-field",
        ],
    )
    def test_axis_errors(self, grid, path, fragment):
        with pytest.raises(SuiteIssue, match=fragment) as raised:
            parse_grid(grid)
        assert raised.value.path == path


class TestApply:
    base = normalize_document(
        {
            "optimizer": "sgd",
            "training": {"epochs": 2, "batch_size": 16},
            "model": {"mlp": {"hidden": [8]}},
            "regularizer": {"clip_norm": 1.0},
        }
    )

    def cell_document(self, grid: dict, index: int = 0) -> dict:
        return apply_cell(self.base, expand_grid(parse_grid(grid), None)[index])[0]

    def test_component_string_is_normalized_so_a_param_path_applies(self):
        assert self.cell_document({"optimizer.lr": [0.5]})["optimizer"] == {"name": "sgd", "lr": 0.5}

    def test_training_variant_merges_over_the_base_block(self):
        assert self.cell_document({"training": {"long": {"epochs": 50}}})["training"] == {
            "epochs": 50,
            "batch_size": 16,
        }

    def test_regularizer_variant_merges_over_the_base_block(self):
        assert self.cell_document({"regularizer": {"l2": {"l2": 0.1}}})["regularizer"] == {"clip_norm": 1.0, "l2": 0.1}

    def test_component_variant_without_name_merges_with_name_replaces(self):
        grid = {"optimizer": {"fast": {"lr": 0.5}, "adam": {"name": "adam"}, "plain": "momentum"}}
        assert self.cell_document(grid, 0)["optimizer"] == {"name": "sgd", "lr": 0.5}
        assert self.cell_document(grid, 1)["optimizer"] == {"name": "adam"}
        assert self.cell_document(grid, 2)["optimizer"] == {"name": "momentum"}

    def test_shallow_axis_applies_before_deeper_one(self):
        # The deeper axis comes first in the grid but lands on top of the replaced optimizer.
        grid = {"optimizer.lr": [0.3], "optimizer": {"adam": {"name": "adam", "lr": 0.001}}}
        assert self.cell_document(grid)["optimizer"] == {"name": "adam", "lr": 0.3}

    def test_base_document_is_not_mutated(self):
        before = repr(self.base)
        self.cell_document({"training.epochs": [9], "model.mlp.hidden": [[1, 2]]})
        assert repr(self.base) == before

    def test_provenance_maps_document_paths_to_grid_paths(self):
        cell = expand_grid(parse_grid({"training": {"long": {"epochs": 50}}, "optimizer.lr": [0.5]}), None)[0]
        _, provenance = apply_cell(self.base, cell)
        assert set(provenance) == {
            (("training", "epochs"), ("grid", "training", "long", "epochs")),
            (("optimizer", "lr"), ("grid", "optimizer.lr", 0)),
        }

    @pytest.mark.parametrize(
        "grid, fragment",
        [
            ({"model.layers[0].dense.units": [4]}, "model has no key 'layers'. Its keys: mlp."),
            ({"model.mlp.hidden[3]": [4]}, "model.mlp.hidden is a list of 1 items, so 3 is not one of its indices"),
            ({"training.epochs.value": [4]}, "training.epochs is 2, not a mapping"),
            ({"dataset.name": ["iris"]}, "the suite's top level has no key 'dataset'"),
        ],
        ids=["missing-key", "index-out-of-range", "scalar-parent", "missing-field"],
    )
    def test_path_whose_parent_does_not_exist(self, grid, fragment):
        with pytest.raises(SuiteIssue) as raised:
            self.cell_document(grid)
        assert fragment in raised.value.message
        assert raised.value.path == ("grid", next(iter(grid)))


class TestThroughLoadSuite:
    """Grid behaviour as a user sees it: counts, arm names, values in the resolved specs."""

    def test_fixture_with_every_grid_feature(self):
        suite = load_suite(Path(__file__).parent / "suites" / "grid.yaml")
        assert suite.axes == ("optimizer", "model.mlp.hidden", "lr_batch")
        assert len(suite.arms) == 2 * 2 * 2 - 1  # cartesian minus one excluded cell
        assert "adam,hidden=[32, 32],epochs=5,batch_size=64" not in suite.arms
        assert len(suite.trials) == 7 * 2 * 2  # arms x backends x seeds
        by_arm = {trial.arm: trial.spec for trial in suite.trials}
        spec = by_arm["adam,hidden=[32, 32],epochs=3,batch_size=32"]
        assert spec.optimizer.name == "adam" and spec.optimizer["lr"] == 0.001
        assert [layer["units"] for layer in spec.model.layers] == [32, 32, 10]
        assert (spec.training.epochs, spec.training.batch_size) == (3, 32)
        assert spec.regularizer.l2 == 0.001  # from the base, untouched by the grid

    def test_path_into_an_explicit_layer_list(self, tmp_path):
        text = BASE_SUITE.replace("mlp: {hidden: [8]}", "layers: [{dense: {units: 8, activation: relu}}, {dense: {}}]")
        suite = load_suite_text(tmp_path, text + "grid:\n  model.layers[0].dense.units: [4, 16]\n")
        assert suite.arms == ("4", "16")
        assert [[layer["units"] for layer in t.spec.model.layers] for t in suite.trials] == [[4, 10], [16, 10]]

    def test_grid_may_provide_a_required_field_whole(self, tmp_path):
        text = (
            BASE_SUITE.replace("optimizer: {name: sgd, lr: 0.1}\n", "") + "grid:\n  optimizer: {sgd: sgd, adam: adam}\n"
        )
        assert [t.spec.optimizer.name for t in load_suite_text(tmp_path, text).trials] == ["sgd", "adam"]

    def test_mlp_path_on_a_layers_model_names_the_existing_keys(self, tmp_path):
        text = BASE_SUITE.replace("mlp: {hidden: [8]}", "layers: [{dense: {units: 8}}, {dense: {}}]")
        with pytest.raises(SpecError) as raised:
            load_suite_text(tmp_path, text + "grid:\n  model.mlp.hidden: [[32], [64]]\n")
        assert str(raised.value).startswith(
            f"{tmp_path / 'suite.yaml'}:10: grid.model.mlp.hidden: the path model.mlp.hidden"
        )
        assert "model has no key 'mlp'. Its keys: layers." in str(raised.value)

    def test_zip_of_a_whole_field_provides_it_but_a_zip_named_like_a_field_does_not(self, tmp_path):
        text = BASE_SUITE.replace("optimizer: {name: sgd, lr: 0.1}\n", "")
        suite = load_suite_text(
            tmp_path, text + "grid:\n  opt:\n    zip:\n      optimizer: [sgd, adam]\n      optimizer.lr: [0.5, 0.05]\n"
        )
        assert suite.arms == ("optimizer=sgd,lr=0.5", "optimizer=adam,lr=0.05")
        assert [t.spec.optimizer.to_dict() for t in suite.trials] == [
            {"name": "sgd", "lr": 0.5},
            {"name": "adam", "lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08},
        ]
        with pytest.raises(SpecError, match="missing required key 'optimizer'"):
            load_suite_text(tmp_path, text + "grid:\n  optimizer:\n    zip:\n      training.epochs: [1, 2]\n")

    def test_yaml_anchors_and_merge_keys_in_variants(self, tmp_path):
        text = BASE_SUITE.replace("training: {epochs", "training: &budget {epochs")
        suite = load_suite_text(
            tmp_path, text + "grid:\n  training:\n    short: *budget\n    long:\n      <<: *budget\n      epochs: 9\n"
        )
        assert [(t.arm, t.spec.training.epochs, t.spec.training.batch_size) for t in suite.trials] == [
            ("short", 2, 16),
            ("long", 9, 16),
        ]
