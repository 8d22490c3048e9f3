"""harness.data: registry and resolution, fixed splits, scaling, sources, the disk cache, errors."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.data import (
    DATASETS,
    TASKS,
    clear_cache,
    dataset_info,
    list_datasets,
    load_dataset,
    resolve_dataset,
    sources,
)
from harness.data.splits import held_out_count, split_indices, stratified_counts
from harness.errors import DatasetError, HarnessError, SpecError
from harness.spec.types import DatasetSpec

REPOSITORY = Path(__file__).resolve().parents[1]

# (train rows, test rows) with default options and no validation: the fixed splits.
SPLIT_SIZES = {
    "mnist1d": (4000, 1000),  # the generator's own split
    "digits": (1347, 450),  # 1797 rows, ceil(0.25 * 1797) = 450 held out
    "breast_cancer": (426, 143),
    "iris": (112, 38),
    "wine": (133, 45),
    "diabetes": (331, 111),
    "spirals": (750, 250),
    "teacher_student": (750, 250),
    "symbol_sequences": (1500, 500),
}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Point the disk cache at a fresh directory: tests neither read nor pollute ~/.cache/harness."""
    previous = os.environ.get(sources.CACHE_ENVIRONMENT_VARIABLE)
    directory = tmp_path_factory.mktemp("harness-cache")
    os.environ[sources.CACHE_ENVIRONMENT_VARIABLE] = str(directory)
    clear_cache()
    yield directory
    clear_cache()
    if previous is None:
        del os.environ[sources.CACHE_ENVIRONMENT_VARIABLE]
    else:
        os.environ[sources.CACHE_ENVIRONMENT_VARIABLE] = previous


@pytest.fixture(scope="module")
def mnist1d_reference() -> dict[str, np.ndarray]:
    """MNIST-1D straight from the package's generator, as its authors publish it."""
    import mnist1d.data

    return mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())


def load(raw) -> object:
    return load_dataset(resolve_dataset(raw))


def option_combinations() -> list[tuple[str, dict]]:
    """Every choice/bool option combination of every dataset, plus each numeric option moved off its default."""
    alternative = {
        "n_samples": 101,
        "noise": 0.0,
        "turns": 3.0,
        "n_features": 3,
        "teacher_hidden": 5,
        "n_targets": 2,
        "num_symbols": 3,
        "max_length": 2,
        "timesteps": 40,
        "features": 3,
    }
    cases = []
    for name, definition in DATASETS.items():
        discrete = {key: option for key, option in definition.options.items() if option.kind in ("choice", "bool")}
        values = [option.choices if option.kind == "choice" else (False, True) for option in discrete.values()]
        for combination in itertools.product(*values):
            cases.append((name, dict(zip(discrete, combination))))
        for key, option in definition.options.items():
            if option.kind in ("int", "float"):
                cases.append((name, {key: alternative[key]}))
    return cases


COMBINATIONS = option_combinations()


