"""Per-example test predictions: stored with each trial (harness.store), and the example-level
tests on them (harness.analysis.examples): McNemar's exact test and the two-level bootstrap."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.adapters import get_adapter
from harness.adapters.loop import train_trial
from harness.analysis import Results
from harness.analysis.examples import example_level, mcnemar_test, split_labels, two_level_bootstrap
from harness.data import dataset_info, load_dataset, resolve_dataset
from harness.errors import SpecError
from harness.spec import RegularizerSpec, TrainingSpec, Trial, TrialSpec, resolve_component, resolve_model
from harness.store import DATABASE_NAME, SCHEMA_VERSION, Store
from harness.store.schema import SCHEMA


def make_trial(arm: str, seed: int, lr: float, epochs: int = 2) -> Trial:
    dataset = resolve_dataset({"name": "iris", "validation": 0.2})
    info = dataset_info(dataset)
    spec = TrialSpec(
        dataset=dataset,
        model=resolve_model({"mlp": {"hidden": [8]}}, num_outputs=info.num_outputs),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", {"name": "sgd", "lr": lr}, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(),
        training=TrainingSpec(epochs=epochs, batch_size=16),
        seed=seed,
        backend="torch",
    )
    return Trial(suite="examples-test", arm=arm, cell=(("lr", str(lr)),), spec=spec)


class _Keeping:
    """The torch adapter, keeping the model it builds (to compare stored predictions with its outputs)."""

    def __init__(self) -> None:
        self.adapter = get_adapter("torch")
        self.models: list[Any] = []

    def build(self, *arguments: Any, **keywords: Any) -> Any:
        model = self.adapter.build(*arguments, **keywords)
        self.models.append(model)
        return model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Trial], dict[str, np.ndarray]]:
    """A real tiny run: iris, torch, 2 arms x 2 seeds x 2 epochs, recorded in a store; with each
    trial's final model outputs on the test split."""
    directory = tmp_path_factory.mktemp("examples")
    trials = [make_trial(arm, seed, lr) for arm, lr in (("fast", 0.5), ("slow", 1e-4)) for seed in (0, 1)]
    outputs = {}
    with Store(directory) as store:
        for trial in trials:
            adapter = _Keeping()
            data = load_dataset(trial.spec.dataset)
            result = train_trial(trial.spec, adapter, data)
            assert result.status == "ok"
            outputs[trial.hash] = adapter.models[-1].predict(data.split("test")[0])
            store.record(trial, result)
    return directory, trials, outputs


def test_stored_predictions_are_the_argmax_and_give_the_stored_accuracy(stored) -> None:
    directory, trials, outputs = stored
    labels = load_dataset(trials[0].spec.dataset).split("test")[1]
    with Store(directory) as store:
        predictions = store.predictions_frame()
        metrics = store.metrics_frame()
    assert set(predictions["hash"]) == {trial.hash for trial in trials}
    for trial in trials:
        rows = predictions[predictions["hash"] == trial.hash]
        assert (rows["split"] == "test").all()
        final = rows[rows["is_final"]]
        assert final["epoch"].tolist() == [2]
        values = final["values"].iloc[0]
        assert values.dtype == np.uint8 and values.shape == labels.shape
        np.testing.assert_array_equal(values, outputs[trial.hash].argmax(axis=1))
        accuracy = metrics[(metrics["hash"] == trial.hash) & (metrics["epoch"] == 2)]
        accuracy = accuracy.loc[accuracy["metric"] == "test_accuracy", "value"].iloc[0]
        assert accuracy == np.mean(values == labels)
        # exactly one row marks the epoch of least validation loss, and it is that epoch
        best = rows[rows["is_best_validation"]]
        validation = metrics[(metrics["hash"] == trial.hash) & (metrics["metric"] == "validation_loss")]
        assert best["epoch"].tolist() == [int(validation.loc[validation["value"].idxmin(), "epoch"])]
        best_accuracy = metrics[(metrics["hash"] == trial.hash) & (metrics["epoch"] == best["epoch"].iloc[0])]
        best_accuracy = best_accuracy.loc[best_accuracy["metric"] == "test_accuracy", "value"].iloc[0]
        assert best_accuracy == np.mean(best["values"].iloc[0] == labels)


