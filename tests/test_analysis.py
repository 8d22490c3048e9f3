"""Tests of harness.analysis: statistics against scipy and hand-computed values, every Results table
on a small hand-built store frame, the report options' errors, the exports and the terminal summary."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import synthetic_frames
from scipy import stats
from statsmodels.stats.multitest import multipletests

from harness.analysis import Results, check_report_options
from harness.analysis.export import parquet_available
from harness.analysis.statistics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    describe,
    describe_groups,
    holm,
    mean_interval,
    metric_bounds,
    paired_test,
)
from harness.errors import SpecError

REPOSITORY = Path(__file__).resolve().parents[1]
FLOAT_TOLERANCE = 1e-12  # float64 arithmetic on a handful of values; no approximation involved

# -- a hand-built store frame -------------------------------------------------------------------
# Two arms (base = sgd, better = adam) x two backends x four seeds, epochs 0..2.
# Final test accuracy per (arm, backend): one value per seed 0..3.
FINAL_ACCURACY = {
    ("base", "torch"): [0.50, 0.55, 0.60, 0.52],
    ("better", "torch"): [0.60, 0.62, 0.71, 0.60],
    ("base", "keras"): [0.51, 0.54, 0.61, 0.53],
    ("better", "keras"): [0.61, 0.63, 0.70, 0.62],
}
DIVERGED = ("better", "keras", 2)  # diverges at epoch 2: its epoch-2 row is a NaN minibatch loss only
FAILED = ("base", "keras", 3)  # fails before training: no metric rows at all
LABELS = {"base": "sgd", "better": "adam"}


def _hash(arm: str, backend: str, seed: int) -> str:
    return f"{arm}-{backend}-{seed}"


def hand_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials and metrics frames in the store's schema, with known values."""
    trials, metrics = [], []
    for (arm, backend), finals in FINAL_ACCURACY.items():
        for seed, final in enumerate(finals):
            key = (arm, backend, seed)
            status = "diverged" if key == DIVERGED else "failed" if key == FAILED else "ok"
            trials.append(
                {
                    "hash": _hash(*key),
                    "arm": arm,
                    "backend": backend,
                    "seed": seed,
                    "status": status,
                    "error": "ValueError: <boom>" if status == "failed" else None,
                    "diverged_epoch": 2 if status == "diverged" else None,
                    "epochs_completed": {"ok": 2, "diverged": 1, "failed": 0}[status],
                    "train_seconds": 1.0 + seed,
                    "eval_seconds": 0.1,
                    "wall_seconds": 2.0 + seed,
                    "host": "host-a",
                    "versions": json.dumps({backend: "1.0"}),
                    "device": json.dumps({"type": "cpu"}),
                    "spec": json.dumps({"optimizer": {"name": LABELS[arm]}, "seed": seed, "backend": backend}),
                    "started_at": "2026-01-01T00:00:00",
                    "finished_at": "2026-01-01T00:00:02",
                    "optimizer": LABELS[arm],
                }
            )
            if status == "failed":
                continue
            last = 1 if status == "diverged" else 2
            test_accuracy = {0: 0.1, 1: final - 0.1, 2: final}
            for epoch in range(last + 1):
                accuracy = test_accuracy[epoch]
                train_accuracy = accuracy + 0.05
                rows = {
                    "train_loss": 2 * (1 - train_accuracy),
                    "train_accuracy": train_accuracy,
                    "test_loss": 2 * (1 - accuracy),
                    "test_accuracy": accuracy,
                }
                if epoch >= 1:
                    rows["minibatch_loss"] = 2 * (1 - train_accuracy)
                metrics += [
                    {"hash": _hash(*key), "epoch": epoch, "metric": name, "value": value}
                    for name, value in rows.items()
                ]
            if status == "diverged":
                metrics.append({"hash": _hash(*key), "epoch": 2, "metric": "minibatch_loss", "value": math.nan})
    return pd.DataFrame(trials).astype({"diverged_epoch": "Int64"}), pd.DataFrame(metrics)


