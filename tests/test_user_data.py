"""The user's own data: every file format, image folders, plug-ins, the split and scaling rules, the
content hash, and every bad input (exit 2, a clear message, nothing written). Data is a few dozen rows."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.data import dataset_info, load_dataset, resolve_dataset, user_datasets, user_files
from harness.errors import DatasetError, SpecError


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def housing(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "rooms": rng.integers(1, 6, rows),
            "age": rng.normal(30, 10, rows),
            "district": np.array(["north", "south", "east"])[np.arange(rows) % 3],
        }
    )
    table["price"] = table.rooms * 10 + table.age * 0.5 + rng.normal(0, 1, rows)
    table["kind"] = np.where(table.price > table.price.median(), "big", "small")
    return table


def resolve(raw: dict[str, Any], folder: Path) -> Any:
    return resolve_dataset(raw, "dataset", folder)


def load(raw: dict[str, Any], folder: Path) -> Any:
    spec = resolve(raw, folder)
    return spec, load_dataset(spec)


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet"])
def test_tables_read_alike_in_every_format(tmp_path: Path, suffix: str) -> None:
    table = housing()
    path = tmp_path / f"h.{suffix}"
    if suffix == "parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False)
    raw = {"file": path.name, "target": "price", "features": ["rooms", "age", "district"], "categorical": ["district"]}
    spec, data = load(raw, tmp_path)
    assert data.info.task == "regression" and data.info.input_shape == (5,)  # rooms, age + 3 districts
    assert (len(data.y_train), len(data.y_validation), len(data.y_test)) == (32, 0, 8)
    assert dataset_info(spec) == data.info
    notes = user_datasets.take_notes()
    assert any("task regression (fractional targets" in note for note in notes)


def test_classification_labels_inferred_from_strings_and_stratified(tmp_path: Path) -> None:
    table = housing(rows=40)
    table.to_csv(tmp_path / "h.csv", index=False)
    raw = {"file": "h.csv", "target": "kind", "features": ["rooms", "age"], "split": {"test": 0.25, "validation": 0.25}}
    _spec, data = load(raw, tmp_path)
    assert data.info.task == "classification" and data.info.num_classes == 2
    for labels in (data.y_train, data.y_validation, data.y_test):
        assert np.bincount(labels).tolist()[0] == np.bincount(labels).tolist()[1]  # 20/20 classes: halves exactly
    assert any("classes big=0, small=1" in note for note in user_datasets.take_notes())


def test_keras_npz_keeps_image_shape_and_carves_validation_from_its_training_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (30, 6, 5), dtype=np.uint8),
        "y_train": np.arange(30) % 3,
        "x_test": rng.integers(0, 255, (9, 6, 5), dtype=np.uint8),
        "y_test": np.arange(9) % 3,
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    _spec, data = load({"file": "mnist.npz", "split": {"validation": 0.2}}, tmp_path)
    assert data.x_train.shape[1:] == (6, 5, 1) and data.info.num_classes == 3
    assert (len(data.y_train), len(data.y_validation), len(data.y_test)) == (24, 6, 9)
    # one channel: scaled to mean 0, std 1 over the 24 training rows alone; the test rows by the same map
    np.testing.assert_allclose([data.x_train.mean(), data.x_train.std()], [0, 1], atol=1e-5)
    slope, offset = np.polyfit(arrays["x_test"].ravel().astype(np.float64), data.x_test.ravel(), 1)
    np.testing.assert_allclose(data.x_test[..., 0], slope * arrays["x_test"] + offset, atol=1e-5)
    assert abs(data.x_validation.mean()) > 1e-3  # validation rows were not part of the fit


def test_npz_with_named_arrays_and_npy_with_a_target_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", inputs=rng.normal(size=(20, 3)), labels=np.arange(20) % 2)
    _spec, data = load({"file": "d.npz", "features": ["inputs"], "target": "labels"}, tmp_path)
    assert data.info.task == "binary" and data.info.input_shape == (3,)
    np.save(tmp_path / "d.npy", np.column_stack([rng.normal(size=(20, 3)), rng.normal(size=20)]))
    _spec, data = load({"file": "d.npy", "target": -1}, tmp_path)
    assert data.info.task == "regression" and data.info.input_shape == (3,)


def write_images(folder: Path, classes: dict[str, int], size: tuple[int, int] = (5, 4)) -> None:
    from PIL import Image

    for index, (name, count) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True)
        for number in range(count):
            pixels = np.full((*size, 3), 40 * index + number, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{number}.png")


def test_image_folder_read_with_pillow_and_cached(tmp_path: Path) -> None:
    write_images(tmp_path / "pics", {"cat": 4, "dog": 4, "fox": 4})
    raw = {"images": "pics", "size": [3, 2], "color": "grayscale", "standardize": False, "split": {"test": 0.25}}
    spec, data = load(raw, tmp_path)
    assert data.info.input_shape == (3, 2, 1) and data.info.num_classes == 3 and dict(spec.options)["label"] == "pics"
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(list((tmp_path / "cache" / "datasets").glob("images-*.npz"))) == 1  # the decoded arrays


def test_python_plugin_protocol(tmp_path: Path) -> None:
    (tmp_path / "my_data.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            def load_arrays(rows, width):
                x = np.arange(rows * width, dtype=float).reshape(rows, width)
                return {"x": x, "y": np.arange(rows) % 3, "task": "classification", "num_classes": 4}
            """
        )
    )
    _spec, data = load({"python": "my_data:load_arrays", "args": {"rows": 30, "width": 2}}, tmp_path)
    assert data.info.num_classes == 4 and data.info.input_shape == (2,)  # the plug-in's own class count
    assert any("importing my_data" in note for note in user_datasets.take_notes())
    sys.modules.pop("my_data", None)


