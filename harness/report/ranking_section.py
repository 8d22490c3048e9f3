"""The report's "Across datasets" section: mean ranks, the Friedman test, Nemenyi's CD and the CD diagram.

It applies only when the suite has a grid axis over `dataset` with 2 or more datasets and other
axes with 2 or more variants (`harness.analysis.ranking.can_rank`); otherwise it adds nothing.
One table and one diagram per backend, ranking the arms across datasets on the primary metric
(Demsar 2006; the statistics are in `harness.analysis.ranking`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.analysis.ranking import DEFAULT_ALPHA, Ranking, RankingError, can_rank, rank_results
from harness.analysis.text import format_number
from harness.report.cd_diagram import critical_difference_diagram
from harness.report.gallery import ReportFigure
from harness.report.sections import DisplayTable

if TYPE_CHECKING:
    from harness.analysis import Results


def _p_text(value: float) -> str:
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def _rankings(results: Results) -> dict[str, Ranking]:
    """Per backend, its ranking; backends whose complete datasets are too few to rank are left out."""
    if not can_rank(results):
        return {}
    rankings = {}
    for backend in results.backends:
        try:
            rankings.update(rank_results(results, DEFAULT_ALPHA, backends=(backend,)))
        except RankingError:  # e.g. every trial of one arm failed: the summary tables already say so
            continue
    return rankings


def tests_text(ranking: Ranking) -> str:
    """One sentence: the Friedman and Iman-Davenport tests, the CD, and what they decide."""
    verdict = (
        "the arms' ranks differ (Iman-Davenport p < alpha)"
        if ranking.significant
        else "no evidence that the arms' ranks differ (Iman-Davenport p >= alpha)"
    )
    dropped = f" Left out (an arm had no ok seed there): {', '.join(ranking.dropped)}." if ranking.dropped else ""
    return (
        f"k = {ranking.num_arms} arms on N = {ranking.num_datasets} datasets: Friedman chi2 = "
        f"{format_number(ranking.friedman_chi2)} (tie-corrected), p = {_p_text(ranking.friedman_p)}; "
        f"Iman-Davenport F = {format_number(ranking.iman_davenport_f)}, p = {_p_text(ranking.iman_davenport_p)}: "
        f"{verdict} at alpha = {ranking.alpha}. Nemenyi critical difference CD = "
        f"{format_number(ranking.critical_difference)} mean ranks.{dropped}"
    )


def ranking_table(ranking: Ranking, backend: str) -> DisplayTable:
    """Per arm, best first: mean rank, Holm vs the control, and its mean metric (rank) on every dataset."""
    versus_control = {row["arm"]: row for row in ranking.holm.to_dict("records")}
    datasets = [str(name) for name in ranking.scores.index]
    scores, ranks = ranking.scores.to_dict(), ranking.ranks.to_dict()  # arm -> dataset -> value
    rows = []
    for arm, mean_rank in ranking.mean_ranks.items():
        if arm in versus_control:
            row = versus_control[arm]
            versus = [
                format_number(float(row["rank_difference"])),
                _p_text(float(row["p_holm"])),
                "differs" if row["significant"] else "-",
            ]
        else:
            versus = ["control" if arm == ranking.control else "-", "-", "-"]
        cells = [
            f"{format_number(float(scores[arm][dataset]))} ({format_number(float(ranks[arm][dataset]))})"
            for dataset in ranking.scores.index
        ]
        rows.append((str(arm), format_number(float(mean_rank)), *versus, *cells))
    direction = "higher" if ranking.higher_is_better else "lower"
    control = f" vs the control {ranking.control}" if ranking.control else ""
    return DisplayTable(
        f"across_datasets_{backend}",
        f"Across datasets ({backend})",
        f"Mean {ranking.metric} over ok seeds per dataset, ranked within each dataset (1 = best, {direction} is "
        f"better, ties averaged), arms by mean rank. {tests_text(ranking)} Rank difference{control}: z test of "
        "the mean ranks, p Holm-corrected over the arms (Demsar 2006).",
        ("arm", "mean rank", "rank diff vs control", "p (Holm)", "verdict", *datasets),
        tuple(rows),
    )


def across_datasets_tables(results: Results) -> list[DisplayTable]:
    """The section's tables (one per backend); none when the suite does not vary the dataset."""
    return [ranking_table(ranking, backend) for backend, ranking in _rankings(results).items()]


def across_datasets_figures(results: Results) -> list[ReportFigure]:
    """The critical-difference diagram per backend; none when the suite does not vary the dataset."""
    found = []
    for backend, ranking in _rankings(results).items():
        figure = critical_difference_diagram(
            ranking.mean_ranks,
            ranking.critical_difference,
            ranking.cliques(),
            title=f"Critical difference diagram: mean rank of {ranking.metric} across {ranking.num_datasets} "
            f"datasets ({backend})",
        )
        found.append(
            ReportFigure(
                f"critical_difference_{backend}",
                f"Across datasets: critical difference ({backend})",
                f"Mean rank over datasets (1 = best). Arms joined by a bar differ by less than the critical "
                f"difference (Nemenyi, alpha = {ranking.alpha}). {tests_text(ranking)}",
                figure,
            )
        )
    return found