@pytest.fixture(scope="module")
def results() -> Results:
    trials, metrics = hand_frames()
    return Results(
        trials,
        metrics,
        arms=("base", "better"),
        axes=("optimizer",),
        name="hand",
        description="hand-built",
        report_options={"reference": "base", "targets": {"test_accuracy": 0.55}},
    )


def ok_finals(arm: str, backend: str) -> dict[int, float]:
    return {
        seed: value
        for seed, value in enumerate(FINAL_ACCURACY[(arm, backend)])
        if (arm, backend, seed) not in (DIVERGED, FAILED)
    }


# -- imports ----------------------------------------------------------------------------------


def test_import_loads_no_framework_and_no_plotting() -> None:
    code = (
        "import sys, harness.analysis, harness.results_folder; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax', 'matplotlib', 'seaborn', 'jinja2') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


# -- statistics -------------------------------------------------------------------------------


def test_t_interval_matches_hand_computation() -> None:
    # mean 0.6, sd 0.1, sem 0.1/sqrt(3); for 2 degrees of freedom the t quantile has a closed form:
    # t_p = (2p - 1) / sqrt(2p(1 - p)), so t_{0.975, 2} = 0.95 / sqrt(0.04875) = 4.3026527...
    interval = mean_interval([0.5, 0.6, 0.7], "test_accuracy")
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * 0.1 / math.sqrt(3)
    assert interval.method == "t"
    assert interval.low == pytest.approx(0.6 - half, abs=1e-12)
    assert interval.high == pytest.approx(0.6 + half, abs=1e-12)


@pytest.mark.parametrize(
    ("values", "metric", "method", "expected"),
    [
        ([0.7], "test_accuracy", "none", (math.nan, math.nan)),
        ([0.7, math.nan, math.inf], "test_accuracy", "none", (math.nan, math.nan)),
        ([0.7, 0.7, 0.7], "test_accuracy", "exact", (0.7, 0.7)),
        ([0.99, 1.0, 1.0], "test_accuracy", "t-clipped", (None, 1.0)),
        ([0.001, 0.2, 0.002], "train_loss", "t-clipped", (0.0, None)),
        ([-5.0, 3.0, 0.0], "custom_score", "t", (None, None)),
    ],
    ids=["one-value", "non-finite-dropped", "all-equal", "accuracy-above-1", "loss-below-0", "unbounded-metric"],
)
def test_interval_rule(values, metric, method, expected) -> None:
    interval = mean_interval(values, metric)
    assert interval.method == method
    for got, want in zip((interval.low, interval.high), expected):
        if want is None:
            continue
        assert (math.isnan(got) and math.isnan(want)) or got == want
    if method in ("t", "t-clipped"):
        low, high = metric_bounds(metric)
        assert low <= interval.low < interval.high <= high


def test_bootstrap_only_for_a_crossed_bound_with_ten_or_more_values() -> None:
    values = np.array([1.0] * 9 + [0.9, 1.0, 0.97])  # n = 12: the t interval passes 1.0
    interval = mean_interval(values, "test_accuracy")
    expected = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    assert interval.method == "bootstrap"
    assert (interval.low, interval.high) == (
        pytest.approx(expected.low, abs=1e-12),
        pytest.approx(expected.high, abs=1e-12),
    )
    assert 0.0 <= interval.low < values.mean() < interval.high <= 1.0


def test_holm_matches_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 0.02, 0.03, 0.06, max(0.04, 0.06) = 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02], rtol=0, atol=FLOAT_TOLERANCE)
    assert math.isnan(adjusted[4])
    assert holm([0.6, 0.5]).tolist() == [1.0, 1.0]  # capped at 1
    assert holm([]).size == 0