# ---------------------------------------------------------------------------------------------
# Split and scaling rules: nothing of the held-out rows leaks into what is fitted
# ---------------------------------------------------------------------------------------------


def test_standardization_and_categories_are_fitted_on_training_rows_only(tmp_path: Path) -> None:
    table = housing(rows=12)
    table["part"] = ["train"] * 8 + ["validation"] * 2 + ["test"] * 2
    table.loc[10:, "district"] = "west"  # a category only the test rows have
    table.loc[10:, "age"] = 1000.0  # test outliers must not move the training statistics
    table.to_csv(tmp_path / "h.csv", index=False)
    raw = {"file": "h.csv", "target": "price", "features": ["age", "district"], "categorical": ["district"]}
    _spec, data = load({**raw, "split_column": "part"}, tmp_path)
    assert data.info.input_shape == (4,)  # age + the 3 districts of the training rows; no 'west'
    np.testing.assert_array_equal(data.x_test[:, 1:], 0)  # west: all zeros
    train_age = table.age[:8]
    np.testing.assert_allclose(data.x_train[:, 0].mean(), 0, atol=1e-6)
    expected = (1000.0 - train_age.mean()) / train_age.std(ddof=0)
    np.testing.assert_allclose(data.x_test[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(data.y_train.mean(), 0, atol=1e-6)  # the target too, on training rows
    assert any("'district': 2 validation/test rows have a category" in note for note in user_datasets.take_notes())


def test_split_seed_changes_the_rows_and_the_hash(tmp_path: Path) -> None:
    housing().to_csv(tmp_path / "h.csv", index=False)
    first = resolve({"file": "h.csv", "target": "price", "categorical": ["district", "kind"]}, tmp_path)
    second = resolve(
        {"file": "h.csv", "target": "price", "categorical": ["district", "kind"], "split": {"seed": 1}}, tmp_path
    )
    assert dict(first.options)["content"] != dict(second.options)["content"]
    assert not np.array_equal(load_dataset(first).y_test, load_dataset(second).y_test)


def test_content_hash_follows_the_bytes_not_the_location(tmp_path: Path) -> None:
    from helpers.specs import trial_spec

    housing().to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "moved").mkdir()
    housing().to_csv(tmp_path / "moved" / "a.csv", index=False)
    raw = {"file": "a.csv", "target": "price", "features": ["rooms", "age"]}
    here, moved = resolve(raw, tmp_path), resolve(raw, tmp_path / "moved")
    base = trial_spec()

    def trial_hash(dataset: Any) -> str:
        import dataclasses

        return dataclasses.replace(base, dataset=dataset).hash

    assert trial_hash(here) == trial_hash(moved)
    housing(seed=1).to_csv(tmp_path / "a.csv", index=False)
    assert trial_hash(resolve(raw, tmp_path)) != trial_hash(here)


def test_a_worker_refuses_data_that_changed_after_the_suite_loaded(tmp_path: Path) -> None:
    from harness.spec.types import DatasetSpec

    housing().to_csv(tmp_path / "a.csv", index=False)
    spec = resolve({"file": "a.csv", "target": "price", "features": ["age"]}, tmp_path)
    housing(seed=2).to_csv(tmp_path / "a.csv", index=False)
    user_datasets._prepared.clear()  # as in a fresh worker process
    with pytest.raises(DatasetError, match="changed since this trial was made"):
        load_dataset(DatasetSpec.from_dict(spec.to_dict()))


def test_memory_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    housing().to_csv(tmp_path / "a.csv", index=False)
    monkeypatch.setattr(user_files, "available_memory", lambda: 100)
    with pytest.raises(DatasetError, match=r"a\.csv \(.* on disk\) needs about .* more than the 100 B available"):
        resolve({"file": "a.csv", "target": "price"}, tmp_path)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def bad_inputs(folder: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Each bad case: its dataset entry and a pattern its message must match."""
    table = housing(rows=20)
    table.to_csv(folder / "ok.csv", index=False)
    broken = table.copy()
    broken.loc[[3, 7], "age"] = np.nan
    broken.to_csv(folder / "nan.csv", index=False)
    infinite = table.copy()
    infinite.loc[5, "price"] = np.inf
    infinite.to_csv(folder / "inf.csv", index=False)
    rare = table.copy()
    rare.loc[0, "kind"] = "rare"
    rare.to_csv(folder / "rare.csv", index=False)
    (folder / "garbage.parquet").write_text("not parquet")
    (folder / "data.xlsx").write_text("x")
    (folder / "empty_images").mkdir()
    write_images(folder / "bad_images", {"a": 1, "b": 1})
    (folder / "bad_images" / "b" / "broken.png").write_text("not an image")
    (folder / "wrong_shapes.py").write_text(
        "import numpy as np\ndef load():\n    return {'x': np.zeros((5, 2)), 'y': np.zeros(4)}\n"
    )
    ok = {"file": "ok.csv", "target": "price", "categorical": ["district", "kind"]}
    return {
        "missing file": ({"file": "nope.csv", "target": "price"}, r"nope\.csv: no such file"),
        "unknown format": ({"file": "data.xlsx"}, r"unknown format '\.xlsx'.*\.csv, \.tsv"),
        "unreadable": ({"file": "garbage.parquet", "target": "price"}, r"cannot read .*garbage\.parquet as parquet"),
        "unknown target": ({**ok, "target": "prise"}, r"dataset\.target: no column 'prise'\. Did you mean 'price'\?"),
        "unknown feature": ({**ok, "features": ["rooms", "ag"]}, r"no column 'ag'\. Did you mean 'age'\?"),
        "not categorical": ({**ok, "categorical": ["kind"]}, r"column 'district' is not numeric.*categorical"),
        "nan features": ({**ok, "file": "nan.csv"}, r"2 feature values are missing.*data row 4 \(column 'age'\)"),
        "inf target": ({**ok, "file": "inf.csv"}, r"1 targets in 'price' are .* infinite; the first at data row 6"),
        "one class": (
            {"file": "ok.csv", "target": "rooms", "features": ["age"], "task": "binary"},
            r"binary needs exactly 2 classes",
        ),
        "too few to stratify": (
            {"file": "rare.csv", "target": "kind", "features": ["age"]},
            r"class 'rare' has 1 row\(s\); stratifying .* at least 2",
        ),
        "no training set": ({**ok, "split": {"test": 0.5, "validation": 0.5}}, r"leaves no training set"),
        "no class folders": ({"images": "empty_images"}, r"has no class folders"),
        "unreadable image": ({"images": "bad_images"}, r"cannot read image .*broken\.png"),
        "plug-in does not import": ({"python": "no_such_module:load"}, r"cannot import 'no_such_module'"),
        "plug-in shapes": ({"python": "wrong_shapes:load"}, r"x with 5 rows and y with 4.*same first dimension"),
    }


def test_every_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    cases = bad_inputs(tmp_path)
    for name, (raw, pattern) in cases.items():
        with pytest.raises((DatasetError, SpecError)) as caught:
            resolve(raw, tmp_path)
        assert caught.value.exit_code == 2
        import re

        assert re.search(pattern, str(caught.value)), f"{name}: {caught.value}"
    sys.modules.pop("wrong_shapes", None)


def test_one_class_target_is_refused(tmp_path: Path) -> None:
    table = housing(rows=10)
    table["same"] = "only"
    table.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DatasetError, match=r"only one class \('only'\).*at least 2"):
        resolve({"file": "a.csv", "target": "same", "features": ["age"]}, tmp_path)


def test_cli_exits_2_and_writes_nothing_for_bad_data(tmp_path: Path) -> None:
    housing().to_csv(tmp_path / "a.csv", index=False)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: bad\ndataset: {file: a.csv, target: prise}\nmodel: {mlp: {hidden: [4]}}\nloss: mse\n"
        "optimizer: sgd\ninitializer: he_normal\ntraining: {epochs: 1, batch_size: 8}\nbackends: [torch]\n"
    )
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2, result.output
    assert "suite.yaml:2: dataset.target: no column 'prise'. Did you mean 'price'?" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "store").exists()


def test_editing_a_csv_reruns_only_the_trials_that_read_it(tmp_path: Path) -> None:
    from harness.runner import run_trials
    from harness.store import Store
    from harness.suite import load_suite

    housing(rows=24).to_csv(tmp_path / "a.csv", index=False)
    housing(rows=24, seed=1).to_csv(tmp_path / "b.csv", index=False)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            """
            name: two_files
            dataset: {file: a.csv, target: price, features: [rooms, age]}
            grid:
              dataset:
                a: {file: a.csv, target: price, features: [rooms, age]}
                b: {file: b.csv, target: price, features: [rooms, age]}
            model: {mlp: {hidden: [4]}}
            loss: mse
            optimizer: sgd
            initializer: he_normal
            training: {epochs: 1, batch_size: 8}
            backends: [torch]
            """
        )
    )
    store = Store(tmp_path / "store")
    try:
        first = run_trials(load_suite(suite).trials, store, jobs=1, quiet=True)
        assert (first.total, first.ok) == (2, 2)
        stored = {trial.arm: trial.hash for trial in load_suite(suite).trials}
        edited_table = pd.read_csv(tmp_path / "b.csv")
        edited_table.loc[0, "price"] += 1.0
        edited_table.to_csv(tmp_path / "b.csv", index=False)
        edited = load_suite(suite).trials
        # what run_trials skips: the store's finished trials (one worker run is spent, not two)
        finished = store.finished({trial.hash: trial for trial in edited})
        assert {trial.arm for trial in edited if trial.hash not in finished} == {"b"}
        assert stored["a"] == next(trial.hash for trial in edited if trial.arm == "a")
    finally:
        store.close()


def test_packages_register_datasets_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny installed distribution (a dist-info folder on sys.path) registers `my_benchmark`."""
    package = tmp_path / "site"
    (package / "bench_pkg").mkdir(parents=True)
    (package / "bench_pkg" / "__init__.py").write_text(
        "import numpy as np\ndef load(rows=20):\n    return {'x': np.arange(rows * 2.0).reshape(rows, 2), "
        "'y': np.arange(rows) % 2}\n"
    )
    info = package / "bench_pkg-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-pkg\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        "[harness.datasets]\nmy_benchmark = bench_pkg:load\n\n[harness.models]\nmy_net.torch = bench_pkg:make_torch\n"
    )
    monkeypatch.syspath_prepend(str(package))
    spec = resolve_dataset({"name": "my_benchmark", "args": {"rows": 10}})
    assert dataset_info(spec).task == "binary" and len(load_dataset(spec).y_test) == 2
    from harness.listing import list_datasets_text

    listed = list_datasets_text()
    assert "my_benchmark" in listed and "bench_pkg:load" in listed and "bench-pkg 1.2" in listed
    with pytest.raises(SpecError, match="Did you mean 'my_benchmark'"):
        resolve_dataset("my_benchmarc")
    from harness.spec import resolve_model

    model = resolve_model({"name": "my_net", "args": {"hidden": 3}}, num_outputs=2)
    assert dict(model.python) == {"torch": "bench_pkg:make_torch"} and model.args == '{"hidden": 3}'
    assert "my_net.torch" in listed
    sys.modules.pop("bench_pkg", None)


def test_examples_make_their_data_and_validate(tmp_path: Path) -> None:
    """The example suites load on the data examples/make_data.py writes (the same bytes on every machine)."""
    import runpy
    import shutil

    from harness.suite import load_suite

    examples = Path(__file__).resolve().parent.parent / "examples"
    runpy.run_path(str(examples / "make_data.py"))["main"](tmp_path / "data")
    again = tmp_path / "again"
    runpy.run_path(str(examples / "make_data.py"))["main"](again)
    assert (again / "shapes.npz").read_bytes() == (tmp_path / "data" / "shapes.npz").read_bytes()
    suites = sorted(examples.glob("*.yaml"))
    assert [path.name for path in suites] == ["housing_csv.yaml", "my_model_vs_mlp.yaml", "shapes_npz_cnn.yaml"]
    for path in suites:
        if path.name == "my_model_vs_mlp.yaml":
            continue  # loading it builds the Keras twin (Keras' import costs seconds); CI runs it
        shutil.copy(path, tmp_path / path.name)
        suite = load_suite(tmp_path / path.name)
        assert suite.trials and all(trial.spec.dataset.name == "file" for trial in suite.trials)
    user_datasets.take_notes()


def test_a_schedule_on_a_file_dataset_is_checked_against_its_training_rows(tmp_path: Path) -> None:
    """The warmup check counts the file's training rows (known once the suite has read it), as for built-ins."""
    housing().to_csv(tmp_path / "a.csv", index=False)  # 40 rows: 28 train / 4 validation / 8 test, 4 steps of 8
    suite = tmp_path / "suite.yaml"
    text = (
        "name: scheduled\ndataset: {file: a.csv, target: price, features: [rooms, age], split: {test: 0.2, "
        "validation: 0.1}}\nmodel: {mlp: {hidden: [4]}}\nloss: mse\noptimizer: sgd\ninitializer: he_normal\n"
        "training: {epochs: 2, batch_size: 8, lr_schedule: {name: cosine, warmup_steps: WARMUP}}\nbackends: [torch]\n"
    )
    suite.write_text(text.replace("WARMUP", "3"))
    assert CliRunner().invoke(cli, ["validate", str(suite)]).exit_code == 0
    suite.write_text(text.replace("WARMUP", "8"))
    result = CliRunner().invoke(cli, ["validate", str(suite)])
    assert result.exit_code == 2, result.output
    assert "not shorter than the whole training, 8 optimizer steps" in result.output, result.output