class TestRegistry:
    @pytest.mark.parametrize("name", sorted(DATASETS), ids=str)
    def test_shapes_dtypes_and_task(self, name):
        data = load(name)
        info = data.info
        assert info == dataset_info(resolve_dataset(name)) and info.task in TASKS and info.description
        train_rows, test_rows = SPLIT_SIZES[name]
        assert (len(data.x_train), len(data.x_validation), len(data.x_test)) == (train_rows, 0, test_rows)
        for split in ("train", "validation", "test"):
            x, y = data.split(split)
            assert x.dtype == np.float32 and x.shape[1:] == info.input_shape and len(x) == len(y)
            if info.task == "regression":
                assert y.dtype == np.float32 and y.shape[1:] == (info.num_outputs,)
            elif info.task == "sequence":  # label strings padded with 0 (the ctc blank)
                assert y.dtype == np.int64 and y.shape[1:] == (info.target_length,)
            else:
                assert y.dtype == np.int64 and y.ndim == 1
            assert np.isfinite(x).all()
        if info.task == "classification":
            assert info.num_outputs == info.num_classes
            assert set(np.unique(data.y_train)) == set(range(info.num_classes))
        elif info.task == "binary":
            assert info.num_outputs == 1 and info.num_classes == 2 and set(np.unique(data.y_train)) == {0, 1}
        elif info.task == "sequence":
            assert info.num_outputs == info.num_classes
            assert set(np.unique(data.y_train)) == set(range(info.num_classes))  # 0 (padding) and every symbol
        else:
            assert info.num_classes is None

    def test_list_datasets_gives_every_dataset_with_defaults(self):
        listed = list_datasets()
        assert [info.name for info in listed] == list(DATASETS)
        assert listed[0].input_shape == (40,) and all(info.description for info in listed)

    @pytest.mark.parametrize(
        "name, options",
        COMBINATIONS,
        ids=[f"{name}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for name, o in COMBINATIONS],
    )
    def test_static_info_agrees_with_loaded_data(self, name, options):
        spec = resolve_dataset({"name": name, **options})
        info = dataset_info(spec)  # static: nothing generated
        data = load_dataset(spec)
        assert data.info == info
        assert data.x_train.shape[1:] == info.input_shape and data.x_test.shape[1:] == info.input_shape
        assert len(data.x_train) == DATASETS[name].num_train(dict(spec.options))
        if info.task == "regression":
            assert data.y_train.shape[1] == info.num_outputs
        else:
            assert data.y_train.min() >= 0 and data.y_train.max() < info.num_classes

    def test_resolution_is_canonical_and_fills_every_default(self):
        by_name = resolve_dataset("spirals")
        assert by_name == resolve_dataset({"name": "spirals"}) == resolve_dataset(by_name.to_dict())
        assert dict(by_name.options) == {"n_samples": 1000, "noise": 0.2, "turns": 1.5, "scale": "standard"}
        assert DatasetSpec.from_dict(by_name.to_dict()) == by_name
        # integers given for float fields become floats, so the JSON (and hash) does not depend on spelling
        spelled = resolve_dataset({"name": "spirals", "validation": 0, "noise": 1})
        assert spelled.validation == 0.0 and isinstance(spelled.validation, float)
        assert spelled == resolve_dataset({"name": "spirals", "validation": 0.0, "noise": 1.0})
        assert isinstance(dict(spelled.options)["noise"], float)

    def test_unresolved_spec_loads_the_same_cached_dataset(self):
        assert load_dataset(DatasetSpec("wine")) is load_dataset(resolve_dataset("wine"))
        assert dataset_info(DatasetSpec("digits", options=(("shape", "image"),))).input_shape == (8, 8, 1)

    def test_loaded_arrays_are_read_only(self):
        data = load("iris")
        with pytest.raises(ValueError, match="read-only"):
            data.x_train[0, 0] = 1.0


class TestSplits:
    @pytest.mark.parametrize("name", ["digits", "breast_cancer", "iris", "spirals", "teacher_student"], ids=str)
    def test_splits_are_fixed_whatever_the_global_random_state(self, name):
        spec = resolve_dataset({"name": name, "validation": 0.2})
        np.random.seed(1)
        first = load_dataset(spec)
        clear_cache()
        np.random.seed(2)  # a trial, a framework or a user may reseed the global generator
        second = load_dataset(spec)
        assert first is not second
        for split in ("train", "validation", "test"):
            for a, b in zip(first.split(split), second.split(split)):
                np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine"], ids=str)
    def test_test_split_is_stratified(self, name):
        data = load({"name": name, "scale": "none"})
        labels = np.concatenate([data.y_train, data.y_test])
        expected = stratified_counts(labels, len(data.y_test))
        observed = np.bincount(data.y_test, minlength=len(expected))
        assert observed.tolist() == [expected[label] for label in sorted(expected)]
        # each class within one row of its exact proportional share
        shares = len(data.y_test) * np.bincount(labels) / len(labels)
        assert np.all(np.abs(observed - shares) < 1.0)

    @pytest.mark.parametrize(
        "name, train_samples, validation, expected_train, expected_validation",
        [
            ("digits", None, 0.1, 1212, 135),  # ceil(0.1 * 1347) = 135
            ("digits", 300, 0.2, 240, 60),
            ("breast_cancer", None, 0.25, 319, 107),  # ceil(0.25 * 426) = ceil(106.5)
            ("mnist1d", 1000, 0.1, 900, 100),
            ("iris", 50, 0.14, 43, 7),  # 0.14 * 50 = 7.000000000000001 in binary floating point: still 7
            ("wine", 133, 0.0, 133, 0),
        ],
        ids=["digits-val", "digits-300-val", "cancer-val", "mnist1d-1000-val", "iris-rounding", "wine-all"],
    )
    def test_train_samples_then_validation_arithmetic(
        self, name, train_samples, validation, expected_train, expected_validation
    ):
        spec = resolve_dataset(
            {"name": name, "train_samples": train_samples, "validation": validation, "scale": "none"}
        )
        data = load_dataset(spec)
        assert (len(data.y_train), len(data.y_validation)) == (expected_train, expected_validation)
        assert len(data.y_test) == SPLIT_SIZES[name][1]  # the test split never changes
        # train + validation are exactly the first N training rows of the full split, order kept
        full = load({"name": name, "scale": "none"})
        first_rows = full.x_train[: train_samples or len(full.x_train)]
        kept, held = split_indices(
            len(first_rows), validation, sources.VALIDATION_STREAM, labels=full.y_train[: len(first_rows)]
        )
        np.testing.assert_array_equal(data.x_train, first_rows[kept])
        np.testing.assert_array_equal(data.x_validation, first_rows[held])
        assert np.all(np.diff(kept) > 0) and np.all(np.diff(held) > 0)
        np.testing.assert_array_equal(data.x_test, full.x_test)

    def test_validation_is_stratified(self):
        data = load({"name": "digits", "validation": 0.2})
        counts = np.bincount(data.y_validation, minlength=10)
        shares = len(data.y_validation) * np.bincount(np.concatenate([data.y_train, data.y_validation])) / 1347
        assert np.all(np.abs(counts - shares) < 1.0)

    @pytest.mark.parametrize(
        "num_samples, fraction, expected",
        [(569, 0.25, 143), (1797, 0.25, 450), (25, 0.28, 7), (10, 0.0, 0), (7, 0.01, 1)],
        ids=["cancer", "digits", "float-rounding", "zero", "tiny-fraction"],
    )
    def test_held_out_count(self, num_samples, fraction, expected):
        assert held_out_count(num_samples, fraction) == expected


class TestScaling:
    def test_standardization_uses_training_statistics_only(self):
        data = load({"name": "digits", "validation": 0.2})
        raw = load({"name": "digits", "validation": 0.2, "scale": "none"})  # digits' raw values are integers 0..16
        mean = raw.x_train.astype(np.float64).mean(axis=0)
        std = raw.x_train.astype(np.float64).std(axis=0)
        std[std == 0] = 1.0  # features constant on the training rows stay unscaled
        for split in ("train", "validation", "test"):
            expected = ((raw.split(split)[0] - mean) / std).astype(np.float32)
            # float64 arithmetic then one cast to float32: identical up to float32 rounding (rtol 2 ulp)
            np.testing.assert_allclose(data.split(split)[0], expected, rtol=2.4e-7, atol=1e-12)
        # train mean 0 (float32 sum error ~1e-7), validation and test means are not
        assert np.abs(data.x_train.mean(axis=0, dtype=np.float64)).max() < 1e-6
        assert np.abs(data.x_validation.mean(axis=0, dtype=np.float64)).max() > 1e-2
        assert np.abs(data.x_test.mean(axis=0, dtype=np.float64)).max() > 1e-2

    def test_minmax_and_unit_scaling(self):
        unit = load({"name": "digits", "scale": "unit"})
        raw = load({"name": "digits", "scale": "none"})
        np.testing.assert_array_equal(unit.x_train, raw.x_train / np.float32(16))  # Deep Learning from Scratch: X/16
        assert unit.x_train.max() == 1.0 and unit.x_train.min() == 0.0
        minmax = load({"name": "wine", "scale": "minmax"})
        np.testing.assert_allclose(minmax.x_train.min(axis=0), 0.0, atol=1e-7)
        np.testing.assert_allclose(minmax.x_train.max(axis=0), 1.0, rtol=1.2e-7)
        assert minmax.x_test.min() < 0.0 or minmax.x_test.max() > 1.0  # test rows outside the training range

    def test_regression_targets_standardized_with_training_statistics(self):
        scaled = load("diabetes")
        raw = load({"name": "diabetes", "scale_target": False})
        assert abs(float(scaled.y_train.mean())) < 1e-6 and abs(float(scaled.y_train.std()) - 1.0) < 1e-6
        # raw targets are integer disease-progression scores 25..346 (sklearn loaded unscaled)
        assert np.all(raw.y_test == np.round(raw.y_test)) and raw.y_train.min() >= 25 and raw.y_train.max() <= 346
        mean, std = raw.y_train.astype(np.float64).mean(), raw.y_train.astype(np.float64).std()
        np.testing.assert_allclose(scaled.y_test, (raw.y_test - mean) / std, rtol=1e-6)


class TestSources:
    def test_mnist1d_matches_make_dataset_exactly(self, mnist1d_reference):
        data = load("mnist1d")
        np.testing.assert_array_equal(data.x_train, mnist1d_reference["x"].astype(np.float32))
        np.testing.assert_array_equal(data.y_train, mnist1d_reference["y"])
        np.testing.assert_array_equal(data.x_test, mnist1d_reference["x_test"].astype(np.float32))
        np.testing.assert_array_equal(data.y_test, mnist1d_reference["y_test"])
        sequence = load({"name": "mnist1d", "shape": "sequence"})
        np.testing.assert_array_equal(sequence.x_train, data.x_train[:, :, None])

    def test_mnist1d_permute_moves_positions_identically_in_train_and_test(self):
        plain, permuted = load("mnist1d"), load({"name": "mnist1d", "permute": True})
        np.testing.assert_array_equal(permuted.y_train, plain.y_train)
        np.testing.assert_array_equal(permuted.y_test, plain.y_test)
        mappings = []
        for x_plain, x_permuted in ((plain.x_train, permuted.x_train), (plain.x_test, permuted.x_test)):
            # for each permuted column, the original column it equals (found from the data, not the code)
            equal = (x_permuted[:, :, None] == x_plain[:, None, :]).all(axis=0)  # (40 permuted, 40 original)
            assert equal.sum(axis=1).tolist() == [1] * 40
            mappings.append(equal.argmax(axis=1))
        np.testing.assert_array_equal(mappings[0], mappings[1])
        assert sorted(mappings[0]) == list(range(40)) and (mappings[0] != np.arange(40)).sum() > 30
        np.testing.assert_array_equal(mappings[0], sources.mnist1d_permutation())

    def test_disk_cache_is_bit_identical_and_restores_global_random_state(
        self, tmp_path, monkeypatch, mnist1d_reference
    ):
        monkeypatch.setenv(sources.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
        np.random.seed(7)
        generated = sources.mnist1d_arrays()  # miss: generates and writes
        after_generation = np.random.random()
        np.random.seed(7)
        assert after_generation == np.random.random()  # make_dataset's np.random.seed(42) was undone
        (stored,) = (tmp_path / "datasets").glob("mnist1d-*.npz")
        stored_before = stored.stat().st_mtime_ns
        cached = sources.mnist1d_arrays()  # hit: read back
        assert stored.stat().st_mtime_ns == stored_before and not list(stored.parent.glob("*.tmp"))
        for name in ("x", "y", "x_test", "y_test"):
            for arrays in (generated, cached):
                assert arrays[name].dtype == mnist1d_reference[name].dtype
                np.testing.assert_array_equal(arrays[name], mnist1d_reference[name])

    def test_corrupt_cache_file_is_regenerated(self, tmp_path):
        path = tmp_path / "datasets" / "thing.npz"
        path.parent.mkdir()
        path.write_bytes(b"not a zip file")
        calls = []

        def produce():
            calls.append(1)
            return {"x": np.arange(6.0).reshape(2, 3)}

        first = sources.cached_arrays(path, produce)
        second = sources.cached_arrays(path, produce)
        assert len(calls) == 1  # the corrupt file was replaced, then read
        np.testing.assert_array_equal(first["x"], second["x"])

    def test_import_is_light_and_a_warm_cache_imports_no_loader(self, private_cache):
        load("mnist1d"), load("digits")  # warm the module's cache directory
        script = (
            "import sys\n"
            "import harness.data as data\n"
            "heavy = ('sklearn', 'mnist1d', 'matplotlib', 'torch', 'tensorflow', 'keras')\n"
            "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
            "data.load_dataset(data.resolve_dataset('mnist1d')); data.load_dataset(data.resolve_dataset('digits'))\n"
            "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        )
        environment = {**os.environ, sources.CACHE_ENVIRONMENT_VARIABLE: str(private_cache)}
        completed = subprocess.run(
            [sys.executable, "-c", script], cwd=REPOSITORY, env=environment, capture_output=True, text=True
        )
        assert completed.returncode == 0, completed.stderr

    def test_spirals_lie_on_their_arms_without_noise(self):
        arrays = sources.make_spirals(400, noise=0.0, turns=1.5)
        assert np.bincount(arrays["y"]).tolist() == [200, 200]
        x = np.where(arrays["y"][:, None] == 0, arrays["x"], -arrays["x"])  # reflect class 1 onto class 0's arm
        radius, angle = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
        # on the arm, radius * pi is the angle up to whole turns (float64 trig: 1e-9 is generous)
        phase = np.mod(radius * np.pi - angle, 2 * np.pi)
        assert np.all(np.minimum(phase, 2 * np.pi - phase) < 1e-9)
        assert radius.max() <= 3.0  # 1.5 turns => radius up to 1.5 * 2 = 3

    def test_teacher_is_fixed_and_rows_do_not_depend_on_n_samples(self):
        small = sources.make_teacher_student(50, n_features=4, teacher_hidden=8, n_targets=2, noise=0.1)
        large = sources.make_teacher_student(2000, n_features=4, teacher_hidden=8, n_targets=2, noise=0.1)
        np.testing.assert_array_equal(small["x"], large["x"][:50])
        np.testing.assert_array_equal(small["y"], large["y"][:50])
        clean = sources.make_teacher_student(2000, n_features=4, teacher_hidden=8, n_targets=2, noise=0.0)
        residual = large["y"] - clean["y"]
        # residual is exactly 0.1 * N(0, 1) draws: its std is 0.1 within sampling error (4000 draws: ~1.1%, allow 5%)
        assert abs(residual.std() - 0.1) < 0.005 and clean["y"].std() > 0.2


BAD_INPUTS = [
    ("mnist1", SpecError, ["dataset", "Did you mean 'mnist1d'?", "Expected one of"]),
    ({"name": "mnist_1d"}, SpecError, ["dataset.name", "Did you mean 'mnist1d'?"]),
    (
        {"name": "digits", "scal": "unit"},
        DatasetError,
        [
            "dataset.scal: ",
            "no option 'scal'",
            "Did you mean 'scale'?",
            "validation, train_samples, resplit, scale, shape",
        ],
    ),
    ({"name": "digits", "validation": 1.0}, DatasetError, ["dataset.validation", "[0, 1)", "0 for no validation"]),
    ({"name": "digits", "validation": -0.1}, DatasetError, ["dataset.validation", "[0, 1)"]),
    ({"name": "digits", "validation": "0.1"}, DatasetError, ["dataset.validation", "'0.1'"]),
    ({"name": "digits", "validation": True}, DatasetError, ["dataset.validation"]),
    ({"name": "digits", "train_samples": 5000}, DatasetError, ["dataset.train_samples", "from 1 to 1347", "Lower it"]),
    ({"name": "digits", "train_samples": 0}, DatasetError, ["dataset.train_samples", "got 0"]),
    ({"name": "digits", "train_samples": 1.5}, DatasetError, ["dataset.train_samples", "integer"]),
    ({"name": "spirals", "n_samples": 100, "train_samples": 80}, DatasetError, ["from 1 to 75"]),
    (
        {"name": "iris", "train_samples": 1, "validation": 0.5},
        DatasetError,
        ["dataset.validation", "no row to train on"],
    ),
    ({"name": "digits", "scale": "unitt"}, DatasetError, ["dataset.scale", "Did you mean 'unit'?", "'standard'"]),
    ({"name": "mnist1d", "permute": "yes"}, DatasetError, ["dataset.permute", "true or false", "'yes'"]),
    ({"name": "mnist1d", "scale": "unit"}, DatasetError, ["dataset.scale", "one of 'none', 'standard'"]),
    ({"name": "spirals", "n_samples": 3}, DatasetError, ["dataset.n_samples", "an integer >= 8", "Default: 1000"]),
    ({"name": "spirals", "noise": -1}, DatasetError, ["dataset.noise", ">= 0"]),
    ({"name": "spirals", "turns": 0}, DatasetError, ["dataset.turns", "> 0"]),
    ({"name": "spirals", "noise": float("nan")}, DatasetError, ["dataset.noise"]),
    ({"validation": 0.1}, DatasetError, ["needs a 'name' key"]),
    (42, DatasetError, ["expected a dataset name"]),
]


@pytest.mark.parametrize(
    "raw, error_type, fragments",
    BAD_INPUTS,
    ids=[
        "unknown",
        "unknown-mapping",
        "unknown-option",
        "validation-1",
        "validation-negative",
        "validation-string",
        "validation-bool",
        "train-too-many",
        "train-zero",
        "train-float",
        "train-vs-n_samples",
        "nothing-left",
        "bad-choice",
        "bad-bool",
        "choice-other-dataset",
        "int-minimum",
        "float-minimum",
        "float-exclusive",
        "float-nan",
        "no-name",
        "not-a-mapping",
    ],
)
def test_bad_input_raises_a_harness_error_naming_key_and_fix(raw, error_type, fragments):
    with pytest.raises(error_type) as caught:
        resolve_dataset(raw)
    assert isinstance(caught.value, HarnessError)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_error_names_the_callers_location():
    with pytest.raises(DatasetError, match=r"^suites/x\.yaml: data\.validation: "):
        resolve_dataset({"name": "iris", "validation": 2}, where="suites/x.yaml: data")