def test_paired_test_matches_scipy_and_hand_effect_size() -> None:
    arm = [1.0, 2.0, 3.0, 4.0, math.nan]
    reference = [0.5, 1.7, 2.1, 3.9, 1.0]  # the NaN pair is dropped
    result = paired_test(arm, reference)
    expected = stats.ttest_rel(arm[:4], reference[:4])
    interval = expected.confidence_interval(0.95)
    assert result["n_pairs"] == 4
    assert result["mean_difference"] == pytest.approx(0.45, abs=FLOAT_TOLERANCE)
    assert result["p_value"] == pytest.approx(expected.pvalue, abs=FLOAT_TOLERANCE)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(interval.low), pytest.approx(interval.high))
    # d = 0.5, 0.3, 0.9, 0.1: mean 0.45, sd sqrt(0.35 / 3)
    assert result["cohens_dz"] == pytest.approx(0.45 / math.sqrt(0.35 / 3), rel=1e-12)
    assert math.isnan(paired_test([1.0], [0.0])["p_value"])


def test_differences_that_agree_to_rounding_are_not_certainty() -> None:
    """0.95 - 0.85 and 0.93 - 0.83 are 0.1 up to float64 rounding: the sd of the differences is
    ~1e-17 and d_z was ~1e15. No seed noise is no test, not infinite certainty."""
    arm, reference = [0.95, 0.93, 0.91], [0.85, 0.83, 0.81]
    assert 0 < np.std(np.subtract(arm, reference), ddof=1) < 1e-15  # the rounding this is about
    result = paired_test(arm, reference)
    assert result["no_spread"] and result["mean_difference"] == pytest.approx(0.1, abs=1e-15)
    assert all(math.isnan(result[key]) for key in ("cohens_dz", "t_statistic", "p_value"))
    assert result["ci_low"] == result["ci_high"] == result["mean_difference"]
    exact = paired_test([0.5, 0.6], [0.4, 0.5 + 0.0])  # bit-identical differences? either way: no spread
    assert exact["no_spread"] and math.isnan(exact["cohens_dz"])
    # A spread just above rounding (1e-9, a float32 metric's last digits) is a real spread: tested.
    noisy = paired_test([0.95, 0.93 + 1e-9, 0.91], [0.85, 0.83, 0.81])
    assert not noisy["no_spread"] and math.isfinite(noisy["cohens_dz"]) and noisy["p_value"] < 1e-6


def test_describe_groups_equals_describe_per_group() -> None:
    frames = synthetic_frames(
        optimizers=("sgd", "adam"), widths=(8,), backends=("torch",), seeds=5, epochs=3, diverged=0, failed=0
    )
    results = Results(frames.trials, frames.metrics, frames.arms, frames.axes, name="s")
    final = results.final()
    table = describe_groups(final, ["arm"], ["test_accuracy", "train_loss"])
    for row in table.to_dict("records"):
        expected = describe(final.loc[final["arm"] == row["arm"], row["metric"]].to_numpy(), row["metric"])
        for key in ("n", "mean", "std", "sem", "ci_low", "ci_high"):
            assert row[key] == pytest.approx(expected[key], rel=1e-12), key
        assert row["ci_method"] == expected["ci_method"]


# -- per-trial tables -------------------------------------------------------------------------


def test_epochs_is_tidy_and_ordered(results: Results) -> None:
    epochs = results.epochs()
    _, metrics = hand_frames()
    assert len(epochs) == len(metrics)
    assert list(epochs.columns) == ["hash", "arm", "backend", "seed", "optimizer", "status", "epoch", "metric", "value"]
    assert list(pd.unique(epochs["arm"])) == ["base", "better"]
    assert list(pd.unique(epochs["backend"])) == ["torch", "keras"]  # torch first: deltas read torch - keras
    first = epochs[epochs["hash"] == "base-torch-0"]
    assert first["epoch"].is_monotonic_increasing
    assert first[first["epoch"] == 2].set_index("metric").at["test_accuracy", "value"] == 0.50


