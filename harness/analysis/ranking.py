"""Which arm is best across datasets: ranks per dataset, the Friedman test and its post-hoc tests.

The procedure of Demsar 2006 ("Statistical comparisons of classifiers over multiple data sets",
JMLR 7), for k arms measured on N datasets:

1. per dataset, each arm's score is the mean of the primary metric over its ok seeds;
2. arms are ranked within each dataset (1 = best, in the metric's direction from
   `harness.measures`; ties share the average of the ranks they span);
3. the Friedman test asks whether the mean ranks differ more than chance would make them:
   chi2_F = 12N / (k(k+1)) * (sum_j R_j^2 - k(k+1)^2 / 4), divided by the tie correction
   1 - sum(t^3 - t) / (N k (k^2 - 1)) (the statistic of scipy.stats.friedmanchisquare, which
   needs k >= 3, so it is computed here for k = 2 too). Its chi-square p is conservative;
   Demsar recommends the Iman-Davenport form F_F = (N-1) chi2_F / (N(k-1) - chi2_F), F-distributed
   with (k-1, (k-1)(N-1)) degrees of freedom, and THAT p decides `significant`;
4. Nemenyi, all pairs: two arms differ when their mean ranks differ by more than the critical
   difference CD = q_alpha * sqrt(k(k+1) / (6N)), q_alpha the studentized range quantile
   (infinite degrees of freedom) over sqrt(2) (scipy.stats.studentized_range);
5. Holm against a control arm (the suite's reference): z = (R_arm - R_control) / sqrt(k(k+1) / (6N)),
   two-sided normal p, Holm's step-down over the k - 1 comparisons.

`autorank` (Herbold 2020) runs the same Friedman/Nemenyi pipeline, but it needs at least five
datasets, picks a repeated-measures ANOVA instead when its normality tests pass, has no Holm
against a control and draws with pyplot; hence scipy here (the tests check the two agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.statistics import holm
from harness.errors import HarnessError
from harness.measures import OK, is_higher_better

if TYPE_CHECKING:
    from harness.analysis import Results

DEFAULT_ALPHA = 0.05
DATASET_FIELD = "dataset"  # a grid axis rooted here varies the dataset (`dataset`, `dataset.name`, ...)


class RankingError(HarnessError):
    """Arms cannot be ranked across datasets (fewer than 2 datasets or 2 arms, missing scores)."""


@dataclass(frozen=True)
class Ranking:
    """The arms' ranks across datasets and the tests on them (see the module docstring).

    scores: rows datasets, columns arms: each arm's mean metric on each dataset.
    ranks: the same shape: rank within the dataset, 1 = best, ties averaged.
    mean_ranks: arm -> mean rank over datasets, best (lowest) first.
    nemenyi: one row per pair (arm, versus): rank_difference (arm minus versus), p_value, significant.
    holm: one row per arm but the control: rank_difference (arm minus control), z, p_value, p_holm,
        significant; empty when there is no control.
    dropped: datasets left out because an arm had no ok seed on them.
    """

    metric: str
    higher_is_better: bool
    alpha: float
    scores: pd.DataFrame
    ranks: pd.DataFrame
    mean_ranks: pd.Series
    friedman_chi2: float
    friedman_p: float
    iman_davenport_f: float
    iman_davenport_p: float
    critical_difference: float
    nemenyi: pd.DataFrame
    control: str | None
    holm: pd.DataFrame
    dropped: tuple[str, ...] = ()

    @property
    def num_datasets(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_arms(self) -> int:
        return int(self.scores.shape[1])

    @property
    def significant(self) -> bool:
        """True when the Iman-Davenport test rejects 'every arm ranks the same' at `alpha`."""
        return bool(self.iman_davenport_p < self.alpha)

    def cliques(self) -> list[tuple[str, ...]]:
        """Maximal runs of arms (in mean-rank order) whose mean ranks lie within CD of each other:
        the bars of a critical-difference diagram. Runs of one arm are left out."""
        names = list(self.mean_ranks.index)
        values = self.mean_ranks.to_numpy()
        found: list[tuple[str, ...]] = []
        furthest = -1  # the last arm of the previous run: a run ending there is inside it
        for start in range(len(names)):
            end = start
            while end + 1 < len(names) and values[end + 1] - values[start] <= self.critical_difference:
                end += 1
            if end > start and end > furthest:
                found.append(tuple(names[start : end + 1]))
                furthest = end
        return found


def rank_within_datasets(scores: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Rank the arms (columns) within each dataset (row): 1 = best, ties get the average rank."""
    return scores.rank(axis=1, ascending=not higher_is_better, method="average")


