"""Example-level tests: the test split's own sampling error, from per-example predictions.

Seeds vary initialization and batch order, but every trial is scored on the SAME fixed test
examples, so an interval over seeds leaves out the error of that one sample of examples
(accuracy p on n examples has sd sqrt(p(1-p)/n): 0.016 at p=0.55, n=1000). The store keeps each
trial's per-example test predictions (table `predictions`, harness.store); this module tests on them:

    mcnemar_test          two trials on the same examples: McNemar's exact test on the discordant pairs
    two_level_bootstrap   two arms over seeds and examples: an interval for the difference in accuracy
    example_level         both, for two arms of a Results (per seed McNemar, pooled bootstrap interval)

The bootstrap draws seeds with replacement and, in the same replicate, test examples with
replacement. One example draw is shared by every seed of a replicate: the seeds are crossed with
ONE test sample, not each given their own, so drawing examples independently per seed would divide
the test-sample variance by the number of seeds and give an interval that is too narrow.
Resampling both levels counts the per-trial noise (a trial right or wrong on an example by chance)
twice, so the interval is conservative where that noise outweighs per-example effects; with
realistic per-example effects it holds its level (tests/test_examples.py simulates it).

Framework-free: numpy, pandas, statsmodels; `split_labels` loads the dataset (harness.data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar

from harness.errors import SpecError
from harness.measures import OK, TEST_SPLIT

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test of two prediction vectors on the same labelled examples.

    both_right, only_a_right, only_b_right, both_wrong: the 2x2 table of correctness.
    p_value: exact two-sided binomial test of only_a_right vs only_b_right (statsmodels).
    """

    examples: int
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    accuracy_a: float
    accuracy_b: float
    p_value: float

    @property
    def difference(self) -> float:
        """accuracy_a - accuracy_b (= (only_a_right - only_b_right) / examples)."""
        return self.accuracy_a - self.accuracy_b


@dataclass(frozen=True)
class BootstrapInterval:
    """A two-level (seeds, then examples) percentile bootstrap interval for accuracy_a - accuracy_b."""

    difference: float  # the observed mean over seeds of accuracy_a - accuracy_b
    low: float
    high: float
    confidence: float
    seeds: int
    examples: int
    resamples: int