def test_final_takes_the_last_epoch_and_the_best(results: Results) -> None:
    final = results.final().set_index("hash")
    assert final.at["better-torch-2", "test_accuracy"] == 0.71
    assert final.at["better-torch-2", "best_train_loss"] == pytest.approx(2 * (1 - 0.76), abs=FLOAT_TOLERANCE)
    # No validation split here: no selected epoch, and never the test set's own best (an oracle).
    assert final["at_best_validation_test_accuracy"].isna().all() and final["best_validation_epoch"].isna().all()
    assert not [column for column in final.columns if column.startswith("best_test_")]
    assert final.at["better-torch-2", "final_epoch"] == 2
    diverged = final.loc[_hash(*DIVERGED)]
    assert diverged["final_epoch"] == 2 and math.isnan(diverged["test_accuracy"])  # no accuracy after diverging
    assert diverged["best_train_accuracy"] == pytest.approx(0.70 - 0.1 + 0.05, abs=FLOAT_TOLERANCE)
    failed = final.loc[_hash(*FAILED)]
    assert failed["status"] == "failed" and pd.isna(failed["final_epoch"]) and math.isnan(failed["test_accuracy"])
    assert failed["error"] == "ValueError: <boom>"


def test_summary_uses_only_ok_trials(results: Results) -> None:
    summary = results.summary().set_index(["arm", "backend", "metric"])
    for arm, backend in FINAL_ACCURACY:
        values = list(ok_finals(arm, backend).values())
        row = summary.loc[(arm, backend, "test_accuracy")]
        assert row["n"] == len(values)
        assert row["mean"] == pytest.approx(np.mean(values), abs=FLOAT_TOLERANCE)
        assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=FLOAT_TOLERANCE)
        # The t interval by scipy (inside [0, 1] here, so the bound rule leaves it alone).
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert low > 0 and high < 1
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    keras_base = summary.loc[("base", "keras", "train_seconds")]
    assert (keras_base["n_trials"], keras_base["n_ok"], keras_base["n_failed"], keras_base["n_diverged"]) == (
        4,
        3,
        1,
        0,
    )
    assert keras_base["mean"] == pytest.approx(np.mean([1.0, 2.0, 3.0]), abs=FLOAT_TOLERANCE)
    assert summary.loc[("better", "keras", "test_accuracy"), "n_diverged"] == 1


def test_curves_band_is_the_t_interval_clipped(results: Results) -> None:
    curves = results.curves(["test_accuracy"]).set_index(["arm", "backend", "epoch"])
    row = curves.loc[("better", "torch", 2)]
    values = FINAL_ACCURACY[("better", "torch")]
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert row["n"] == 4 and row["mean"] == pytest.approx(np.mean(values), abs=FLOAT_TOLERANCE)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert curves.loc[("base", "torch", 0), "ci_low"] == pytest.approx(0.1)  # all equal: zero width


# -- comparisons ------------------------------------------------------------------------------