def test_example_level_on_results_compares_two_arms_by_seed(stored) -> None:
    directory, _, _ = stored
    with Store(directory) as store:
        trial_rows = store.trials_frame()
        predictions = store.predictions_frame()
        metrics = store.metrics_frame()
    results = Results(trial_rows, metrics, arms=("fast", "slow"), axes=(), name="examples-test")
    comparison = results.example_level(predictions, "fast", "slow", resamples=500)
    assert comparison.per_seed["seed"].tolist() == [0, 1]
    assert comparison.interval.seeds == 2 and comparison.interval.examples == len(split_labels(trial_rows.spec[0]))
    assert comparison.interval.low <= comparison.interval.difference <= comparison.interval.high
    per_seed_mean = (comparison.per_seed["accuracy_a"] - comparison.per_seed["accuracy_b"]).mean()
    assert comparison.interval.difference == pytest.approx(per_seed_mean)
    with pytest.raises(SpecError, match="no ok trial with stored test predictions"):
        example_level(trial_rows, predictions.iloc[0:0], "fast", "slow")


def test_mcnemar_matches_a_hand_computed_table() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    # a right on 10, b right on 4: both right 3, only a 7, only b 1, both wrong 1
    predictions_a = labels.copy()
    predictions_a[[10, 11]] = 0
    predictions_b = np.array([0, 1, 2, 1, 2, 0, 1, 2, 0, 1, 1, 0])
    result = mcnemar_test(predictions_a, predictions_b, labels)
    assert (result.both_right, result.only_a_right, result.only_b_right, result.both_wrong) == (3, 7, 1, 1)
    assert result.accuracy_a == 10 / 12 and result.accuracy_b == 4 / 12
    # exact two-sided: 2 * P(Binomial(8, 1/2) <= 1) = 2 * 9 / 256
    assert result.p_value == pytest.approx(18 / 256, rel=1e-12)
    assert mcnemar_test(labels, labels, labels).p_value == 1.0


def test_two_level_bootstrap_covers_the_true_difference_at_about_its_level() -> None:
    """Simulated population of examples: P(right) = expit(difficulty + arm a's example-specific
    advantage + the seed's shift), so the difference depends on WHICH examples the test set holds
    and on the seeds. Each simulation draws one test set (shared by every seed, as in the harness)
    and 5 seeds per arm; the 90% interval should hold the population difference about 90% of the time."""
    generator = np.random.default_rng(12)
    simulations, seeds, examples, confidence = 200, 5, 300, 0.90

    def draw_examples(count: int) -> tuple[np.ndarray, np.ndarray]:
        return generator.normal(1.5, 2.0, count), generator.normal(0.2, 1.0, count)

    def probability(logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits))

    difficulty, advantage = draw_examples(400_000)
    shifts = generator.normal(0, 0.3, size=(2, 100))
    true_difference = np.mean([probability(difficulty + advantage + shift).mean() for shift in shifts[0]]) - np.mean(
        [probability(difficulty + shift).mean() for shift in shifts[1]]
    )
    covered = 0
    for simulation in range(simulations):
        difficulty, advantage = draw_examples(examples)
        shift_a, shift_b = generator.normal(0, 0.3, size=(2, seeds, 1))
        correct_a = generator.random((seeds, examples)) < probability(difficulty + advantage + shift_a)
        correct_b = generator.random((seeds, examples)) < probability(difficulty + shift_b)
        interval = two_level_bootstrap(correct_a, correct_b, confidence=confidence, resamples=300, seed=simulation)
        covered += interval.low <= true_difference <= interval.high
    rate = covered / simulations
    assert 0.84 <= rate <= 0.96, rate  # +-3 standard errors of a 90% rate over 200 simulations


def test_bootstrap_refuses_mismatched_examples() -> None:
    with pytest.raises(SpecError, match="same, non-zero number of examples"):
        two_level_bootstrap(np.ones((2, 5)), np.ones((2, 6)))


