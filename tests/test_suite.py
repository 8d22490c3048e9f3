"""Suite loading (harness.suite): the Suite and its trials, hashes, and every user error located to a line."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.suites import BASE_SUITE, load_suite_text, write_suite

from harness.errors import BackendError, DatasetError, HarnessError, SpecError
from harness.suite import load_suite

SUITES = Path(__file__).parent / "suites"
REPO = Path(__file__).parent.parent


def replace(old: str, new: str) -> str:
    assert old in BASE_SUITE, old
    return BASE_SUITE.replace(old, new)


class TestLoad:
    def test_minimal_suite_gets_every_default(self):
        suite = load_suite(SUITES / "minimal.yaml")
        assert (suite.name, suite.description, suite.arms, suite.axes) == ("minimal", "", ("base",), ())
        assert (suite.backends, suite.seeds) == (("torch",), (0,))
        assert (dict(suite.report), dict(suite.check), suite.expect) == ({}, {}, ())
        (trial,) = suite.trials
        assert (trial.suite, trial.arm, trial.cell) == ("minimal", "base", ())
        spec = trial.spec
        assert (spec.init_mode, spec.device, spec.backend, spec.seed) == ("shared", "cpu", "torch", 0)
        assert spec.regularizer.to_dict() == {
            "l1": 0.0,
            "l2": 0.0,
            "weight_decay": 0.0,
            "dropout": 0.0,
            "clip_norm": None,
            "clip_value": None,
        }
        assert spec.training.to_dict() == {
            "epochs": 2,
            "batch_size": 16,
            "shuffle": True,
            "drop_last": False,
            "max_seconds": None,
        }
        assert spec.optimizer.to_dict() == {"name": "sgd", "lr": 0.01}  # the canonical default, filled in
        assert [layer["units"] for layer in spec.model.layers] == [8, 3]  # iris: 3 classes

    def test_suite_fields_from_the_fixture(self):
        suite = load_suite(SUITES / "grid.yaml")
        assert suite.name == "grid-features" and suite.path == SUITES / "grid.yaml"
        assert suite.description.startswith("named variants")
        assert (suite.backends, suite.seeds) == (("torch", "keras"), (0, 7))
        assert dict(suite.report) == {"reference": "sgd,hidden=[16],epochs=3,batch_size=32"}
        assert suite.expect == ("`adam,hidden=[16],epochs=3,batch_size=32`.test_accuracy >= 0",)
        assert suite.document["grid"]["optimizer"]["adam"] == {"name": "adam", "lr": 0.001}  # the YAML as written

    def test_trials_are_cell_major_then_backend_then_seed(self):
        suite = load_suite(SUITES / "grid.yaml")
        order = [(trial.arm, trial.spec.backend, trial.spec.seed) for trial in suite.trials]
        expected = [(arm, backend, seed) for arm in suite.arms for backend in ("torch", "keras") for seed in (0, 7)]
        assert order == expected
        assert all(trial.suite == "grid-features" for trial in suite.trials)
        assert suite.trials[0].cell == (
            ("optimizer", "sgd"),
            ("model.mlp.hidden", "[16]"),
            ("lr_batch", "epochs=3,batch_size=32"),
        )

    def test_overrides_replace_backends_and_seeds(self, tmp_path):
        suite = load_suite_text(
            tmp_path, BASE_SUITE + "seeds: 5\nbackends: [torch, keras]\n", backends=["keras"], seeds=[3, 4]
        )
        assert (suite.backends, suite.seeds) == (("keras",), (3, 4))
        assert [(t.spec.backend, t.spec.seed) for t in suite.trials] == [("keras", 3), ("keras", 4)]
        assert load_suite_text(tmp_path, BASE_SUITE, seeds=3).seeds == (0, 1, 2)

    def test_explore_and_confirm_seeds(self, tmp_path):
        from harness.suite.load import select_phase

        suite = load_suite_text(tmp_path, BASE_SUITE + "seeds: {explore: 2, confirm: 3}\n")
        assert (suite.seeds, suite.explore_seeds, suite.confirm_seeds) == ((0, 1, 2, 3, 4), (0, 1), (2, 3, 4))
        assert suite.seed_roles() == "seeds 0-1 explore, 2-4 confirm"
        confirm = select_phase(suite, "confirm")
        assert confirm.seeds == (2, 3, 4) and [t.spec.seed for t in confirm.trials] == [2, 3, 4]
        assert select_phase(suite, "explore").seeds == (0, 1) and select_phase(suite, "all") is suite
        listed = load_suite_text(tmp_path, BASE_SUITE + "seeds: {explore: [5, 0], confirm: [9, 7]}\n")
        assert (listed.seeds, listed.confirm_seeds) == ((5, 0, 9, 7), (9, 7))
        # --seeds replaces what runs; the declared sets stay (claims are still judged on them)
        overridden = load_suite_text(tmp_path, BASE_SUITE + "seeds: {explore: 2, confirm: 3}\n", seeds=1)
        assert (overridden.seeds, overridden.confirm_seeds) == ((0,), (2, 3, 4))
        plain = load_suite_text(tmp_path, BASE_SUITE + "seeds: [0, 1, 2]\n")
        assert (plain.seeds, plain.explore_seeds, plain.confirm_seeds) == ((0, 1, 2), (0, 1, 2), ())
        with pytest.raises(SpecError, match="has no confirmation seeds"):
            select_phase(plain, "confirm")

    @pytest.mark.parametrize(
        "seeds, message",
        [
            ("{explore: [0, 1], confirm: [1, 2]}", "seeds.confirm: seed 1 is both an explore and a confirm seed"),
            ("{explore: [0, 1]}", "seeds: missing key 'confirm'"),
            ("{explore: [], confirm: [2]}", "seeds.explore: expected a count > 0"),
            ("{explore: 2, confirm: 0}", "seeds.confirm: expected a count > 0"),
            ("{explore: [0, x], confirm: [3]}", "seeds.explore[1]: expected an integer >= 0 as a seed, got 'x'"),
            ("{explore: 2, confirm: [true]}", "seeds.confirm[0]: expected an integer >= 0 as a seed, got True"),
            ("{explor: 2, confirm: 2}", "seeds.explor: unknown key 'explor'. Did you mean 'explore'?"),
        ],
    )
    def test_bad_seed_sets_are_located_errors(self, tmp_path, seeds, message):
        with pytest.raises(SpecError, match=re.escape(message)):
            load_suite_text(tmp_path, BASE_SUITE + f"seeds: {seeds}\n")

    @pytest.mark.parametrize(
        "text, check",
        [
            (replace("lr: 0.1", "lr: 1e-3"), lambda spec: spec.optimizer["lr"] == 0.001),
            (replace("lr: 0.1", "lr: 5E-2"), lambda spec: spec.optimizer["lr"] == 0.05),
            (
                BASE_SUITE + "regularizer: {l2: 1}\n",
                lambda spec: spec.regularizer.l2 == 1.0 and isinstance(spec.regularizer.l2, float),
            ),
            (
                BASE_SUITE + "training_note: x\n".replace("training_note: x\n", "device: auto\ninit_mode: native\n"),
                lambda spec: (spec.device, spec.init_mode) == ("auto", "native"),
            ),
            (
                replace("dataset: mnist1d", "dataset: {name: breast_cancer, validation: 0.1}").replace(
                    "cross_entropy", "binary_cross_entropy"
                ),
                lambda spec: spec.model.layers[-1]["units"] == 1,
            ),
            (
                replace("dataset: mnist1d", "dataset: diabetes").replace("cross_entropy", "mse"),
                lambda spec: spec.loss.name == "mse" and spec.model.layers[-1]["units"] == 1,
            ),
            (
                BASE_SUITE + "regularizer: {dropout: 0.5}\n",
                lambda spec: [layer.kind for layer in spec.model.layers] == ["dense", "dropout", "dense"],
            ),
        ],
        ids=[
            "yaml12-float",
            "yaml12-float-upper",
            "int-becomes-float",
            "device-init-mode",
            "binary",
            "regression",
            "dropout-mlp",
        ],
    )
    def test_valid_variations(self, tmp_path, text, check):
        (trial,) = load_suite_text(tmp_path, text).trials
        assert check(trial.spec)


class TestHashes:
    def test_stable_across_two_loads(self):
        first = [trial.hash for trial in load_suite(SUITES / "grid.yaml").trials]
        second = [trial.hash for trial in load_suite(SUITES / "grid.yaml").trials]
        assert first == second and len(set(first)) == len(first)

    def test_every_trial_spec_round_trips_through_json(self):
        from harness.spec import TrialSpec

        for trial in load_suite(SUITES / "grid.yaml").trials:
            assert TrialSpec.from_dict(json.loads(trial.spec.to_json())).hash == trial.hash

    @pytest.mark.parametrize(
        "changed",
        [
            replace("lr: 0.1", "lr: 0.2"),
            replace("epochs: 2", "epochs: 3"),
            replace("dataset: mnist1d", "dataset: {name: mnist1d, validation: 0.1}"),
            replace("hidden: [8]", "hidden: [9]"),
            replace("he_normal", "xavier_uniform"),
            BASE_SUITE + "regularizer: {l2: 0.01}\n",
            BASE_SUITE + "init_mode: native\n",
            BASE_SUITE + "seeds: [1]\n",
            BASE_SUITE + "backends: [keras]\n",
        ],
        ids=["lr", "epochs", "validation", "width", "initializer", "l2", "init-mode", "seed", "backend"],
    )
    def test_changes_when_anything_that_matters_changes(self, tmp_path, changed):
        (reference,) = load_suite_text(tmp_path, BASE_SUITE).trials
        (trial,) = load_suite_text(tmp_path, changed).trials
        assert trial.hash != reference.hash

    @pytest.mark.parametrize(
        "same",
        [
            replace("name: t", "name: renamed\ndescription: only labels differ"),
            replace("optimizer: {name: sgd, lr: 0.1}", "optimizer:\n  lr: 0.1\n  name: sgd"),
            replace("dataset: mnist1d", "dataset: {name: mnist1d, validation: 0.0, shape: vector}"),
            BASE_SUITE + "regularizer: {l2: 0}\ndevice: cpu\n",
            BASE_SUITE + "report: {reference: x}\nexpect: [a claim]\n",
        ],
        ids=["suite-name", "key-order", "explicit-defaults", "explicit-zero", "report-blocks"],
    )
    def test_unchanged_by_labels_and_spelling(self, tmp_path, same):
        (reference,) = load_suite_text(tmp_path, BASE_SUITE).trials
        (trial,) = load_suite_text(tmp_path, same).trials
        assert trial.hash == reference.hash

    def test_unchanged_when_only_the_arm_label_changes(self, tmp_path):
        grid = "grid:\n  optimizer:\n    {}: {{name: sgd, lr: 0.5}}\n    adam: adam\n"
        before = load_suite_text(tmp_path, BASE_SUITE + grid.format("sgd"))
        after = load_suite_text(tmp_path, BASE_SUITE + grid.format("plain_sgd"))
        assert (before.arms, after.arms) == (("sgd", "adam"), ("plain_sgd", "adam"))
        assert [t.hash for t in before.trials] == [t.hash for t in after.trials]

    def test_a_grid_cell_equal_to_the_base_has_the_base_hash(self, tmp_path):
        (base,) = load_suite_text(tmp_path, BASE_SUITE).trials
        gridded = load_suite_text(tmp_path, BASE_SUITE + "grid:\n  optimizer.lr: [0.1, 0.3]\n")
        assert gridded.trials[0].hash == base.hash and gridded.trials[1].hash != base.hash


# (id, suite text, line, key path, fragments the message must contain, error class)
ERROR_CASES = [
    (
        "unknown-top-level-key",
        BASE_SUITE + "optimiser: adam\n",
        9,
        "optimiser",
        ["unknown key 'optimiser'", "Did you mean 'optimizer'?"],
        SpecError,
    ),
    ("duplicate-key", BASE_SUITE + "loss: mse\n", 9, "loss", ["given twice", "first at line 5"], SpecError),
    (
        "missing-required",
        replace("loss: cross_entropy\n", ""),
        1,
        "loss",
        ["missing required key 'loss'", "cross_entropy"],
        SpecError,
    ),
    ("name-type", replace("name: t", "name: 3"), 1, "name", ["got 3 (int)"], SpecError),
    ("name-parent", replace("name: t", "name: ../x"), 1, "name", ["got '../x'", "letters, digits, - and _"], SpecError),
    ("name-slash", replace("name: t", "name: a/b"), 1, "name", ["got 'a/b'"], SpecError),
    ("name-dash", replace("name: t", "name: -rf"), 1, "name", ["got '-rf'"], SpecError),
    ("description-type", BASE_SUITE + "description: [a]\n", 9, "description", ["got ['a'] (list)"], SpecError),
    (
        "training-type",
        replace("training: {epochs: 2, batch_size: 16}", "training: [2, 16]"),
        8,
        "training",
        ["expected a mapping"],
        SpecError,
    ),
    (
        "training-string-number",
        replace("epochs: 2", "epochs: '2'"),
        8,
        "training.epochs",
        ["got '2' (string)", "integer > 0"],
        SpecError,
    ),
    (
        "training-float-epochs",
        replace("epochs: 2", "epochs: 2.5"),
        8,
        "training.epochs",
        ["got 2.5 (float)"],
        SpecError,
    ),
    (
        "training-unknown-key",
        replace("epochs: 2", "epoch: 2"),
        8,
        "training.epoch",
        ["Did you mean 'epochs'?"],
        SpecError,
    ),
    (
        "training-shuffle-type",
        replace("batch_size: 16}", "batch_size: 16, shuffle: 1}"),
        8,
        "training.shuffle",
        ["true or false", "got 1 (int)"],
        SpecError,
    ),
    ("epochs-zero", replace("epochs: 2", "epochs: 0"), 8, "training.epochs", ["integer > 0", "got 0"], SpecError),
    ("epochs-negative", replace("epochs: 2", "epochs: -3"), 8, "training.epochs", ["got -3"], SpecError),
    (
        "batch-size-zero",
        replace("training: {epochs: 2, batch_size: 16}", "training:\n  epochs: 2\n  batch_size: 0"),
        10,
        "training.batch_size",
        ["got 0"],
        SpecError,
    ),
    (
        "max-seconds-negative",
        replace("batch_size: 16}", "batch_size: 16, max_seconds: -1}"),
        8,
        "training.max_seconds",
        ["got -1"],
        SpecError,
    ),
    ("lr-zero", replace("lr: 0.1", "lr: 0"), 6, "optimizer.lr", ["expected a number > 0, got 0"], SpecError),
    (
        "lr-negative-block",
        replace("optimizer: {name: sgd, lr: 0.1}", "optimizer:\n  name: sgd\n  lr: -0.1"),
        8,
        "optimizer.lr",
        ["got -0.1"],
        SpecError,
    ),
    ("lr-string", replace("lr: 0.1", "lr: fast"), 6, "optimizer.lr", ["got 'fast'"], SpecError),
    (
        "unknown-optimizer",
        replace("{name: sgd, lr: 0.1}", "adamm"),
        6,
        "optimizer",
        ["unknown optimizer 'adamm'", "Did you mean 'adam'?"],
        SpecError,
    ),
    (
        "unknown-initializer",
        replace("he_normal", "he_norml"),
        7,
        "initializer",
        ["Did you mean 'he_normal'?"],
        SpecError,
    ),
    (
        "unknown-loss",
        replace("loss: cross_entropy", "loss: crossentropy"),
        5,
        "loss",
        ["Did you mean 'cross_entropy'?"],
        SpecError,
    ),
    (
        "unknown-param",
        replace("lr: 0.1", "learning_rate: 0.1"),
        6,
        "optimizer.learning_rate",
        ["no parameter 'learning_rate'", "Its parameters: lr"],
        SpecError,
    ),
    (
        "unknown-param-block",
        replace("optimizer: {name: sgd, lr: 0.1}", "optimizer:\n  name: sgd\n  lr: 0.1\n  nesterov: true"),
        9,
        "optimizer.nesterov",
        ["no parameter 'nesterov'"],
        SpecError,
    ),
    (
        "unknown-mlp-key",
        replace("hidden: [8]", "hidden: [8], widths: [3]"),
        4,
        "model.mlp.widths",
        ["unknown key 'widths'"],
        SpecError,
    ),
    (
        "unknown-dataset-option",
        replace("dataset: mnist1d", "dataset:\n  name: mnist1d\n  permut: true"),
        4,
        "dataset.permut",
        ["no option 'permut'", "Did you mean 'permute'?"],
        DatasetError,
    ),
    (
        "unknown-activation",
        replace("hidden: [8]", "hidden: [8], activation: rleu"),
        4,
        "model.mlp.activation",
        ["Did you mean 'relu'?"],
        SpecError,
    ),
    (
        "regularizer-unknown-key",
        BASE_SUITE + "regularizer: {weight_decy: 0.1}\n",
        9,
        "regularizer.weight_decy",
        ["Did you mean 'weight_decay'?"],
        SpecError,
    ),
    (
        "regularizer-negative",
        BASE_SUITE + "regularizer:\n  l2: -0.1\n",
        10,
        "regularizer.l2",
        ["a number >= 0", "got -0.1"],
        SpecError,
    ),
    (
        "dropout-one",
        BASE_SUITE + "regularizer: {dropout: 1.0}\n",
        9,
        "regularizer.dropout",
        ["a rate in [0, 1)"],
        SpecError,
    ),
    (
        "dropout-with-layers",
        replace("mlp: {hidden: [8]}", "layers: [{dense: {units: 8}}, {dense: {}}]") + "regularizer: {dropout: 0.2}\n",
        9,
        "regularizer.dropout",
        ["explicit layer list", "model.layers"],
        SpecError,
    ),
    (
        "adamw-twice",
        replace("{name: sgd, lr: 0.1}", "adamw") + "regularizer: {weight_decay: 0.1}\n",
        9,
        "regularizer.weight_decay",
        ["set weight decay once"],
        SpecError,
    ),
    (
        "binary-loss-10-classes",
        replace("loss: cross_entropy", "loss: binary_cross_entropy"),
        5,
        "loss",
        ["needs a binary dataset", "10 classes", "Use loss: cross_entropy"],
        SpecError,
    ),
    (
        "mse-on-classification",
        replace("loss: cross_entropy", "loss: mse"),
        5,
        "loss",
        ["needs a regression dataset"],
        SpecError,
    ),
    (
        "cross-entropy-on-regression",
        replace("dataset: mnist1d", "dataset: diabetes"),
        5,
        "loss",
        ["Use loss: mse"],
        SpecError,
    ),
    (
        "output-width",
        replace("mlp: {hidden: [8]}", "layers: [{dense: {units: 8}}, {dense: {units: 5}}]"),
        3,
        "model",
        ["output shape is (5,)", "needs (10,)"],
        SpecError,
    ),
    (
        "mlp-output-width",
        replace("hidden: [8]", "hidden: [8], output_units: 3"),
        3,
        "model",
        ["output shape is (3,)"],
        SpecError,
    ),
    (
        "model-two-forms",
        replace("  mlp: {hidden: [8]}", "  mlp: {hidden: [8]}\n  layers: []"),
        3,
        "model",
        ["exactly one of"],
        SpecError,
    ),
    (
        "hidden-zero",
        replace("model:\n  mlp: {hidden: [8]}", "model:\n  mlp:\n    hidden:\n      - 8\n      - 0"),
        7,
        "model.mlp.hidden[1]",
        ["integer > 0"],
        SpecError,
    ),
    (
        "dataset-unknown",
        replace("dataset: mnist1d", "dataset: mnist2d"),
        2,
        "dataset",
        ["Did you mean 'mnist1d'?"],
        SpecError,
    ),
    (
        "dataset-option",
        replace("dataset: mnist1d", "dataset:\n  name: digits\n  scale: huge"),
        4,
        "dataset.scale",
        ["got 'huge'"],
        DatasetError,
    ),
    (
        "init-mode",
        BASE_SUITE + "init_mode: shard\n",
        9,
        "init_mode",
        ["shared, native", "Did you mean 'shared'?"],
        SpecError,
    ),
    ("device", BASE_SUITE + "device: gpu\n", 9, "device", ["cuda:N", "got 'gpu'"], SpecError),
    (
        "backend-unknown",
        BASE_SUITE + "backends: [torch, torhc]\n",
        9,
        "backends[1]",
        ["unknown backend 'torhc'", "Did you mean 'torch'?"],
        SpecError,
    ),
    ("backend-twice", BASE_SUITE + "backends: [torch, torch]\n", 9, "backends[1]", ["listed twice"], SpecError),
    ("backend-empty", BASE_SUITE + "backends: []\n", 9, "backends", ["non-empty list"], SpecError),
    ("seeds-zero", BASE_SUITE + "seeds: 0\n", 9, "seeds", ["a count > 0", "got 0"], SpecError),
    ("seeds-negative", BASE_SUITE + "seeds: -2\n", 9, "seeds", ["got -2"], SpecError),
    ("seeds-bool", BASE_SUITE + "seeds: true\n", 9, "seeds", ["got True (boolean)"], SpecError),
    ("seeds-float", BASE_SUITE + "seeds: 2.5\n", 9, "seeds", ["got 2.5"], SpecError),
    ("seeds-empty", BASE_SUITE + "seeds: []\n", 9, "seeds", ["got [] (list)"], SpecError),
    ("seeds-repeat", BASE_SUITE + "seeds: [0, 1, 0]\n", 9, "seeds", ["seed 0 is listed more than once"], SpecError),
    (
        "seeds-negative-item",
        BASE_SUITE + "seeds:\n  - 1\n  - -1\n",
        11,
        "seeds[1]",
        ["integer >= 0", "got -1"],
        SpecError,
    ),
    ("grid-type", BASE_SUITE + "grid: [optimizer]\n", 9, "grid", ["a mapping of axes"], SpecError),
    (
        "grid-empty-axis",
        BASE_SUITE + "grid:\n  optimizer: []\n",
        10,
        "grid.optimizer",
        ["the axis is empty"],
        SpecError,
    ),
    (
        "grid-bad-root",
        BASE_SUITE + "grid:\n  optimiser.lr: [0.1]\n",
        10,
        "grid.optimiser.lr",
        ["Did you mean 'optimizer'?"],
        SpecError,
    ),
    (
        "grid-missing-path",
        BASE_SUITE + "grid:\n  model.layers[0].dense.units: [4]\n",
        10,
        "grid.model.layers[0].dense.units",
        ["model has no key 'layers'", "Its keys: mlp"],
        SpecError,
    ),
    (
        "grid-variant-value",
        BASE_SUITE + "grid:\n  optimizer:\n    sgd: sgd\n    adam:\n      name: adam\n      lr: -1\n",
        14,
        "grid.optimizer.adam.lr",
        ["expected a number > 0, got -1", "[grid cell 'adam']"],
        SpecError,
    ),
    (
        "grid-list-value",
        BASE_SUITE + "grid:\n  optimizer.lr:\n    - 0.1\n    - -1\n",
        12,
        "grid.optimizer.lr[1]",
        ["got -1"],
        SpecError,
    ),
    (
        "grid-zip-value",
        BASE_SUITE + "grid:\n  ab:\n    zip:\n      optimizer.lr: [0.1, 0.2]\n      training.batch_size: [8, 0]\n",
        13,
        "grid.ab.zip.training.batch_size[1]",
        ["integer > 0", "[grid cell 'lr=0.2,batch_size=0']"],
        SpecError,
    ),
    (
        "grid-merged-training",
        BASE_SUITE + "grid:\n  training:\n    short: {epochs: 1}\n    bad: {epochs: 1, shuffle: maybe}\n",
        12,
        "grid.training.bad.shuffle",
        ["true or false"],
        SpecError,
    ),
    (
        "grid-unknown-param",
        BASE_SUITE + "grid:\n  optimizer.lrr: [0.1]\n",
        10,
        "grid.optimizer.lrr[0]",
        ["no parameter 'lrr'", "Did you mean 'lr'?"],
        SpecError,
    ),
    (
        "grid-dataset-breaks-loss",
        BASE_SUITE + "grid:\n  dataset: [mnist1d, diabetes]\n",
        5,
        "loss",
        ["[grid cell 'diabetes']", "Use loss: mse"],
        SpecError,
    ),
    (
        "grid-duplicate-label",
        BASE_SUITE + "grid:\n  optimizer:\n    - sgd\n    - {name: sgd, lr: 0.5}\n",
        12,
        "grid.optimizer[1]",
        ["duplicate label 'sgd'", "named variants"],
        SpecError,
    ),
    (
        "grid-duplicate-trial",
        BASE_SUITE + "grid:\n  optimizer:\n    a: {name: sgd, lr: 0.01}\n    b: sgd\n",
        9,
        "grid",
        ["cells 'a' and 'b' resolve to the same trial"],
        SpecError,
    ),
    (
        "exclude-unknown-axis",
        BASE_SUITE + "grid:\n  optimizer: [sgd, adam]\nexclude:\n  - {optimzer: sgd}\n",
        12,
        "exclude[0].optimzer",
        ["Did you mean 'optimizer'?"],
        SpecError,
    ),
    (
        "exclude-unknown-label",
        BASE_SUITE + "grid:\n  optimizer: [sgd, adam]\nexclude:\n  - optimizer: adma\n",
        12,
        "exclude[0].optimizer",
        ["no label 'adma'", "Did you mean 'adam'?", "Its labels: sgd, adam"],
        SpecError,
    ),
    (
        "exclude-matches-nothing",
        BASE_SUITE + "grid:\n  optimizer: [sgd, adam]\nexclude:\n  - optimizer: sgd\n  - optimizer: sgd\n",
        13,
        "exclude[1]",
        ["matches no cell"],
        SpecError,
    ),
    ("exclude-without-grid", BASE_SUITE + "exclude:\n  - optimizer: sgd\n", 9, "exclude", ["no grid"], SpecError),
    (
        "exclude-type",
        BASE_SUITE + "grid:\n  optimizer: [sgd, adam]\nexclude: {optimizer: sgd}\n",
        11,
        "exclude",
        ["a list of mappings"],
        SpecError,
    ),
    ("report-type", BASE_SUITE + "report: [reference]\n", 9, "report", ["a mapping of report options"], SpecError),
    ("check-type", BASE_SUITE + "check: 3\n", 9, "check", ["got 3 (int)"], SpecError),
    (
        "expect-item-type",
        BASE_SUITE + "expect:\n  - adam beats sgd\n  - 3\n",
        11,
        "expect[1]",
        ["a list of claim strings", "got 3 (int)"],
        SpecError,
    ),
]


class TestErrors:
    @pytest.mark.parametrize(
        "text, line, key_path, fragments, kind",
        [case[1:] for case in ERROR_CASES],
        ids=[case[0] for case in ERROR_CASES],
    )
    def test_error_names_file_line_key_path_and_fix(self, tmp_path, text, line, key_path, fragments, kind):
        path = write_suite(tmp_path, text)
        with pytest.raises(HarnessError) as raised:
            load_suite(path)
        message = str(raised.value)
        assert type(raised.value) is kind, message
        assert message.startswith(f"{path}:{line}: {key_path}"), message
        for fragment in fragments:
            assert fragment in message, message

    def test_file_not_found(self, tmp_path):
        with pytest.raises(SpecError, match=r"suite file not found") as raised:
            load_suite(tmp_path / "nope.yaml")
        assert str(raised.value).startswith(f"{tmp_path / 'nope.yaml'}: ")

    def test_folder_instead_of_file(self, tmp_path):
        with pytest.raises(SpecError, match="is a folder"):
            load_suite(tmp_path)

    @pytest.mark.parametrize(
        "text, line, fragment",
        [
            (BASE_SUITE + "grid: [a\n", 10, "started at line 9"),
            (BASE_SUITE + "  bad: indentation\n", 9, "malformed YAML"),
            ("name: t\ndataset: 'unclosed\n", 3, "malformed YAML"),
        ],
        ids=["unclosed-bracket", "bad-indentation", "unclosed-quote"],
    )
    def test_malformed_yaml_names_its_line(self, tmp_path, text, line, fragment):
        path = write_suite(tmp_path, text)
        with pytest.raises(SpecError) as raised:
            load_suite(path)
        assert str(raised.value).startswith(f"{path}:{line}: malformed YAML")
        assert fragment in str(raised.value)

    @pytest.mark.parametrize(
        "text, fragment",
        [
            ("", "the file is empty"),
            ("- a\n- b\n", "got ['a', 'b'] (list)"),
            ("just text\n", "got 'just text' (string)"),
        ],
        ids=["empty", "list", "scalar"],
    )
    def test_not_a_mapping(self, tmp_path, text, fragment):
        path = write_suite(tmp_path, text)
        with pytest.raises(SpecError) as raised:
            load_suite(path)
        assert str(raised.value).startswith(f"{path}:1: (top level): a suite is a YAML mapping")
        assert fragment in str(raised.value)

    @pytest.mark.skipif(
        importlib.util.find_spec("jax") is not None, reason="needs a backend whose framework is missing"
    )
    def test_backend_not_installed_names_the_extra(self, tmp_path):
        path = write_suite(tmp_path, BASE_SUITE + "backends: [torch, keras-jax]\n")
        with pytest.raises(BackendError) as raised:
            load_suite(path)
        assert str(raised.value).startswith(f"{path}:9: backends[1]: backend 'keras-jax' needs jax")
        assert 'pip install "harness[keras,jax]"' in str(raised.value)

    @pytest.mark.parametrize(
        "overrides, prefix, fragment",
        [
            ({"seeds": 0}, "--seeds: ", "a count > 0"),
            ({"seeds": [1, 1]}, "--seeds: ", "more than once"),
            ({"backends": ["nope"]}, "--backend[0]: ", "unknown backend 'nope'"),
            ({"backends": []}, "--backend: ", "non-empty list"),
        ],
        ids=["seeds-zero", "seeds-repeat", "backend-unknown", "backend-empty"],
    )
    def test_invalid_overrides_name_the_flag(self, tmp_path, overrides, prefix, fragment):
        with pytest.raises(SpecError) as raised:
            load_suite_text(tmp_path, BASE_SUITE, **overrides)
        assert str(raised.value).startswith(prefix) and fragment in str(raised.value)

    def test_every_error_is_a_spec_or_harness_error_subclass(self):
        # The CLI prints HarnessError without a traceback and exits 2: nothing else may escape.
        assert all(issubclass(case[-1], HarnessError) for case in ERROR_CASES)
        assert len({case[0] for case in ERROR_CASES}) == len(ERROR_CASES)


def test_loading_a_suite_imports_no_framework():
    code = (
        "import sys, json\n"
        "from harness.suite import load_suite\n"
        f"suite = load_suite({str(SUITES / 'grid.yaml')!r})\n"
        "print(json.dumps([len(suite.trials), sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [28, []]


def test_suite_is_frozen():
    suite = load_suite(SUITES / "minimal.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.name = "other"  # type: ignore[misc]


class TestReportReference:
    """`report.reference`: one arm by name, or a variant of one or more axes (each arm vs its own reference)."""

    @staticmethod
    def options(reference, path=SUITES / "grid.yaml"):
        from harness.analysis import check_report_options

        suite = load_suite(path)
        labels = {trial.arm: dict(trial.cell) for trial in suite.trials}
        return suite, check_report_options({"reference": reference}, suite.arms, arm_labels=labels)

    def test_a_string_names_one_arm_for_every_arm(self):
        suite, options = self.options("sgd,hidden=[16],epochs=3,batch_size=32")
        assert options.reference == "sgd,hidden=[16],epochs=3,batch_size=32" and not options.per_axis
        assert {options.reference_for(arm) for arm in suite.arms} == {"sgd,hidden=[16],epochs=3,batch_size=32"}
        assert options.describe_reference() == "sgd,hidden=[16],epochs=3,batch_size=32"

    def test_an_axis_variant_pairs_each_arm_with_the_arm_that_differs_only_there(self):
        suite, options = self.options({"optimizer": "sgd"})
        assert options.per_axis and options.describe_reference() == "optimizer=sgd"
        pairs = {arm: options.reference_for(arm) for arm in suite.arms}
        assert pairs["adam,hidden=[16],epochs=5,batch_size=64"] == "sgd,hidden=[16],epochs=5,batch_size=64"
        assert pairs["adam,hidden=[32, 32],epochs=3,batch_size=32"] == "sgd,hidden=[32, 32],epochs=3,batch_size=32"
        # The sgd arms are the references: each maps to itself and is not compared.
        assert all(pairs[arm] == arm for arm in suite.arms if arm.startswith("sgd,"))
        assert options.reference == pairs[suite.arms[0]] == suite.arms[0]

    def test_list_labels_may_be_written_as_yaml_lists_or_strings(self):
        _, as_list = self.options({"model.mlp.hidden": [16]})
        _, as_text = self.options({"model.mlp.hidden": "[16]"})
        assert as_list == as_text
        assert (
            as_list.reference_for("adam,hidden=[32, 32],epochs=3,batch_size=32")
            == "adam,hidden=[16],epochs=3,batch_size=32"
        )

    def test_naming_every_axis_names_one_arm(self):
        suite, options = self.options(
            {"optimizer": "sgd", "model.mlp.hidden": "[16]", "lr_batch": "epochs=3,batch_size=32"}
        )
        assert {options.reference_for(arm) for arm in suite.arms} == {"sgd,hidden=[16],epochs=3,batch_size=32"}

    @pytest.mark.parametrize(
        "reference, fragment",
        [
            (
                {"optimiser": "sgd"},
                "report.reference.optimiser: unknown grid axis 'optimiser'. Did you mean 'optimizer'?",
            ),
            (
                {"optimizer": "sgdd"},
                "report.reference.optimizer: axis 'optimizer' has no label 'sgdd'. Did you mean 'sgd'?",
            ),
            ({}, "report.reference: an empty mapping names no variant"),
            # grid.yaml excludes adam x [32, 32] x epochs=5: that sgd arm has no adam counterpart.
            ({"optimizer": "adam"}, "'sgd,hidden=[32, 32],epochs=5,batch_size=64' (needs {optimizer: adam, "),
            ("sgd", "report.reference: 'sgd' is not an arm of this suite."),
        ],
        ids=["unknown-axis", "unknown-label", "empty", "reference-cell-excluded", "string-not-an-arm"],
    )
    def test_bad_references_say_what_and_how_to_fix(self, reference, fragment):
        with pytest.raises(SpecError) as raised:
            self.options(reference)
        assert fragment in str(raised.value)
        assert "Fix:" in str(raised.value) or "Expected" in str(raised.value) or "Its labels" in str(raised.value)

    def test_a_grid_axis_reference_on_a_suite_without_grid_is_an_error(self):
        with pytest.raises(SpecError, match=r"report.reference: .* this suite has no grid"):
            self.options({"optimizer": "sgd"}, SUITES / "minimal.yaml")

    def test_report_errors_are_located_to_their_line(self, tmp_path):
        # report/expect/check are checked after loading (by the CLI); locate_message gives them file:line.
        from harness.analysis import check_report_options
        from harness.suite.yaml_source import locate_message

        text = (
            BASE_SUITE
            + "grid:\n  optimizer:\n    sgd: {name: sgd}\n    adam: {name: adam}\nreport:\n  reference: sgdd\n"
        )
        path = write_suite(tmp_path, text)
        suite = load_suite(path)
        with pytest.raises(SpecError) as raised:
            check_report_options(suite.report, suite.arms, where="report")
        located = locate_message(path, str(raised.value), type(raised.value))
        assert isinstance(located, SpecError)
        assert str(located).startswith(
            f"{path}:14: report.reference: 'sgdd' is not an arm of this suite. Did you mean 'sgd'?"
        )


class TestEveryErrorInOnePass:
    """Independent problems are all reported at once (each with its line); one problem keeps its own message."""

    def test_unknown_optimizer_bad_dataset_option_and_bad_training_value_in_one_error(self, tmp_path):
        from harness.suite.load import SuiteErrors

        text = (
            BASE_SUITE.replace("dataset: mnist1d", "dataset: {name: mnist1d, validation: 2.5}")
            .replace("{name: sgd, lr: 0.1}", "{name: adamm, lr: 0.1}")
            .replace("epochs: 2", "epochs: -3")
        )
        path = write_suite(tmp_path, text)
        with pytest.raises(SuiteErrors) as raised:
            load_suite(path)
        message = str(raised.value)
        assert message.startswith(f"{path}: 3 errors, each to fix:\n"), message
        lines = message.splitlines()[1:]
        assert lines[0].startswith(f"  {path}:2: dataset.validation: expected the fraction"), lines
        assert lines[1].startswith(f"  {path}:6: optimizer: unknown optimizer 'adamm'. Did you mean 'adam'?"), lines
        assert lines[2].startswith(f"  {path}:8: training.epochs: expected an integer > 0"), lines
        assert [type(error) for error in raised.value.errors] == [DatasetError, SpecError, SpecError]

    def test_each_bad_key_of_a_block_and_each_missing_key(self, tmp_path):
        text = BASE_SUITE.replace("initializer: he_normal\n", "").replace(
            "{epochs: 2, batch_size: 16}", "{epochs: 0, batch_size: x, shufle: true}"
        )
        text = text.replace("loss: cross_entropy\n", "") + "seeds: 0\n"
        with pytest.raises(SpecError) as raised:
            load_suite(write_suite(tmp_path, text))
        message = str(raised.value)
        for fragment in (
            "missing required key 'loss'",
            "missing required key 'initializer'",
            "training.shufle: unknown key 'shufle'. Did you mean 'shuffle'?",
            "training.epochs: expected an integer > 0",
            "training.batch_size: expected an integer > 0",
            "seeds: expected a count > 0",
        ):
            assert message.count(fragment) == 1, (fragment, message)
        assert message.splitlines()[0].endswith(": 6 errors, each to fix:")

    def test_a_base_problem_is_reported_once_however_many_cells_share_it(self, tmp_path):
        text = BASE_SUITE.replace("epochs: 2", "epochs: -1") + (
            "grid:\n  optimizer:\n    sgd: {name: sgd}\n    adam: {name: adam, lr: -2}\n    rmsprop: {name: rmsprop}\n"
        )
        with pytest.raises(SpecError) as raised:
            load_suite(write_suite(tmp_path, text))
        message = str(raised.value)
        assert message.count("training.epochs") == 1 and message.count("grid.optimizer.adam.lr") == 1, message
        assert "2 errors" in message

    def test_one_problem_keeps_its_single_message(self, tmp_path):
        path = write_suite(tmp_path, replace("{name: sgd, lr: 0.1}", "{name: sgd, lr: -1}"))
        with pytest.raises(SpecError) as raised:
            load_suite(path)
        assert type(raised.value) is SpecError
        assert str(raised.value).startswith(f"{path}:6: optimizer.lr: expected a number > 0")

    def test_the_cli_prints_every_error_and_exits_2(self, tmp_path):
        from click.testing import CliRunner

        from harness.cli import cli

        text = BASE_SUITE.replace("he_normal", "he_nromal").replace("batch_size: 16", "batch_size: 0")
        path = write_suite(tmp_path, text)
        result = CliRunner().invoke(cli, ["validate", str(path)])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"{path}:7: initializer: unknown initializer 'he_nromal'" in result.output
        assert f"{path}:8: training.batch_size: expected an integer > 0" in result.output


@pytest.mark.parametrize(
    "block, key",
    [
        ("report: {targets: {validation_accuracy: 0.5}}\n", "report.targets.validation_accuracy"),
        ("expect: ['base.at_best_validation_test_accuracy > 0.5']\n", "expect[0]"),
    ],
)
def test_a_validation_read_without_a_validation_split_is_refused_at_load(tmp_path, block, key):
    from harness.cli.common import load_checked_suite

    path = write_suite(tmp_path, BASE_SUITE + block)
    with pytest.raises(
        SpecError, match=re.escape(key) + ": reads a validation metric, and arm 'base' has no validation"
    ):
        load_checked_suite(path)
    with_split = write_suite(
        tmp_path, BASE_SUITE.replace("dataset: mnist1d", "dataset: {name: mnist1d, validation: 0.1}") + block
    )
    assert load_checked_suite(with_split).name == "t"