def test_comparisons_pair_by_seed_and_correct_with_holm(results: Results) -> None:
    table = results.comparisons().set_index("backend")
    torch_row = table.loc["torch"]
    a, b = FINAL_ACCURACY[("better", "torch")], FINAL_ACCURACY[("base", "torch")]
    expected = stats.ttest_rel(a, b)
    assert torch_row["n_pairs"] == 4 and torch_row["reference"] == "base" and torch_row["optimizer"] == "adam"
    assert torch_row["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)), abs=FLOAT_TOLERANCE)
    assert torch_row["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    # keras: base seed 3 failed and better seed 2 diverged, so only seeds 0 and 1 pair up
    keras_row = table.loc["keras"]
    keras_expected = stats.ttest_rel([0.61, 0.63], [0.51, 0.54])
    assert keras_row["n_pairs"] == 2
    assert keras_row["p_value"] == pytest.approx(keras_expected.pvalue, rel=1e-12)
    # Holm over the two rows, by statsmodels (not by the harness's own holm): torch's p doubles, keras' stays.
    reference_holm = multipletests(table["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(table["p_holm"].to_numpy(), reference_holm, rtol=1e-12)
    assert torch_row["p_holm"] == pytest.approx(2 * expected.pvalue, rel=1e-12)  # 0.0044: the smaller p, times 2
    assert table.loc["keras", "p_holm"] == pytest.approx(keras_expected.pvalue, rel=1e-12)  # 0.033, times 1
    # Both below 0.05 with a positive accuracy difference: significant, and 'better'.
    assert list(table["significant"]) == [True, True] and list(table["verdict"]) == ["better", "better"]


def test_comparisons_verdict_follows_the_metric_direction(results: Results) -> None:
    loss = results.comparisons(metric="test_loss").set_index("backend")
    assert list(loss["mean_difference"]) == pytest.approx([-0.18, -0.19], abs=1e-12)  # adam's loss is lower
    assert list(loss["verdict"]) == ["better", "better"]  # lower is better for a loss
    # The reference swapped: the same significant differences, the other way: 'worse' for both metrics.
    swapped = results.comparisons(reference="better").set_index("backend")
    assert list(swapped["mean_difference"]) == pytest.approx([-0.09, -0.095], abs=1e-12)
    assert list(swapped["verdict"]) == ["worse", "worse"]
    swapped_loss = results.comparisons(reference="better", metric="test_loss").set_index("backend")
    assert list(swapped_loss["mean_difference"]) == pytest.approx([0.18, 0.19], abs=1e-12)
    assert list(swapped_loss["verdict"]) == ["worse", "worse"]  # a higher loss is worse
    # No difference at all (train_seconds is 1 + seed in both arms): no test, no verdict either way.
    speed = results.comparisons(metric="train_seconds")
    assert list(speed["verdict"]) == ["no test: every seed gives the same difference"] * 2
    assert not speed["significant"].any() and speed["cohens_dz"].isna().all()


def test_backend_deltas_pair_torch_minus_keras_by_seed(results: Results) -> None:
    table = results.backend_deltas(["test_accuracy"]).set_index("arm")
    base = table.loc["base"]
    torch_values, keras_values = ok_finals("base", "torch"), ok_finals("base", "keras")
    seeds = sorted(set(torch_values) & set(keras_values))
    differences = [torch_values[seed] - keras_values[seed] for seed in seeds]
    assert (base["backend"], base["versus"], base["n_pairs"]) == ("torch", "keras", 3)
    assert base["mean_difference"] == pytest.approx(np.mean(differences), abs=FLOAT_TOLERANCE)
    assert base["max_abs_difference"] == pytest.approx(max(abs(x) for x in differences), abs=FLOAT_TOLERANCE)
    assert base["p_value"] == pytest.approx(
        stats.ttest_rel([torch_values[s] for s in seeds], [keras_values[s] for s in seeds]).pvalue
    )


def test_backend_deltas_empty_with_one_backend() -> None:
    trials, metrics = hand_frames()
    trials = trials[trials["backend"] == "torch"]
    single = Results(trials, metrics, ("base", "better"), ("optimizer",), name="one")
    assert single.backend_deltas().empty and "p_holm" in single.backend_deltas().columns


def test_time_to_target_first_epoch_and_pro_rated_seconds(results: Results) -> None:
    table = results.time_to_target().set_index("hash")
    # base/torch finals 0.50, 0.55, 0.60, 0.52 (epoch 1 is 0.1 lower): target 0.55
    assert not table.at["base-torch-0", "reached"] and math.isnan(table.at["base-torch-0", "epoch"])
    assert table.at["base-torch-1", "epoch"] == 2 and table.at["base-torch-1", "seconds"] == pytest.approx(2.0)
    assert table.at["better-torch-2", "epoch"] == 1  # 0.61 at epoch 1
    assert table.at["better-torch-2", "seconds"] == pytest.approx(3.0 * 1 / 2)  # train_seconds 3.0 over 2 epochs
    summary = results.time_to_target_summary().set_index(["arm", "backend"])
    assert summary.loc[("base", "torch"), "n_reached"] == 2 and summary.loc[("base", "torch"), "n"] == 4
    # epochs inf, 2, 2, inf -> median inf: 'not reached' (NaN), no survivor bias
    assert math.isnan(summary.loc[("base", "torch"), "median_epoch"])
    # better/torch epoch-1 values 0.50, 0.52, 0.61, 0.50: first epochs 2, 2, 1, 2 -> median 2
    assert summary.loc[("better", "torch"), "median_epoch"] == 2.0
    assert summary.loc[("better", "torch"), "median_seconds"] == pytest.approx(np.median([1.0, 2.0, 1.5, 4.0]))


def test_pivot_of_a_two_axis_grid() -> None:
    frames = synthetic_frames(optimizers=("sgd", "adam"), widths=(8, 16, 32), seeds=3, epochs=3)
    grid = Results(frames.trials, frames.metrics, frames.arms, frames.axes, name="grid")
    table = grid.pivot(backend="torch")
    assert list(table.index) == ["sgd", "adam"] and list(table.columns) == ["[8]", "[16]", "[32]"]
    final = grid.final()
    cell = final[(final["status"] == "ok") & (final["backend"] == "torch") & (final["arm"] == "adam-h16")]
    assert table.at["adam", "[16]"] == pytest.approx(cell["test_accuracy"].mean(), abs=FLOAT_TOLERANCE)


def test_pivot_needs_two_axes(results: Results) -> None:
    with pytest.raises(SpecError, match="pivot table needs exactly two"):
        results.pivot()


def test_generalization_gap_is_train_minus_test_accuracy(results: Results) -> None:
    gap = results.generalization_gap().set_index(["arm", "backend"])
    assert gap.loc[("base", "torch"), "metric"] == "accuracy_gap"
    assert gap.loc[("base", "torch"), "mean"] == pytest.approx(0.05, abs=1e-9)  # train accuracy = test + 0.05


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"referece": "base"}, "report: unknown report option 'referece'. Did you mean 'reference'?"),
        ({"reference": "bse"}, "report.reference: 'bse' is not an arm of this suite. Did you mean 'base'?"),
        ({"metric": "test_acuracy"}, "report.metric: unknown metric 'test_acuracy'. Did you mean 'test_accuracy'?"),
        ({"targets": {"test_accuracy": "high"}}, "report.targets.test_accuracy: expected a finite number"),
        ({"targets": [0.9]}, "report.targets: expected a mapping of metric to threshold"),
        ([1, 2], "report: expected a mapping"),
    ],
    ids=[
        "unknown-key",
        "reference-not-an-arm",
        "unknown-metric",
        "target-not-a-number",
        "targets-not-a-mapping",
        "not-a-mapping",
    ],
)
def test_report_option_errors_name_the_key(options, message) -> None:
    with pytest.raises(SpecError) as error:
        check_report_options(options, ("base", "better"))
    assert str(error.value).startswith(message)