def test_a_version_2_store_opens_and_has_no_predictions(tmp_path: Path) -> None:
    """A store written before predictions were kept (schema version 2) opens, is migrated, and reads
    back its trials with an empty predictions frame; new trials then store theirs."""
    version_2 = SCHEMA.split("CREATE TABLE IF NOT EXISTS predictions")[0] + (
        "CREATE TABLE IF NOT EXISTS claims" + SCHEMA.split("CREATE TABLE IF NOT EXISTS claims")[1]
    )
    # ... and without the later trials columns (schema 6's provenance, 7's compile_seconds): the migrations add them
    version_2 = re.sub(
        r"harness_version TEXT NOT NULL,\n\s*provenance TEXT[^\n]*", "harness_version TEXT NOT NULL", version_2
    )
    version_2 = re.sub(r"\n\s*compile_seconds REAL,[^\n]*", "", version_2)
    assert (
        "predictions" not in version_2
        and "provenance TEXT" not in version_2.split("CREATE TABLE IF NOT EXISTS metrics")[0]
        and "compile_seconds" not in version_2
    )
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    connection.executescript(version_2)
    connection.execute("INSERT INTO schema_version (version) VALUES (2)")
    trial = make_trial("old", 0, 0.1)
    connection.execute(
        "INSERT INTO trials (hash, suite, arm, backend, seed, status, epochs_completed, train_seconds, eval_seconds, "
        "wall_seconds, versions, device, spec, cell, attempts, harness_version) "
        "VALUES (?, 'examples-test', 'old', 'torch', 0, 'ok', 2, 1, 1, 1, '{}', '{}', ?, '{}', 1, 'old')",
        (trial.hash, trial.spec.to_json()),
    )
    connection.execute("INSERT INTO metrics VALUES (?, 2, 'test_accuracy', 0.5)", (trial.hash,))
    connection.commit()
    connection.close()
    with Store(tmp_path) as store:
        assert store.trials_frame()["hash"].tolist() == [trial.hash]
        assert store.metrics_frame()["value"].tolist() == [0.5]
        assert store.predictions_frame().empty
        new = make_trial("new", 0, 0.1)
        store.record(new, train_trial(new.spec, get_adapter("torch"), load_dataset(new.spec.dataset)))
        assert store.predictions_frame()["hash"].unique().tolist() == [new.hash]
        assert store.integrity_check() == "ok"
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    connection.close()


def test_comparisons_and_compare_show_the_example_level_evidence(stored) -> None:
    """The table the report shows and the columns `harness compare` prints, from the same library calls."""
    from harness.report.compare import compare_results
    from harness.report.sections import example_level_table

    directory, _, _ = stored
    with Store(directory) as store:
        trial_rows, predictions, metrics = store.trials_frame(), store.predictions_frame(), store.metrics_frame()
    results = Results(
        trial_rows, metrics, arms=("fast", "slow"), axes=(), name="examples-test", predictions=predictions
    )
    [row] = results.example_comparisons().to_dict("records")
    direct = results.example_level(predictions, "slow", "fast", resamples=1000)
    assert (row["arm"], row["reference"], row["seeds"]) == ("slow", "fast", 2)
    # Intersection-union: the largest per-seed McNemar p; the count of seed pairs below 0.05.
    assert row["mcnemar_p"] == pytest.approx(direct.per_seed["p_value"].max())
    assert row["mcnemar_significant"] == f"{int((direct.per_seed['p_value'] < 0.05).sum())}/2"
    assert row["example_difference"] == pytest.approx(direct.interval.difference)
    assert row["example_ci_low"] == pytest.approx(direct.interval.low) and row["example_ci_high"] == pytest.approx(
        direct.interval.high
    )
    table = example_level_table(results)
    assert table is not None and len(table.rows) == 1
    # Without predictions (regression, older stores) there is no table rather than an empty one.
    assert example_level_table(Results(trial_rows, metrics, arms=("fast", "slow"), axes=(), name="x")) is None
    # compare: a result set against itself on the same seeds: identical predictions, nothing discordant.
    compared = compare_results(results, results).set_index("arm")
    assert compared.loc["slow", "mcnemar_p"] == 1.0 and compared.loc["slow", "mcnemar_significant"] == "0/2"
    assert compared.loc["slow", "example_ci_low"] == compared.loc["slow", "example_ci_high"] == 0.0