def critical_difference(num_arms: int, num_datasets: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks: q_alpha * sqrt(k(k+1) / (6N)) (Demsar 2006, section 3.2.2).

    q_alpha is the studentized range quantile for k groups and infinite degrees of freedom divided
    by sqrt(2): 2.569 for k = 4 at alpha 0.05, as Demsar's table 5a gives.
    """
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, num_arms, np.inf)) / math.sqrt(2)
    return q_alpha * _rank_standard_error(num_arms, num_datasets)


def _rank_standard_error(num_arms: int, num_datasets: int) -> float:
    return math.sqrt(num_arms * (num_arms + 1) / (6 * num_datasets))


def friedman_statistic(ranks: pd.DataFrame) -> tuple[float, float]:
    """(chi2_F with the tie correction, its chi-square p) from within-dataset ranks (rows datasets).

    Equals scipy.stats.friedmanchisquare for k >= 3; every rank tied everywhere gives (0, 1).
    """
    num_datasets, num_arms = ranks.shape
    values = ranks.to_numpy(dtype=np.float64)
    rank_sums = values.sum(axis=0)
    uncorrected = 12.0 / (num_datasets * num_arms * (num_arms + 1)) * float(
        np.sum(rank_sums**2)
    ) - 3.0 * num_datasets * (num_arms + 1)
    tie_terms = 0.0
    for row in values:
        _, counts = np.unique(row, return_counts=True)
        tie_terms += float(np.sum(counts.astype(np.float64) ** 3 - counts))
    correction = 1.0 - tie_terms / (num_datasets * num_arms * (num_arms**2 - 1))
    if correction <= 0:  # every dataset ties every arm: no evidence of any difference
        return 0.0, 1.0
    chi2 = max(uncorrected / correction, 0.0)
    return chi2, float(stats.chi2.sf(chi2, num_arms - 1))


def iman_davenport(chi2: float, num_arms: int, num_datasets: int) -> tuple[float, float]:
    """(F_F, p) of the Iman-Davenport correction of the Friedman statistic (Demsar 2006, section 3.2.2)."""
    denominator = num_datasets * (num_arms - 1) - chi2
    if denominator <= 0:  # every dataset ranks the arms identically: the largest possible agreement
        return math.inf, 0.0
    f_value = (num_datasets - 1) * chi2 / denominator
    return f_value, float(stats.f.sf(f_value, num_arms - 1, (num_arms - 1) * (num_datasets - 1)))


def rank_arms(
    scores: pd.DataFrame,
    *,
    higher_is_better: bool,
    alpha: float = DEFAULT_ALPHA,
    control: str | None = None,
    metric: str = "",
    dropped: tuple[str, ...] = (),
) -> Ranking:
    """Rank arms across datasets and test the ranks (Friedman, Iman-Davenport, Nemenyi, Holm vs `control`).

    Args:
        scores: rows datasets, columns arms, one score each (e.g. the mean test accuracy over seeds).
        higher_is_better: the metric's direction (`harness.measures.is_higher_better`).
        alpha: the level of every test and of the critical difference.
        control: the arm the Holm comparisons are made against (None: no Holm table).
        metric: the metric's name, for messages.
        dropped: datasets the caller left out, carried into the result.

    Raises:
        RankingError: fewer than 2 datasets or 2 arms, a missing score, or an unknown control.
    """
    what = f" of {metric}" if metric else ""
    if scores.shape[0] < 2 or scores.shape[1] < 2:
        raise RankingError(
            f"ranking arms across datasets needs scores{what} of at least 2 arms on at least 2 datasets, got "
            f"{scores.shape[1]} arm(s) ({', '.join(map(str, scores.columns)) or 'none'}) on {scores.shape[0]} "
            f"dataset(s) ({', '.join(map(str, scores.index)) or 'none'}). Fix: give the suite a grid axis over "
            "`dataset` with 2 or more datasets and another axis with 2 or more variants."
        )
    missing = scores.isna()
    if missing.any().any():
        rows, columns = (indices.tolist() for indices in np.nonzero(missing.to_numpy()))
        where = ", ".join(f"{scores.columns[column]} on {scores.index[row]}" for row, column in zip(rows, columns))
        raise RankingError(
            f"ranking arms across datasets needs a score{what} for every arm on every dataset; missing: {where}. "
            "Fix: leave those datasets out, or rerun the trials that did not finish ok."
        )
    if control is not None and control not in scores.columns:
        raise RankingError(
            f"the control arm {control!r} is not among the ranked arms ({', '.join(map(str, scores.columns))})."
        )
    num_datasets, num_arms = scores.shape
    ranks = rank_within_datasets(scores, higher_is_better)
    mean_ranks = ranks.mean(axis=0).sort_values(kind="stable")
    chi2, chi2_p = friedman_statistic(ranks)
    f_value, f_p = iman_davenport(chi2, num_arms, num_datasets)
    difference = critical_difference(num_arms, num_datasets, alpha)
    error = _rank_standard_error(num_arms, num_datasets)
    return Ranking(
        metric=metric,
        higher_is_better=higher_is_better,
        alpha=alpha,
        scores=scores,
        ranks=ranks,
        mean_ranks=mean_ranks,
        friedman_chi2=chi2,
        friedman_p=chi2_p,
        iman_davenport_f=f_value,
        iman_davenport_p=f_p,
        critical_difference=difference,
        nemenyi=_nemenyi(mean_ranks, num_arms, error, difference),
        control=control,
        holm=_holm_versus_control(mean_ranks, control, error, alpha),
        dropped=dropped,
    )


def _nemenyi(mean_ranks: pd.Series, num_arms: int, error: float, difference: float) -> pd.DataFrame:
    """All pairs in mean-rank order; p from the studentized range of |R_i - R_j| / SE * sqrt(2)."""
    rows = []
    names = list(mean_ranks.index)
    for first_index, first in enumerate(names):
        for second in names[first_index + 1 :]:
            gap = float(mean_ranks[first] - mean_ranks[second])
            p_value = float(stats.studentized_range.sf(abs(gap) / error * math.sqrt(2), num_arms, np.inf))
            rows.append(
                {
                    "arm": first,
                    "versus": second,
                    "rank_difference": gap,
                    "p_value": min(p_value, 1.0),
                    "significant": abs(gap) > difference,
                }
            )
    return pd.DataFrame(rows, columns=["arm", "versus", "rank_difference", "p_value", "significant"])


def _holm_versus_control(mean_ranks: pd.Series, control: str | None, error: float, alpha: float) -> pd.DataFrame:
    columns = ["arm", "control", "rank_difference", "z", "p_value", "p_holm", "significant"]
    if control is None:
        return pd.DataFrame(columns=columns)
    others = [arm for arm in mean_ranks.index if arm != control]
    gaps = np.array([mean_ranks[arm] - mean_ranks[control] for arm in others], dtype=np.float64)
    z_values = gaps / error
    p_values = 2.0 * stats.norm.sf(np.abs(z_values))
    adjusted = holm(p_values)
    return pd.DataFrame(
        {
            "arm": others,
            "control": control,
            "rank_difference": gaps,
            "z": z_values,
            "p_value": p_values,
            "p_holm": adjusted,
            "significant": adjusted < alpha,
        },
        columns=columns,
    )


# -- from a suite's results ---------------------------------------------------------------------


def dataset_axis(axes: Sequence[str]) -> str | None:
    """The first grid axis that varies the dataset (`dataset`, `dataset.name`, ...), else None."""
    for axis in axes:
        if axis == DATASET_FIELD or axis.startswith((f"{DATASET_FIELD}.", f"{DATASET_FIELD}[")):
            return axis
    return None


def can_rank(results: Results) -> bool:
    """True when the suite has a dataset axis with 2 or more datasets and other axes with 2 or more variants."""
    axis = dataset_axis(results.axes)
    if axis is None or len(results.axes) < 2:
        return False
    labels = results.arm_labels()
    others = [name for name in results.axes if name != axis]
    return labels[axis].nunique() >= 2 and len(labels.drop_duplicates(others)) >= 2


def dataset_scores(results: Results, backend: str, metric: str | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Mean final `metric` (default: the primary one) over ok seeds, rows datasets, columns arms across datasets.

    An arm across datasets is a cell of the other axes, named by its labels joined with ','
    (`adam`, or `adam,lr=0.1`). Datasets where some arm has no ok seed are left out (Friedman
    needs complete blocks) and returned second, in suite order.

    Raises:
        RankingError: the suite has no dataset axis.
    """
    axis = dataset_axis(results.axes)
    if axis is None:
        raise RankingError(
            f"suite {results.name!r} has no grid axis over `dataset` (its axes: {', '.join(results.axes) or 'none'}), "
            "so there is nothing to rank across. Fix: add one, e.g. grid: {dataset: [digits, iris, wine]}."
        )
    metric = metric or results.primary_metric
    others = [name for name in results.axes if name != axis]
    order = results.variant_order()
    final = results.final()
    final = final[(final["status"] == OK) & (final["backend"] == backend)]
    final = final.assign(_across=_across_names(final, others))
    scores = final.groupby([axis, "_across"], sort=False)[metric].mean().unstack("_across")
    arms = list(dict.fromkeys(_across_names(results.arm_labels(), others)))
    scores = scores.reindex(index=order[axis], columns=arms)
    scores.index.name, scores.columns.name = axis, None
    complete = scores.notna().all(axis=1)
    return scores[complete], tuple(str(name) for name in scores.index[~complete])


def _across_names(frame: pd.DataFrame, others: list[str]) -> list[str]:
    if frame.empty:
        return []
    return [",".join(str(value) for value in row) for row in frame[others].itertuples(index=False, name=None)]


def control_arm(results: Results) -> str | None:
    """The suite's reference arm seen across datasets: its labels on every axis but the dataset axis."""
    axis = dataset_axis(results.axes)
    labels = results.arm_labels().set_index("arm")
    if axis is None or results.reference not in labels.index:
        return None
    others = [name for name in results.axes if name != axis]
    return ",".join(str(labels.at[results.reference, name]) for name in others)


def rank_results(
    results: Results,
    alpha: float = DEFAULT_ALPHA,
    metric: str | None = None,
    backends: Sequence[str] | None = None,
) -> dict[str, Ranking]:
    """Per backend (default: every backend of the suite), the ranking of the suite's arms across its
    datasets on `metric` (default: the primary one).

    Raises:
        RankingError: no dataset axis, fewer than 2 datasets with every arm ok, or fewer than 2 arms.
    """
    metric = metric or results.primary_metric
    control = control_arm(results)
    rankings = {}
    for backend in backends or results.backends:
        scores, dropped = dataset_scores(results, backend, metric)
        rankings[backend] = rank_arms(
            scores,
            higher_is_better=is_higher_better(metric),
            alpha=alpha,
            control=control if control in scores.columns else None,
            metric=metric,
            dropped=dropped,
        )
    return rankings