def test_metric_not_recorded_is_an_error() -> None:
    trials, metrics = hand_frames()
    with pytest.raises(SpecError, match=r"report.metric: unknown metric 'test_r2'.*Expected one of: .*test_accuracy"):
        Results(trials, metrics, ("base", "better"), ("optimizer",), name="x", report_options={"metric": "test_r2"})


def test_default_metric_is_test_loss_for_regression() -> None:
    trials, metrics = hand_frames()
    metrics = metrics.replace({"metric": {"test_accuracy": "test_r2", "train_accuracy": "train_r2"}})
    regression = Results(trials, metrics, ("base", "better"), ("optimizer",), name="r")
    assert regression.task == "regression" and regression.primary_metric == "test_loss"


# -- outputs ----------------------------------------------------------------------------------


def test_write_csv_writes_every_table(results: Results, tmp_path: Path) -> None:
    written = results.write_csv(tmp_path)
    names = {path.name for path in written}
    expected = {
        "epochs",
        "final",
        "summary",
        "comparisons",
        "backend_deltas",
        "time_to_target",
        "time_to_target_summary",
    }
    assert {f"{stem}.csv" for stem in expected} <= names
    assert ({f"{stem}.parquet" for stem in expected} <= names) == parquet_available()
    summary = pd.read_csv(tmp_path / "summary.csv")
    pd.testing.assert_series_equal(summary["mean"], results.summary()["mean"], check_exact=False, rtol=1e-12)
    assert len(pd.read_csv(tmp_path / "epochs.csv")) == len(results.epochs())