def _correct(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    predictions = np.asarray(predictions).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if predictions.shape != labels.shape:
        raise SpecError(
            f"example-level test: {predictions.shape[0]} predictions for {labels.shape[0]} labels; "
            "expected one prediction per test example of the same dataset. Compare trials of one dataset."
        )
    return predictions.astype(np.int64) == labels.astype(np.int64)


def mcnemar_test(predictions_a: np.ndarray, predictions_b: np.ndarray, labels: np.ndarray) -> McNemarResult:
    """McNemar's exact test for two classifiers' predicted classes on the same examples.

    Only the discordant pairs (one right, the other wrong) carry evidence; under "equally
    accurate" each is equally likely to favour either, so their split is Binomial(n01 + n10, 1/2).
    """
    right_a, right_b = _correct(predictions_a, labels), _correct(predictions_b, labels)
    table = np.array(
        [
            [int(np.sum(right_a & right_b)), int(np.sum(right_a & ~right_b))],
            [int(np.sum(~right_a & right_b)), int(np.sum(~right_a & ~right_b))],
        ]
    )
    # With no discordant pair statsmodels' binomial test gives p = 1: no evidence either way.
    p_value = float(mcnemar(table, exact=True).pvalue)
    count = len(right_a)
    return McNemarResult(
        examples=count,
        both_right=int(table[0, 0]),
        only_a_right=int(table[0, 1]),
        only_b_right=int(table[1, 0]),
        both_wrong=int(table[1, 1]),
        accuracy_a=float(right_a.mean()) if count else float("nan"),
        accuracy_b=float(right_b.mean()) if count else float("nan"),
        p_value=p_value,
    )


def two_level_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    paired: bool = True,
) -> BootstrapInterval:
    """Percentile interval for mean accuracy_a - mean accuracy_b over seeds and test examples.

    Args:
        correct_a, correct_b: (seeds, examples) 0/1 correctness of each arm's trial per seed on
            each test example (the same examples in the same order for every row).
        paired: rows with the same index are the same seed (same initial weights and batch order),
            so one seed draw serves both arms; False draws each arm's seeds apart (then the row
            counts may differ).
        seed: the bootstrap's own random seed (the interval is reproducible).

    Each replicate draws seeds with replacement, and ONE set of examples with replacement shared
    by both arms and every seed (see the module docstring), and computes the difference of the
    mean accuracies; the interval is the (1 -+ confidence)/2 quantiles of the replicates.
    """
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or 0 in a.shape or 0 in b.shape:
        raise SpecError(
            f"two-level bootstrap: correctness arrays of shapes {a.shape} and {b.shape}; expected "
            "(seeds, examples) for each arm with the same, non-zero number of examples."
        )
    if paired and a.shape != b.shape:
        raise SpecError(f"two-level bootstrap: paired arms need the same seeds, got {a.shape[0]} and {b.shape[0]}.")
    if not 0 < confidence < 1:
        raise SpecError(f"two-level bootstrap: confidence={confidence}; expected a value between 0 and 1.")
    generator = np.random.default_rng(seed)
    examples = a.shape[1]
    # Multinomial counts are the bootstrap weights: a replicate's mean is weights @ values / total.
    example_weights = generator.multinomial(examples, np.full(examples, 1.0 / examples), size=resamples)

    def seed_weights(count: int) -> np.ndarray:
        return generator.multinomial(count, np.full(count, 1.0 / count), size=resamples)

    if paired:
        weights_a = weights_b = seed_weights(a.shape[0])
    else:
        weights_a, weights_b = seed_weights(a.shape[0]), seed_weights(b.shape[0])
    # (resamples, seeds) @ (seeds, examples) -> per replicate the seed-weighted correctness per
    # example; then weighted by the example draw.
    mean_a = np.einsum("re,re->r", weights_a @ a, example_weights) / (a.shape[0] * examples)
    mean_b = np.einsum("re,re->r", weights_b @ b, example_weights) / (b.shape[0] * examples)
    replicates = mean_a - mean_b
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return BootstrapInterval(
        difference=float(a.mean() - b.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        seeds=int(min(a.shape[0], b.shape[0])),
        examples=examples,
        resamples=resamples,
    )


@dataclass(frozen=True)
class ExampleLevelComparison:
    """Two arms compared on per-example test predictions: McNemar per shared seed, and the pooled
    two-level bootstrap interval for the difference in accuracy (arm_a - arm_b)."""

    arm_a: str
    arm_b: str
    backend: str
    epoch: str  # 'final' or 'best_validation'
    per_seed: pd.DataFrame  # seed, examples, accuracy_a, accuracy_b, only_a_right, only_b_right, p_value
    interval: BootstrapInterval


def split_labels(spec_json: str, split: str = TEST_SPLIT) -> np.ndarray:
    """The labels of one split of the dataset a stored trial spec (trials.spec, JSON) names (its seed's split,
    when the dataset resplits per seed)."""
    from harness.data import load_dataset  # loaded only here: reading results need not load data
    from harness.spec.types import DatasetSpec

    stored = json.loads(spec_json)
    dataset = load_dataset(DatasetSpec.from_dict(stored["dataset"]), stored.get("seed"))
    return np.asarray(dataset.split(split)[1])


def example_level(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    arm_a: str,
    arm_b: str,
    *,
    labels: np.ndarray | None = None,
    backend: str | None = None,
    epoch: Literal["final", "best_validation"] = "final",
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> ExampleLevelComparison:
    """Compare two arms on their per-example test predictions, paired by seed.

    Args:
        trials: one row per trial with hash, arm, backend, seed, status, spec (Results.trials).
        predictions: Store.predictions_frame() (hash, split, epoch, is_final, is_best_validation, values).
        labels: the test labels; default: loaded from the trials' dataset (split_labels), per seed when
            it resplits per seed.
        backend: which backend's trials; default: the first backend both arms have.
        epoch: the final epoch's predictions, or those of the epoch of least validation loss.

    Raises:
        SpecError: an arm has no ok trial with stored predictions (trials stored before schema
            version 3, sequence and regression tasks have none to compare), or no seed is shared.
    """
    flag = {"final": "is_final", "best_validation": "is_best_validation"}.get(epoch)
    if flag is None:
        raise SpecError(f"example_level: epoch={epoch!r}; expected 'final' or 'best_validation'.")
    kept = predictions[(predictions["split"] == TEST_SPLIT) & predictions[flag]] if len(predictions) else predictions
    values: Mapping[str, Any] = dict(zip(kept["hash"], kept["values"])) if len(kept) else {}
    usable = trials[(trials["status"] == OK) & trials["hash"].isin(list(values))]
    if backend is None:
        shared = set(usable.loc[usable["arm"] == arm_a, "backend"]) & set(usable.loc[usable["arm"] == arm_b, "backend"])
        backend = sorted(shared)[0] if shared else ""
    by_arm = {}
    for arm in (arm_a, arm_b):
        rows = usable[(usable["arm"] == arm) & (usable["backend"] == backend)]
        if rows.empty:
            raise SpecError(
                f"example_level: arm {arm!r} (backend {backend or 'any'!r}) has no ok trial with stored test "
                f"predictions at the {epoch} epoch. Predictions are kept for classification and binary tasks "
                "by harness >= schema version 3: rerun the trials (`harness run`) to record them."
            )
        by_arm[arm] = rows.drop_duplicates("seed").set_index("seed")
    seeds = sorted(set(by_arm[arm_a].index) & set(by_arm[arm_b].index))
    if not seeds:
        raise SpecError(f"example_level: arms {arm_a!r} and {arm_b!r} share no seed; pairing needs the same seeds.")
    label_cache = LabelCache()
    seed_labels = {
        trial_seed: labels if labels is not None else label_cache(str(by_arm[arm_a].loc[trial_seed, "spec"]))
        for trial_seed in seeds
    }
    if np.asarray(values[by_arm[arm_a].loc[seeds[0], "hash"]]).ndim != 1:
        raise SpecError("example_level: these predictions are regression outputs; McNemar needs predicted classes.")
    per_seed = []
    correct_a, correct_b = [], []
    for trial_seed in seeds:
        predicted_a = values[by_arm[arm_a].loc[trial_seed, "hash"]]
        predicted_b = values[by_arm[arm_b].loc[trial_seed, "hash"]]
        labels_here = seed_labels[trial_seed]
        test = mcnemar_test(predicted_a, predicted_b, labels_here)
        per_seed.append(
            {
                "seed": trial_seed,
                "examples": test.examples,
                "accuracy_a": test.accuracy_a,
                "accuracy_b": test.accuracy_b,
                "only_a_right": test.only_a_right,
                "only_b_right": test.only_b_right,
                "p_value": test.p_value,
            }
        )
        correct_a.append(_correct(predicted_a, labels_here))
        correct_b.append(_correct(predicted_b, labels_here))
    interval = two_level_bootstrap(
        np.array(correct_a), np.array(correct_b), confidence=confidence, resamples=resamples, seed=seed
    )
    return ExampleLevelComparison(
        arm_a=arm_a, arm_b=arm_b, backend=backend, epoch=epoch, per_seed=pd.DataFrame(per_seed), interval=interval
    )


EXAMPLE_LEVEL_COLUMNS = (
    "seeds",  # seed pairs with stored final-epoch test predictions on both sides
    "mcnemar_p",  # the largest per-seed McNemar exact p: every seed pair differs at this level
    "mcnemar_significant",  # 'k/n': seed pairs whose own McNemar p < 0.05
    "example_difference",  # mean over those seeds of accuracy (first - second) on the test examples
    "example_ci_low",  # two-level (seeds, then examples) bootstrap 95% interval of that difference
    "example_ci_high",
)
SUMMARY_RESAMPLES = 1000  # tables compute many of these: 1000 replicates keep the quantiles to ~0.01 x width


def paired_example_test(
    first: Sequence[np.ndarray],
    second: Sequence[np.ndarray],
    labels: np.ndarray | Sequence[np.ndarray],
    *,
    resamples: int = SUMMARY_RESAMPLES,
) -> dict[str, Any]:
    """Example-level evidence for two sets of trials paired by seed (first[i], second[i]: one seed).

    McNemar's exact test per seed pair, combined as an intersection-union test: the pairs all
    differ at level max(p) (the seeds share the test examples, so their p's are not independent
    and cannot be multiplied; the maximum needs no independence). With it the count of pairs
    below 0.05, and the two-level bootstrap interval of the accuracy difference (first - second).
    `labels`: the shared test labels, or one array per seed pair (a dataset that resplits per seed).
    """
    if not first:
        return {column: math.nan for column in EXAMPLE_LEVEL_COLUMNS} | {"seeds": 0, "mcnemar_significant": ""}
    per_pair: list[np.ndarray] = (
        [np.asarray(truth) for truth in labels]
        if isinstance(labels, (list, tuple))
        else [np.asarray(labels)] * len(first)
    )
    tests = [mcnemar_test(a, b, truth) for a, b, truth in zip(first, second, per_pair)]
    p_values = [test.p_value for test in tests]
    interval = two_level_bootstrap(
        np.array([_correct(a, truth) for a, truth in zip(first, per_pair)]),
        np.array([_correct(b, truth) for b, truth in zip(second, per_pair)]),
        resamples=resamples,
    )
    return {
        "seeds": len(tests),
        "mcnemar_p": float(max(p_values)),
        "mcnemar_significant": f"{sum(p < 0.05 for p in p_values)}/{len(p_values)}",
        "example_difference": interval.difference,
        "example_ci_low": interval.low,
        "example_ci_high": interval.high,
    }


def final_predictions(trials: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    """hash -> its final epoch's test predictions (predicted classes), for ok trials that have them."""
    if predictions is None or predictions.empty:
        return {}
    kept = predictions[(predictions["split"] == TEST_SPLIT) & predictions["is_final"]]
    ok = set(trials.loc[trials["status"] == OK, "hash"])
    return {
        str(trial_hash): np.asarray(values)
        for trial_hash, values in zip(kept["hash"], kept["values"])
        if trial_hash in ok and np.asarray(values).ndim == 1
    }


class LabelCache:
    """Test labels per dataset spec (and seed, when it resplits per seed), loaded once (a report compares
    many arms of one dataset)."""

    def __init__(self) -> None:
        self._labels: dict[str, np.ndarray] = {}

    def __call__(self, spec_json: str) -> np.ndarray:
        stored = json.loads(spec_json)
        dataset = stored["dataset"]
        resplit = dataset.get("resplit", "fixed") != "fixed"
        key = json.dumps([dataset, stored.get("seed") if resplit else None], sort_keys=True)
        if key not in self._labels:
            self._labels[key] = split_labels(spec_json)
        return self._labels[key]


def example_level_rows(
    first: pd.DataFrame, second: pd.DataFrame, predictions: Mapping[str, np.ndarray], labels: LabelCache
) -> dict[str, Any]:
    """`paired_example_test` on two sets of trial rows (hash, seed, spec), paired on their common seeds
    that have predictions; NaN columns (seeds 0) when none do or their test splits differ."""
    a = {int(row["seed"]): row for row in first.to_dict("records") if row["hash"] in predictions}
    b = {int(row["seed"]): row for row in second.to_dict("records") if row["hash"] in predictions}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return paired_example_test([], [], np.empty(0))
    truth = [labels(str(a[s]["spec"])) for s in seeds]  # one load unless the dataset resplits per seed
    if any(
        len(predictions[a[s]["hash"]]) != len(labels_here) or len(predictions[b[s]["hash"]]) != len(labels_here)
        for s, labels_here in zip(seeds, truth)
    ):
        return paired_example_test([], [], np.empty(0))  # different test splits: no example pairing
    return paired_example_test(
        [predictions[a[s]["hash"]] for s in seeds], [predictions[b[s]["hash"]] for s in seeds], truth
    )
