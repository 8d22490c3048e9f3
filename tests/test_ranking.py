"""Ranking arms across datasets (harness.analysis.ranking) and the report's "Across datasets" section.

Golden values are Demsar 2006 (JMLR 7, "Statistical comparisons of classifiers over multiple data
sets"): the critical values q_alpha of table 5 and the worked example of section 3.2 (k = 4, N = 14:
chi2_F = 9.28, F_F = 3.69, CD = 1.25 at alpha 0.05 and 1.12 at 0.10), and small tables whose
statistics are computed by hand below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis import Results
from harness.analysis.ranking import (
    RankingError,
    can_rank,
    control_arm,
    critical_difference,
    dataset_scores,
    friedman_statistic,
    iman_davenport,
    rank_arms,
    rank_results,
    rank_within_datasets,
)

# Demsar 2006, table 5: q_alpha for the Nemenyi test, k = 2 .. 10 (three decimals in the paper).
Q_05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
Q_10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]


@pytest.mark.parametrize("alpha, table", [(0.05, Q_05), (0.10, Q_10)], ids=["alpha=0.05", "alpha=0.10"])
def test_critical_values_match_demsar_table_5(alpha: float, table: list[float]) -> None:
    for num_arms, q_alpha in enumerate(table, start=2):
        num_datasets = 7
        standard_error = math.sqrt(num_arms * (num_arms + 1) / (6 * num_datasets))
        # the paper prints 3 decimals, some truncated (2.343 for 2.3437): 1e-3 is its precision
        assert critical_difference(num_arms, num_datasets, alpha) / standard_error == pytest.approx(q_alpha, abs=1e-3)


def test_demsar_worked_example() -> None:
    # Section 3.2: four classifiers on 14 datasets, mean ranks 3.143, 2.000, 2.893, 1.964 -> chi2_F 9.28,
    # F_F 3.69 (critical F(3, 39) = 2.85 at 0.05), CD 1.25 at alpha 0.05 and 1.12 at 0.10.
    assert iman_davenport(9.28, 4, 14)[0] == pytest.approx(3.69, abs=5e-3)
    assert stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=5e-3)  # the paper's critical value
    assert iman_davenport(9.28, 4, 14)[1] < 0.05
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)
    assert critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=5e-3)


def test_friedman_by_hand_without_ties() -> None:
    # ranks (1,2,3), (1,3,2), (2,1,3): sums 4, 6, 8; chi2 = 12/(3*3*4) * (16+36+64) - 3*3*4 = 8/3;
    # with 2 degrees of freedom the chi-square tail is exp(-x/2). F_F = 2 * (8/3) / (6 - 8/3) = 1.6 on
    # (2, 4) degrees of freedom, whose tail is (1 + 1.6 / 2) ** -2.
    ranks = pd.DataFrame([[1, 2, 3], [1, 3, 2], [2, 1, 3]], columns=["a", "b", "c"], dtype=float)
    chi2, p_value = friedman_statistic(ranks)
    assert chi2 == pytest.approx(8 / 3, rel=1e-12)
    assert p_value == pytest.approx(math.exp(-4 / 3), rel=1e-12)
    f_value, f_p = iman_davenport(chi2, 3, 3)
    assert f_value == pytest.approx(1.6, rel=1e-12)
    assert f_p == pytest.approx(1.8**-2, rel=1e-12)


def test_friedman_tie_correction_by_hand_and_as_scipy() -> None:
    # ranks (1.5,1.5,3), (1,2,3), (1,2,3): sums 3.5, 5.5, 9; uncorrected 123.5/3 - 36 = 31/6; one pair tied:
    # correction 1 - (2^3 - 2) / (3 * 3 * 8) = 11/12, so chi2 = (31/6) / (11/12) = 62/11.
    scores = pd.DataFrame([[0.9, 0.9, 0.5], [0.9, 0.8, 0.7], [0.6, 0.5, 0.4]], columns=["a", "b", "c"])
    ranks = rank_within_datasets(scores, higher_is_better=True)
    assert ranks.to_numpy().tolist() == [[1.5, 1.5, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    chi2, p_value = friedman_statistic(ranks)
    assert chi2 == pytest.approx(62 / 11, rel=1e-12)
    scipy_result = stats.friedmanchisquare(*scores.T.to_numpy())
    assert chi2 == pytest.approx(scipy_result.statistic, rel=1e-12)
    assert p_value == pytest.approx(scipy_result.pvalue, rel=1e-12)


def test_friedman_equals_scipy_on_random_tables_with_ties() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = pd.DataFrame(rng.integers(0, 4, size=(6, 5)).astype(float))  # many ties
        if (scores.nunique(axis=1) == 1).all():
            continue
        chi2, p_value = friedman_statistic(rank_within_datasets(scores, higher_is_better=False))
        expected = stats.friedmanchisquare(*scores.T.to_numpy())
        assert chi2 == pytest.approx(expected.statistic, rel=1e-10)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-10)


def consistent_scores(num_datasets: int = 4) -> pd.DataFrame:
    """Arm a always best, b second, c worst, on every dataset (accuracies)."""
    rows = [[0.9 - 0.01 * index, 0.8 - 0.01 * index, 0.7 - 0.01 * index] for index in range(num_datasets)]
    return pd.DataFrame(rows, index=[f"d{index}" for index in range(num_datasets)], columns=["a", "b", "c"])


def test_rank_arms_by_hand() -> None:
    # k = 3, N = 4, ranks 1, 2, 3 everywhere. SE = sqrt(3*4 / (6*4)) = sqrt(1/2). Control c:
    # z(a) = (1 - 3) / SE = -2 sqrt 2, z(b) = -sqrt 2; Holm: 2 * p(a) first, then max(that, p(b)).
    ranking = rank_arms(consistent_scores(), higher_is_better=True, control="c", metric="test_accuracy")
    assert list(ranking.mean_ranks.index) == ["a", "b", "c"]
    assert ranking.mean_ranks.tolist() == [1.0, 2.0, 3.0]
    assert ranking.friedman_chi2 == pytest.approx(8.0)  # the largest possible: N (k - 1)
    assert ranking.friedman_p == pytest.approx(math.exp(-4.0))
    assert ranking.iman_davenport_f == math.inf and ranking.iman_davenport_p == 0.0
    assert ranking.significant
    assert ranking.critical_difference == pytest.approx(2.343 * math.sqrt(0.5), abs=1e-3)
    holm = ranking.holm.set_index("arm")
    p_a = 2 * stats.norm.sf(2 * math.sqrt(2))
    p_b = 2 * stats.norm.sf(math.sqrt(2))
    assert p_a == pytest.approx(0.004678, abs=1e-6) and p_b == pytest.approx(0.157299, abs=1e-6)
    assert holm.at["a", "z"] == pytest.approx(-2 * math.sqrt(2))
    assert holm.at["a", "p_holm"] == pytest.approx(2 * p_a)
    assert holm.at["b", "p_holm"] == pytest.approx(p_b)
    assert holm["significant"].tolist() == [True, False]
    nemenyi = ranking.nemenyi.set_index(["arm", "versus"])
    # |a - c| = 2 > CD 1.657, the adjacent pairs (1) are not
    assert nemenyi["significant"].to_dict() == {("a", "b"): False, ("a", "c"): True, ("b", "c"): False}
    assert nemenyi.at[("a", "c"), "p_value"] < 0.05 < nemenyi.at[("a", "b"), "p_value"]
    assert ranking.cliques() == [("a", "b"), ("b", "c")]


def test_lower_is_better_reverses_the_ranks() -> None:
    losses = consistent_scores()
    ranking = rank_arms(losses, higher_is_better=False)
    assert list(ranking.mean_ranks.index) == ["c", "b", "a"]
    assert ranking.holm.empty  # no control given


def test_one_clique_when_nothing_differs() -> None:
    scores = pd.DataFrame([[0.9, 0.8, 0.7], [0.7, 0.9, 0.8], [0.8, 0.7, 0.9]], columns=["a", "b", "c"])
    ranking = rank_arms(scores, higher_is_better=True)
    assert ranking.mean_ranks.tolist() == [2.0, 2.0, 2.0]
    assert ranking.friedman_chi2 == 0.0 and ranking.friedman_p == 1.0
    assert not ranking.significant
    assert ranking.cliques() == [("a", "b", "c")]


@pytest.mark.parametrize(
    "shape, message",
    [((1, 3), "at least 2 arms on at least 2 datasets, got 3 arm(s)"), ((3, 1), "got 1 arm(s)"), ((0, 0), "none")],
    ids=["one-dataset", "one-arm", "empty"],
)
def test_too_few_datasets_or_arms_is_a_clear_error(shape: tuple[int, int], message: str) -> None:
    scores = pd.DataFrame(np.ones(shape), columns=[f"arm{i}" for i in range(shape[1])])
    with pytest.raises(RankingError, match=r"Fix: give the suite a grid axis over `dataset`") as caught:
        rank_arms(scores, higher_is_better=True)
    assert message in str(caught.value)


def test_missing_score_and_unknown_control_are_clear_errors() -> None:
    scores = consistent_scores()
    scores.loc["d1", "b"] = np.nan
    with pytest.raises(RankingError, match=r"missing: b on d1\. Fix"):
        rank_arms(scores, higher_is_better=True)
    with pytest.raises(RankingError, match=r"control arm 'z' is not among the ranked arms \(a, b, c\)"):
        rank_arms(consistent_scores(), higher_is_better=True, control="z")


# -- from Results ---------------------------------------------------------------------------------

DATASETS = ("digits", "iris", "wine", "mnist1d")
OPTIMIZERS = ("sgd", "momentum", "adam")
# test accuracy per dataset and optimizer: adam best on three datasets, momentum on iris; sgd always last
ACCURACY = {
    "digits": (0.80, 0.90, 0.95),
    "iris": (0.70, 0.97, 0.90),
    "wine": (0.60, 0.85, 0.92),
    "mnist1d": (0.30, 0.50, 0.60),
}


def results_frames(missing: tuple[str, str] | None = None, axes: tuple[str, ...] = ("dataset", "optimizer")) -> Results:
    """Results of a dataset x optimizer grid, 2 seeds; `missing` = (dataset, optimizer) whose trials failed."""
    trials, metrics, arms = [], [], []
    for dataset in DATASETS:
        for optimizer, accuracy in zip(OPTIMIZERS, ACCURACY[dataset]):
            arm = f"{dataset},{optimizer}"
            arms.append(arm)
            for seed in (0, 1):
                trial_hash = f"{arm}-{seed}"
                failed = missing == (dataset, optimizer)
                labels = dict(zip(axes, (dataset, optimizer)))
                trials.append(
                    {"hash": trial_hash, "arm": arm, "backend": "torch", "seed": seed, **labels}
                    | {"status": "failed" if failed else "ok"}
                )
                if not failed:
                    value = accuracy + (0.01 if seed else -0.01)
                    metrics += [
                        {"hash": trial_hash, "epoch": 1, "metric": "test_accuracy", "value": value},
                        {"hash": trial_hash, "epoch": 1, "metric": "train_loss", "value": 1 - value},
                    ]
    return Results(
        pd.DataFrame(trials),
        pd.DataFrame(metrics),
        arms,
        axes,
        name="across",
        report_options={"reference": {axes[1]: "sgd"}},
    )


def test_scores_from_results_are_seed_means_per_dataset() -> None:
    results = results_frames()
    assert can_rank(results)
    assert control_arm(results) == "sgd"
    scores, dropped = dataset_scores(results, "torch")
    assert dropped == ()
    assert list(scores.index) == list(DATASETS) and list(scores.columns) == list(OPTIMIZERS)
    for dataset in DATASETS:
        assert scores.loc[dataset].to_numpy() == pytest.approx(ACCURACY[dataset])  # seeds +-0.01 average out
    ranking = rank_results(results)["torch"]
    assert ranking.mean_ranks.to_dict() == {"adam": 1.25, "momentum": 1.75, "sgd": 3.0}
    assert ranking.control == "sgd" and list(ranking.holm["arm"]) == ["adam", "momentum"]


def test_a_dataset_where_an_arm_failed_is_left_out() -> None:
    results = results_frames(missing=("wine", "momentum"))
    scores, dropped = dataset_scores(results, "torch")
    assert dropped == ("wine",) and list(scores.index) == ["digits", "iris", "mnist1d"]
    assert rank_results(results)["torch"].dropped == ("wine",)


def test_without_a_dataset_axis_nothing_is_ranked() -> None:
    results = results_frames(axes=("model", "optimizer"))
    assert not can_rank(results)
    with pytest.raises(RankingError, match=r"no grid axis over `dataset` \(its axes: model, optimizer\)"):
        rank_results(results)


def test_report_section_only_with_a_dataset_axis() -> None:
    pytest.importorskip("matplotlib")
    from harness.report.ranking_section import across_datasets_figures, across_datasets_tables

    tables = across_datasets_tables(results_frames())
    assert [table.title for table in tables] == ["Across datasets (torch)"]
    rows = {row[0]: row for row in tables[0].rows}
    assert list(rows) == ["adam", "momentum", "sgd"]
    assert rows["adam"][1] == "1.25" and rows["sgd"][2] == "control"
    assert rows["sgd"][tables[0].columns.index("iris")] == "0.7 (3)"
    assert "Friedman chi2" in tables[0].caption and "CD = " in tables[0].caption
    figures = across_datasets_figures(results_frames())
    assert [figure.key for figure in figures] == ["critical_difference_torch"]
    texts = [text.get_text() for text in figures[0].figure.findobj(lambda artist: hasattr(artist, "get_text"))]
    assert "adam (1.25)" in texts and "sgd (3.00)" in texts
    assert any(text.startswith("CD = ") for text in texts)
    assert across_datasets_tables(results_frames(axes=("model", "optimizer"))) == []
    assert across_datasets_figures(results_frames(axes=("model", "optimizer"))) == []