def test_summary_text_lists_every_arm_and_backend(results: Results) -> None:
    text = results.summary_text()
    lines = text.splitlines()
    assert lines[0].startswith("hand: test_accuracy, mean ± 95% CI")
    assert lines[1].split() == [
        "arm",
        "backend",
        "n",
        "test_accuracy",
        "train_loss",
        "train_s",
        "ok/div/fail/time",
        "torch",
        "-",
        "this",
    ]
    rows = {tuple(line.split()[:2]): line for line in lines[2:]}
    assert set(rows) == set(FINAL_ACCURACY)
    assert rows[("base", "keras")].split()[2] == "3" and "3/0/1/0" in rows[("base", "keras")]
    mean = np.mean(list(ok_finals("better", "torch").values()))
    assert f"{mean:.4g} ± " in rows[("better", "torch")]
    # The framework delta (torch - keras, paired by seed) sits on the keras rows only.
    deltas = results.backend_deltas(["test_accuracy"]).set_index("arm")
    delta = deltas.loc["better", "mean_difference"]
    keras_row = rows[("better", "keras")]
    status = next(token for token in keras_row.split() if token.count("/") == 3)
    assert keras_row.split(status, 1)[1].split()[0] == f"{delta:.4g}"
    assert rows[("better", "torch")].endswith("0/0/0")


def test_results_from_a_real_store(tmp_path: Path) -> None:
    """The store's own frames (NaN stored as NULL, JSON columns) go through Results unchanged."""
    from harness.adapters.loop import TrialResult
    from harness.spec import (
        DatasetSpec,
        RegularizerSpec,
        TrainingSpec,
        Trial,
        TrialSpec,
        resolve_component,
        resolve_model,
    )
    from harness.store import Store

    with Store(tmp_path) as store:
        for arm, lr in (("slow", 0.01), ("fast", 0.1)):
            for seed in range(3):
                spec = TrialSpec(
                    dataset=DatasetSpec("iris"),
                    model=resolve_model({"mlp": {"hidden": [4]}}, num_outputs=3),
                    loss=resolve_component("loss", "cross_entropy", "loss"),
                    optimizer=resolve_component("optimizer", {"name": "sgd", "lr": lr}, "optimizer"),
                    initializer=resolve_component("initializer", "he_normal", "initializer"),
                    regularizer=RegularizerSpec(),
                    training=TrainingSpec(epochs=2, batch_size=16),
                    seed=seed,
                    backend="torch",
                )
                diverged = arm == "fast" and seed == 2
                rows = [(epoch, "test_accuracy", 0.3 + lr * epoch + 0.01 * seed) for epoch in range(3 - diverged)]
                rows += [(1, "minibatch_loss", 1.0)] + (
                    [(2, "minibatch_loss", math.nan)] if diverged else [(2, "minibatch_loss", 0.5)]
                )
                result = TrialResult(
                    status="diverged" if diverged else "ok",
                    metrics=rows,
                    train_seconds=1.0,
                    epochs_completed=1 if diverged else 2,
                    diverged_epoch=2 if diverged else None,
                )
                store.record(Trial("unit", arm, (("optimizer.lr", str(lr)),), spec), result)
        trials = store.trials_frame()
        metrics = store.metrics_frame()
    trials["optimizer.lr"] = [json.loads(cell)["optimizer.lr"] for cell in trials["cell"]]
    stored = Results(
        trials, metrics, ("slow", "fast"), ("optimizer.lr",), name="unit", report_options={"reference": "slow"}
    )
    row = stored.comparisons().iloc[0]
    assert row["n_pairs"] == 2 and row["mean_difference"] == pytest.approx(2 * (0.1 - 0.01), abs=1e-12)
    assert stored.summary().set_index(["arm", "metric"]).loc[("fast", "test_accuracy"), "n_diverged"] == 1
