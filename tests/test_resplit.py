"""`resplit: per_seed` (Bouthillier et al. 2021): each trial's seed draws its dataset's split, the same for
every arm at that seed; without the key, the fixed splits and the trial hashes of before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.suites import BASE_SUITE, load_suite_text, optimizer_grid_suite, write_suite

import harness
from harness.adapters.stackable import group_key
from harness.analysis.examples import LabelCache
from harness.cli import cli
from harness.data import load_dataset, resolve_dataset
from harness.errors import DatasetError

SPIRALS = {"name": "spirals", "n_samples": 40, "validation": 0.25}  # continuous rows: each one unique


def _members(data) -> dict[str, set[bytes]]:
    """Each split's rows (features and label) as a set, to compare memberships."""
    return {
        name: {x.tobytes() + y.tobytes() for x, y in zip(*data.split(name))} for name in ("train", "validation", "test")
    }


def test_two_seeds_draw_different_splits_of_the_same_rows() -> None:
    fixed = load_dataset(resolve_dataset({**SPIRALS, "scale": "none"}))
    spec = resolve_dataset({**SPIRALS, "scale": "none", "resplit": "per_seed"})
    every_row = set().union(*_members(fixed).values())
    assert len(every_row) == 40
    splits = [_members(load_dataset(spec, seed)) for seed in (0, 1)]
    for split in splits:
        assert set().union(*split.values()) == every_row  # the union is the dataset: nothing lost or added
        assert sum(len(rows) for rows in split.values()) == 40  # ... and no row in two splits
        assert [len(split[name]) for name in ("train", "validation", "test")] == [22, 8, 10]
    assert splits[0]["validation"] != splits[1]["validation"]
    assert splits[0]["test"] != splits[1]["test"]  # spirals is the harness's own cut: its test split is redrawn too
    assert load_dataset(spec, 1) is load_dataset(spec, 1)  # cached per (spec, seed) ...
    assert _members(load_dataset(spec, 0)) == splits[0]  # ... and seed 1's entry never answers seed 0


def test_scaling_is_fitted_on_each_seeds_own_training_rows() -> None:
    raw = load_dataset(resolve_dataset({**SPIRALS, "scale": "none", "resplit": "per_seed"}), 3)
    scaled = load_dataset(resolve_dataset({**SPIRALS, "scale": "standard", "resplit": "per_seed"}), 3)
    offset, divisor = raw.x_train.astype(np.float64).mean(axis=0), raw.x_train.astype(np.float64).std(axis=0)
    for name in ("train", "validation", "test"):
        np.testing.assert_allclose(scaled.split(name)[0], (raw.split(name)[0] - offset) / divisor, atol=1e-5)
        np.testing.assert_array_equal(scaled.split(name)[1], raw.split(name)[1])


def test_without_resplit_the_split_is_the_fixed_one_for_any_seed() -> None:
    fixed = resolve_dataset({"name": "iris", "validation": 0.2})
    assert resolve_dataset({"name": "iris", "validation": 0.2, "resplit": "fixed"}) == fixed
    assert "resplit" not in fixed.to_dict()
    assert load_dataset(fixed, 0) is load_dataset(fixed, 7) is load_dataset(fixed)
    per_seed = resolve_dataset({"name": "iris", "validation": 0.2, "resplit": "per_seed"})
    with pytest.raises(ValueError, match="needs the trial's seed"):
        load_dataset(per_seed)


def test_mnist1d_keeps_its_own_test_split_and_redraws_train_and_validation() -> None:
    spec = resolve_dataset({"name": "mnist1d", "validation": 0.1, "train_samples": 200, "resplit": "per_seed"})
    first, second = load_dataset(spec, 0), load_dataset(spec, 1)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert _members(first)["train"] != _members(second)["train"]  # train_samples: each seed its own subset
    with pytest.raises(DatasetError, match="would redraw nothing"):
        resolve_dataset({"name": "mnist1d", "resplit": "per_seed"})


def test_suites_without_resplit_keep_their_hashes_and_arms_at_one_seed_share_a_split(tmp_path: Path) -> None:
    plain = load_suite_text(tmp_path, BASE_SUITE)
    explicit = load_suite_text(
        tmp_path, BASE_SUITE.replace("dataset: mnist1d", "dataset: {name: mnist1d, resplit: fixed}")
    )
    assert [t.spec.hash for t in plain.trials] == [t.spec.hash for t in explicit.trials]
    text = optimizer_grid_suite(
        "r",
        "resplit",
        dataset="{name: iris, validation: 0.2, resplit: per_seed}",
        model="{mlp: {hidden: [4]}}",
        training="{epochs: 1, batch_size: 16}",
        seeds=2,
        arms={"fast": "{name: sgd, lr: 0.1}", "slow": "{name: sgd, lr: 0.01}"},  # one rule: one stacked group
    )
    trials = load_suite_text(tmp_path, text).trials
    assert all(t.spec.dataset.resplit == "per_seed" for t in trials)
    by_seed: dict[int, list] = {}
    for trial in trials:
        by_seed.setdefault(trial.spec.seed, []).append(trial.spec)
    assert sorted(by_seed) == [0, 1] and all(len(specs) == 2 for specs in by_seed.values())
    for seed, (fast, slow) in by_seed.items():
        assert fast.dataset == slow.dataset  # the split depends on the dataset and the seed only, never the arm
        assert _members(load_dataset(fast.dataset, seed)) == _members(load_dataset(slow.dataset, seed))
        assert group_key(fast) == group_key(slow)  # stacked together: they share one seed's data
    assert group_key(by_seed[0][0]) != group_key(by_seed[1][0])  # never one stacked group across two splits


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("{name: iris, resplit: always}", "dataset.resplit: expected one of 'fixed', 'per_seed', got 'always'"),
        ("{file: data.csv, resplit: per_seed}", "dataset.resplit: a dataset from a file"),
    ],
    ids=["bad value", "user dataset"],
)
def test_a_bad_resplit_exits_2_and_says_why(tmp_path: Path, dataset: str, message: str) -> None:
    (tmp_path / "data.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    suite = write_suite(tmp_path, BASE_SUITE.replace("dataset: mnist1d", f"dataset: {dataset}"))
    result = CliRunner().invoke(cli, ["validate", str(suite)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_resplit_suite_runs_end_to_end(tmp_path: Path) -> None:
    text = optimizer_grid_suite(
        "resplit",
        "SGD vs Adam on digits, each seed its own split.",
        dataset="{name: digits, validation: 0.2, train_samples: 200, resplit: per_seed}",
        model="{mlp: {hidden: [8]}}",
        training="{epochs: 1, batch_size: 32}",
        seeds=2,
        arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
    )
    suite = write_suite(tmp_path, text)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store), "--jobs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "4 trials: 0 already in the store, 4 ok" in result.output
    results = harness.load(suite, store)
    assert results.resplits_per_seed and "intervals include split variance" in results.summary_text()
    # each seed's stored test predictions are scored against that seed's own test labels
    labels = LabelCache()
    specs = results.trials.drop_duplicates("seed").sort_values("seed")["spec"].tolist()
    assert not np.array_equal(labels(specs[0]), labels(specs[1]))
    spec = resolve_dataset({"name": "digits", "validation": 0.2, "train_samples": 200, "resplit": "per_seed"})
    np.testing.assert_array_equal(labels(specs[1]), load_dataset(spec, 1).y_test)
    assert int(results.example_comparisons()["seeds"].iloc[0]) == 2
