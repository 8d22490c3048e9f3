"""Tests of harness.check: tolerances, the baseline file, the regression gate and the CLI.

Two kinds of data:
- hand-built `Results` (known per-seed values) for the gate's statistics, compared with scipy;
- real trials of a tiny suite (digits, one hidden layer of 32, 4 epochs, 3 seeds), run once per
  session through the real runner, then checked through the real CLI: the baseline, a
  deliberately regressed copy, an unchanged rerun, a rerun with other seeds, claims.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from harness.analysis import Results
from harness.analysis.options import KNOWN_METRICS
from harness.analysis.statistics import welch_test
from harness.check.baseline import (
    BASELINE_VERSION,
    BaselineError,
    build_baseline,
    ends_early,
    read_baseline,
    write_baseline,
)
from harness.check.gate import compare
from harness.check.options import (
    RECORDED_METRICS,
    CheckOptions,
    Tolerance,
    merge_options,
    parse_check_block,
    parse_fail_on,
    parse_tolerance,
)
from harness.check.render import CheckOutcome, outcome_document, render_text
from harness.cli.baseline import baseline as baseline_command
from harness.cli.check import check as check_command
from harness.errors import SpecError

FLOAT_TOLERANCE = 1e-12  # float64 arithmetic on a handful of values: only rounding separates the two sides

# -- hand-built results ---------------------------------------------------------------------------

ENVIRONMENT = {
    "host": "host-a",
    "versions": {"torch": "2.13.0", "numpy": "2.4"},
    "device": {"device": "cpu", "name": "cpu-x"},
}


def hand_results(
    cells: Mapping[tuple[str, str], Mapping[int, Mapping[str, float]]],
    *,
    name: str = "unit",
    environment: Mapping[str, object] = ENVIRONMENT,
    statuses: Mapping[tuple[str, str, int], str] | None = None,
) -> Results:
    """Results from {(arm, backend): {seed: {metric: final value, 'train_seconds': s}}} (epochs 0 and 1)."""
    trials, metrics = [], []
    for (arm, backend), seeds in cells.items():
        for seed, values in seeds.items():
            key = f"{arm}-{backend}-{seed}"
            status = (statuses or {}).get((arm, backend, seed), "ok")
            trials.append(
                {
                    "hash": key,
                    "arm": arm,
                    "backend": backend,
                    "seed": seed,
                    "status": status,
                    "error": None,
                    "diverged_epoch": 1 if status == "diverged" else None,
                    "epochs_completed": 1,
                    "train_seconds": values.get("train_seconds", 1.0),
                    "eval_seconds": 0.1,
                    "wall_seconds": 2.0,
                    "host": environment["host"],
                    "versions": json.dumps(environment["versions"]),
                    "device": json.dumps(environment["device"]),
                }
            )
            for metric, value in values.items():
                if metric != "train_seconds":
                    metrics.append({"hash": key, "epoch": 0, "metric": metric, "value": 0.1})
                    metrics.append(
                        {
                            "hash": key,
                            "epoch": 1,
                            "metric": metric,
                            "value": math.nan if status == "diverged" else value,
                        }
                    )
    arms = tuple(dict.fromkeys(arm for arm, _ in cells))
    return Results(
        pd.DataFrame(trials).astype({"diverged_epoch": "Int64"}), pd.DataFrame(metrics), arms=arms, axes=(), name=name
    )


BASE_ACCURACY = [0.90, 0.92, 0.91, 0.93, 0.89]
BASE_SECONDS = [1.00, 1.10, 0.90, 1.05, 0.95]
NOISE = [0.004, -0.003, 0.001, -0.002, 0.000]  # small, so a shift of 0.05 is clearly significant


def cell(
    accuracy: list[float], seconds: list[float] | None = None, seeds: list[int] | None = None
) -> dict[int, dict[str, float]]:
    seeds = seeds if seeds is not None else list(range(len(accuracy)))
    seconds = seconds if seconds is not None else BASE_SECONDS[: len(accuracy)]
    return {
        seed: {"test_accuracy": value, "train_seconds": time} for seed, value, time in zip(seeds, accuracy, seconds)
    }


def saved_baseline(results: Results, tmp_path: Path):
    path = write_baseline(build_baseline(results, source="hand"), tmp_path / "baseline.json")
    return read_baseline(path, suite=results.name)


ACCURACY_ONLY = CheckOptions({"test_accuracy": Tolerance(0.01, relative=False)})


# -- tolerances and options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, amount, relative",
    [
        ("1%", 0.01, True),
        ("20 %", 0.20, True),
        (0.01, 0.01, False),
        ("0.5", 0.5, False),
        (3, 3.0, False),
        ("1e-3", 0.001, False),
        ("0%", 0.0, True),
    ],
    ids=["percent", "percent-space", "float", "string-number", "int", "scientific", "zero-percent"],
)
def test_parse_tolerance_accepts(raw: object, amount: float, relative: bool) -> None:
    tolerance = parse_tolerance(raw, "check.x")
    assert tolerance.relative is relative
    assert tolerance.amount == pytest.approx(amount, rel=FLOAT_TOLERANCE)


@pytest.mark.parametrize(
    "raw",
    [-0.1, "-5%", "abc", True, "nan", None, "5%%"],
    ids=["negative", "negative-percent", "word", "bool", "nan", "none", "double-percent"],
)
def test_parse_tolerance_rejects(raw: object) -> None:
    with pytest.raises(SpecError, match=r"check\.x: expected .*0\.01.*1%"):
        parse_tolerance(raw, "check.x")


def test_tolerance_limit_is_relative_to_the_baseline_mean() -> None:
    assert Tolerance(0.2, relative=True).limit(-2.5) == pytest.approx(0.5, rel=FLOAT_TOLERANCE)
    assert Tolerance(0.01, relative=False).limit(123.0) == 0.01
    assert str(Tolerance(0.2, relative=True)) == "20%" and str(Tolerance(0.01, relative=False)) == "0.01"


def test_check_block_forms_and_cli_override() -> None:
    options = parse_check_block(
        {
            "test_accuracy": {"tolerance": 0.01},
            "train_seconds": {"tolerance": "20%"},
            "test_loss": "5%",
            "min_seeds": 4,
            "few_seeds": "tolerance",
        }
    )
    assert options.metrics == {
        "test_accuracy": Tolerance(0.01, False),
        "train_seconds": Tolerance(0.2, True),
        "test_loss": Tolerance(0.05, True),
    }
    assert (options.min_seeds, options.few_seeds) == (4, "tolerance")
    merged = merge_options(options, ["test_accuracy:2%", "validation_loss:0.1"], min_seeds=5)
    assert merged.metrics["test_accuracy"] == Tolerance(0.02, True)  # the CLI wins
    assert merged.metrics["validation_loss"] == Tolerance(0.1, False)
    assert merged.metrics["test_loss"] == Tolerance(0.05, True)
    assert (merged.min_seeds, merged.few_seeds) == (5, "tolerance")


def test_defaults_when_nothing_is_configured() -> None:
    assert CheckOptions().resolved_metrics("test_r2") == {
        "test_r2": Tolerance(0.01, True),
        "train_seconds": Tolerance(0.2, True),
    }


@pytest.mark.parametrize(
    "block, message",
    [
        ({"test_acuracy": 0.01}, r"check: unknown check key 'test_acuracy'\. Did you mean 'test_accuracy'\?"),
        (
            {"test_accuracy": {"tolerence": 0.01}},
            r"check\.test_accuracy: unknown key 'tolerence'\. Did you mean 'tolerance'",
        ),
        ({"test_accuracy": {}}, r"check\.test_accuracy: expected \{tolerance: 0\.01\}"),
        ({"test_accuracy": "a lot"}, r"check\.test_accuracy: expected a number"),
        ({"min_seeds": 1}, r"check\.min_seeds: expected a whole number of seeds >= 2"),
        ({"few_seeds": "fail"}, r"check\.few_seeds: unknown few_seeds rule 'fail'"),
        (["test_accuracy"], r"check: expected a mapping"),
    ],
    ids=["metric-typo", "key-typo", "no-tolerance", "bad-tolerance", "min-seeds", "few-seeds", "not-mapping"],
)
def test_check_block_errors_name_the_key(block: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_check_block(block)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value, message",
    [
        ("test_accuracy", r"--fail-on: expected METRIC:TOLERANCE"),
        ("test_acc:1%", r"--fail-on: unknown metric 'test_acc'"),
        ("test_accuracy:lots", r"--fail-on test_accuracy: expected"),
    ],
    ids=["no-colon", "unknown-metric", "bad-tolerance"],
)
def test_fail_on_errors(value: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_fail_on([value])


def test_checkable_metrics_match_the_analysis_package() -> None:
    assert set(RECORDED_METRICS) == set(KNOWN_METRICS)


# -- statistics -----------------------------------------------------------------------------------


def test_welch_test_matches_scipy_and_the_textbook_formula() -> None:
    current, baseline = np.array([0.80, 0.83, 0.81, 0.86]), np.array([0.90, 0.92, 0.91])
    result = welch_test(current, baseline)
    reference = stats.ttest_ind(current, baseline, equal_var=False)
    assert result["p_value"] == pytest.approx(reference.pvalue, rel=FLOAT_TOLERANCE)
    # Welch's interval by hand: difference +- t(0.975, df) * sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite df.
    a, b = current.var(ddof=1) / 4, baseline.var(ddof=1) / 3
    df = (a + b) ** 2 / (a**2 / 3 + b**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(a + b)
    difference = current.mean() - baseline.mean()
    assert result["mean_difference"] == pytest.approx(difference, rel=FLOAT_TOLERANCE)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((difference - half, difference + half), rel=1e-9)


def test_welch_test_degenerate_cases() -> None:
    assert math.isnan(welch_test([1.0], [1.0, 2.0])["p_value"])  # one value: no spread
    constant = welch_test([0.5, 0.5, 0.5], [0.75, 0.75, 0.75])  # exact binary fractions: zero spread
    assert constant["p_value"] == 0.0 and constant["ci_low"] == constant["ci_high"] == -0.25


# -- the gate on hand-built results ---------------------------------------------------------------

SCENARIOS = {
    # id: (current accuracies, current seeds, expected status, expected test)
    "unchanged": (BASE_ACCURACY, None, "WITHIN", "paired"),
    "regressed-paired": ([a - 0.05 + n for a, n in zip(BASE_ACCURACY, NOISE)], None, "REGRESSED", "paired"),
    "improved-paired": ([a + 0.05 + n for a, n in zip(BASE_ACCURACY, NOISE)], None, "IMPROVED", "paired"),
    "inside-tolerance": ([a - 0.005 + n / 10 for a, n in zip(BASE_ACCURACY, NOISE)], None, "WITHIN", "paired"),
    "better-inside-tolerance": ([a + 0.005 + n / 10 for a, n in zip(BASE_ACCURACY, NOISE)], None, "WITHIN", "paired"),
    "beyond-tolerance-but-noisy": (
        [a - 0.02 + n for a, n in zip(BASE_ACCURACY, [0.1, -0.1, 0.08, -0.09, 0.05])],
        None,
        "INCONCLUSIVE",
        "paired",
    ),
    "regressed-welch": (
        [a - 0.05 + n for a, n in zip(BASE_ACCURACY, NOISE)],
        [10, 11, 12, 13, 14],
        "REGRESSED",
        "welch",
    ),
    # 2 seeds, below min_seeds = 3: a drop of 0.1 on both is still shown (t at 1 degree of freedom) ...
    "few-seeds-regressed": ([0.80, 0.81], None, "REGRESSED", "paired"),
    # ... but a pass is not: inside the tolerance on both seeds, yet INCONCLUSIVE.
    "few-seeds-inside": ([0.899, 0.921], None, "INCONCLUSIVE", "paired"),
    "one-seed": ([0.80], None, "INCONCLUSIVE", "insufficient seeds"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_gate_verdicts(scenario: str, tmp_path: Path) -> None:
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    accuracy, seeds, status, test = SCENARIOS[scenario]
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), tmp_path)
    current = hand_results({("a", "torch"): cell(accuracy, seeds=seeds)})
    [verdict] = compare(current, baseline, ACCURACY_ONLY)
    assert (verdict.status, verdict.test) == (status, test)
    before = np.array(BASE_ACCURACY[: len(accuracy)])
    # Paired on some seeds only: the change is theirs; otherwise the difference of the sides' means.
    partly = test == "paired" and len(accuracy) < len(BASE_ACCURACY)
    expected_change = np.mean(np.array(accuracy) - before) if partly else np.mean(accuracy) - np.mean(BASE_ACCURACY)
    assert verdict.change == pytest.approx(expected_change, abs=FLOAT_TOLERANCE)
    if test == "paired" and scenario != "unchanged":
        reference = stats.ttest_rel(np.array(accuracy), before)
        assert verdict.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        # One-sided against the tolerance's edge -0.01, by hand and by statsmodels' TOST.
        difference = np.array(accuracy) - before
        t_edge = (difference.mean() + 0.01) / (difference.std(ddof=1) / math.sqrt(len(difference)))
        _, (t_lower, p_lower, df), _ = ttost_paired(np.array(accuracy), before, -0.01, 0.01)
        assert t_lower == pytest.approx(t_edge, rel=1e-9)
        assert verdict.p_worse == pytest.approx(stats.t.cdf(t_edge, len(difference) - 1), rel=1e-9)
        assert verdict.p_within == pytest.approx(p_lower, rel=1e-9)
        assert verdict.p_holm == pytest.approx(verdict.p_worse, rel=1e-12)  # one row in the family
    if test == "welch":
        reference = stats.ttest_ind(np.array(accuracy), np.array(BASE_ACCURACY), equal_var=False)
        assert verdict.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        _, (t_lower, p_lower, df), _ = ttost_ind(
            np.array(accuracy), np.array(BASE_ACCURACY), -0.01, 0.01, usevar="unequal"
        )
        assert verdict.p_worse == pytest.approx(stats.t.cdf(t_lower, df), rel=1e-9)
    if status == "REGRESSED":
        assert verdict.p_holm < 0.05 <= verdict.p_within
    if status in ("WITHIN", "IMPROVED") and scenario != "unchanged":
        assert verdict.p_within < 0.05 and verdict.p_worse > 0.5
    if status == "IMPROVED":
        assert verdict.p_better < 0.05
    if scenario == "unchanged":
        assert "identical to the baseline on all 5 seeds" in verdict.notes
    if scenario == "beyond-tolerance-but-noisy":
        # The smallest detectable change: (t_0.95 + t_0.80 at 4 df) * sd(difference) / sqrt(5).
        difference = np.array(accuracy) - before
        expected = (stats.t.ppf(0.95, 4) + stats.t.ppf(0.80, 4)) * difference.std(ddof=1) / math.sqrt(5)
        assert verdict.detectable_change == pytest.approx(expected, rel=1e-9)
        # The measured change, -0.012, is 0.002 from the edge -0.01 with a per-seed sd near 0.09: no
        # affordable number of seeds decides it.
        assert verdict.seeds_needed is None
        assert any(
            note.startswith("inconclusive: these seeds detect") and "more than 1000 seeds" in note
            for note in verdict.notes
        )
    if scenario == "few-seeds-inside":
        assert verdict.p_within < 0.05 and any("a pass needs 3" in note for note in verdict.notes)
    if scenario == "one-seed":
        assert any("a t test needs 2 seeds" in note for note in verdict.notes)


def test_seeds_that_agree_exactly_are_not_certainty(tmp_path: Path) -> None:
    """Every seed moved by exactly the same amount: zero spread, infinite t. Not a decision."""
    baseline = saved_baseline(hand_results({("a", "torch"): cell([0.5, 0.75, 0.625])}), tmp_path)
    current = hand_results({("a", "torch"): cell([0.25, 0.5, 0.375])})  # exact binary fractions: -0.25 on each
    [verdict] = compare(current, baseline, ACCURACY_ONLY)
    assert verdict.status == "INCONCLUSIVE" and any("agree exactly" in note for note in verdict.notes)
    assert math.isnan(verdict.p_worse) and math.isnan(verdict.p_holm)
    options = CheckOptions(ACCURACY_ONLY.metrics, few_seeds="tolerance")
    [decided] = compare(current, baseline, options)
    assert decided.status == "REGRESSED" and any("tolerance alone" in note for note in decided.notes)


def test_partly_shared_seeds_pair_on_the_common_ones(tmp_path: Path) -> None:
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), tmp_path)
    shifted = [a - 0.05 + n for a, n in zip(BASE_ACCURACY[:4], NOISE)]
    current = hand_results({("a", "torch"): cell([*shifted, 0.99], seeds=[0, 1, 2, 3, 9])})  # seed 9 is new
    [verdict] = compare(current, baseline, ACCURACY_ONLY)
    assert (verdict.test, verdict.status, verdict.current_n) == ("paired", "REGRESSED", 5)
    reference = stats.ttest_rel(shifted, BASE_ACCURACY[:4])
    assert verdict.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert verdict.change == pytest.approx(np.mean(shifted) - np.mean(BASE_ACCURACY[:4]), abs=FLOAT_TOLERANCE)
    assert "paired on the 4 common seeds" in verdict.notes[0]


def test_few_seeds_decided_by_tolerance_when_asked(tmp_path: Path) -> None:
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY[:1])}), tmp_path)
    current = hand_results({("a", "torch"): cell([0.80])})  # one seed: no t test at all
    [undecided] = compare(current, baseline, ACCURACY_ONLY)
    assert undecided.status == "INCONCLUSIVE"
    options = CheckOptions(ACCURACY_ONLY.metrics, min_seeds=3, few_seeds="tolerance")
    [verdict] = compare(current, baseline, options)
    assert verdict.status == "REGRESSED" and any("tolerance alone" in note for note in verdict.notes)


def test_holm_runs_over_the_rows_that_can_fail(tmp_path: Path) -> None:
    """p_holm is statsmodels' Holm over the one-sided p_worse of the rows that can fail; a speed row
    measured on another CPU is not in the family."""
    from statsmodels.stats.multitest import multipletests

    shifted = [a - 0.03 + n for a, n in zip(BASE_ACCURACY, [0.01, -0.02, 0.015, -0.01, 0.0])]
    nearly = [a - 0.012 + n for a, n in zip(BASE_ACCURACY, [0.004, -0.004, 0.002, -0.003, 0.001])]
    baseline = saved_baseline(hand_results({(arm, "torch"): cell(BASE_ACCURACY) for arm in ("a", "b", "c")}), tmp_path)
    current = hand_results(
        {
            ("a", "torch"): cell(shifted),
            ("b", "torch"): cell([a - 0.002 for a in BASE_ACCURACY[:4]] + [0.95]),
            ("c", "torch"): cell(nearly, seconds=[3 * s for s in BASE_SECONDS]),
        },
        environment={**ENVIRONMENT, "device": {"device": "cpu", "name": "cpu-y"}},
    )
    options = CheckOptions({"test_accuracy": Tolerance(0.01, False), "train_seconds": Tolerance(0.2, True)})
    verdicts = compare(current, baseline, options)
    family = [v for v in verdicts if v.metric == "test_accuracy"]
    speed = [v for v in verdicts if v.metric == "train_seconds"]
    expected = multipletests([v.p_worse for v in family], method="holm")[1]
    assert [v.p_holm for v in family] == pytest.approx(list(expected), rel=1e-12)
    assert family[0].p_holm > family[0].p_worse  # the correction bites
    c_speed = next(v for v in speed if v.arm == "c")  # 3x slower, but on another CPU: not in the family
    assert math.isnan(c_speed.p_holm) and c_speed.p_worse < 1e-4
    assert c_speed.status == "INCONCLUSIVE" and any("cannot fail" in note for note in c_speed.notes)


def test_the_issue_scenario_two_seeds_and_a_collapse_does_not_pass(tmp_path: Path) -> None:
    """Measured by a new user: a suite of 2 seeds, a 100x smaller learning rate, test accuracy 0.95 ->
    0.20 in every arm; the old gate said `result: PASS (6 PASS, 6 UNCERTAIN) -> exit 0`. Now the
    accuracy and loss rows are REGRESSED (shown at 1 degree of freedom); nothing says PASS."""
    smoke_like = CheckOptions(
        {
            "test_accuracy": Tolerance(0.02, relative=False),
            "train_loss": Tolerance(0.25, relative=True),
            "train_seconds": Tolerance(1.0, relative=True),
        }
    )
    cells_before, cells_after = {}, {}
    for index, (arm, backend) in enumerate((a, b) for a in ("sgd", "adam") for b in ("torch", "keras")):
        jitter = 0.004 * index
        cells_before[(arm, backend)] = {
            seed: {"test_accuracy": 0.95 + jitter - 0.01 * seed, "train_loss": 0.15 + jitter + 0.02 * seed,
                   "train_seconds": 1.0 + 0.05 * seed}
            for seed in (0, 1)
        }  # fmt: skip
        cells_after[(arm, backend)] = {
            seed: {"test_accuracy": 0.20 + jitter + 0.03 * seed, "train_loss": 2.2 + jitter - 0.04 * seed,
                   "train_seconds": 1.02 + 0.04 * seed}
            for seed in (0, 1)
        }  # fmt: skip
    baseline = saved_baseline(hand_results(cells_before), tmp_path)
    verdicts = compare(hand_results(cells_after), baseline, smoke_like)
    statuses = {(v.arm, v.backend, v.metric): v.status for v in verdicts}
    assert len(statuses) == 12 and "WITHIN" not in statuses.values()
    # Each change of accuracy is -0.75 +- 0.02 over 2 seeds: t = -35 at 1 degree of freedom, one-sided
    # p = 0.009, short of Holm's 0.05 / 12 for the first row. The seeds cannot decide it, and say so.
    accuracy = [v for v in verdicts if v.metric == "test_accuracy"]
    assert all(v.status in ("REGRESSED", "INCONCLUSIVE") and v.p_worse < 0.01 for v in accuracy)
    assert all(v.seeds_needed is not None and v.seeds_needed <= 3 for v in accuracy if v.status == "INCONCLUSIVE")
    lenient = CheckOutcome("unit", smoke_like, verdicts)
    assert lenient.result != "PASS" and "PASS" not in render_text(lenient)
    assert lenient.exit_code in (0, 1) and (lenient.exit_code == 1) == ("REGRESSED" in statuses.values())
    strict = CheckOutcome("unit", smoke_like, verdicts, strict=True)
    assert strict.exit_code in (1, 5)  # --strict: a collapse never exits 0
    # The same collapse with seeds that agree more closely (the change -0.75, -0.74) is REGRESSED.
    tight = {
        cell_key: {seed: {**values, "test_accuracy": 0.20 + 0.01 * seed - 0.01 * seed / 2} for seed, values in seeds.items()}
        for cell_key, seeds in cells_after.items()
    }  # fmt: skip
    tight_accuracy = [v for v in compare(hand_results(tight), baseline, smoke_like) if v.metric == "test_accuracy"]
    assert {v.status for v in tight_accuracy} == {"REGRESSED"}


def test_missing_and_new_cells(tmp_path: Path) -> None:
    baseline = saved_baseline(
        hand_results({("a", "torch"): cell(BASE_ACCURACY), ("gone", "torch"): cell(BASE_ACCURACY)}), tmp_path
    )
    current = hand_results({("a", "torch"): cell(BASE_ACCURACY), ("fresh", "torch"): cell(BASE_ACCURACY)})
    statuses = {verdict.arm: verdict.status for verdict in compare(current, baseline, ACCURACY_ONLY)}
    assert statuses == {"a": "WITHIN", "gone": "MISSING", "fresh": "NEW"}
    outcome = CheckOutcome("unit", ACCURACY_ONLY, compare(current, baseline, ACCURACY_ONLY))
    assert outcome.exit_code == 1 and "gone / torch / test_accuracy MISSING" in render_text(outcome)


def test_diverged_everywhere_now_is_missing_and_exit_3(tmp_path: Path) -> None:
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), tmp_path)
    current = hand_results(
        {("a", "torch"): cell(BASE_ACCURACY)}, statuses={("a", "torch", s): "diverged" for s in range(5)}
    )
    verdicts = compare(current, baseline, ACCURACY_ONLY)
    assert verdicts[0].status == "MISSING" and "no 'ok' trial" in verdicts[0].notes[0]
    outcome = CheckOutcome("unit", ACCURACY_ONLY, verdicts, trials_not_ok=current.failures())
    assert outcome.exit_code == 3  # trials not ok take precedence over the MISSING row
    assert "a / torch / seed 0: diverged at epoch 1" in render_text(outcome)


SPEED_OPTIONS = CheckOptions({"train_seconds": Tolerance(0.2, relative=True)})


@pytest.mark.parametrize(
    "change, status, note",
    [
        ({"host": "host-b"}, "REGRESSED", "environment-sensitive: host: host-a -> host-b"),
        ({"versions": {"torch": "2.14.0", "numpy": "2.4"}}, "INCONCLUSIVE", "versions: torch 2.13.0 -> 2.14.0"),
        ({"device": {"device": "cpu", "name": "cpu-y"}}, "INCONCLUSIVE", "CPU/GPU"),
        ({}, "REGRESSED", None),
    ],
    ids=["other-host", "other-versions", "other-cpu", "same-environment"],
)
def test_speed_rows_are_environment_sensitive(
    change: dict[str, object], status: str, note: str | None, tmp_path: Path
) -> None:
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), tmp_path)
    slower = [2 * seconds + n for seconds, n in zip(BASE_SECONDS, NOISE)]
    current = hand_results({("a", "torch"): cell(BASE_ACCURACY, seconds=slower)}, environment={**ENVIRONMENT, **change})
    [verdict] = compare(current, baseline, SPEED_OPTIONS)
    assert verdict.status == status and verdict.direction == "lower"
    assert verdict.relative_change == pytest.approx(np.mean(slower) / np.mean(BASE_SECONDS) - 1, rel=1e-9)
    if note is None:
        assert not any("environment-sensitive" in text for text in verdict.notes)
    else:
        assert any(note in text for text in verdict.notes)


def test_unknown_checked_metric_is_a_usage_error(tmp_path: Path) -> None:
    baseline = saved_baseline(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), tmp_path)
    options = CheckOptions({"test_r2": Tolerance(0.01, False)})
    with pytest.raises(SpecError, match=r"'test_r2' is in neither the baseline nor the results.*test_accuracy"):
        compare(hand_results({("a", "torch"): cell(BASE_ACCURACY)}), baseline, options)


# -- the baseline file ----------------------------------------------------------------------------


def test_baseline_file_is_sorted_complete_and_round_trips(tmp_path: Path) -> None:
    results = hand_results({("a", "torch"): cell(BASE_ACCURACY), ("b", "keras"): cell(BASE_ACCURACY[:3])})
    path = write_baseline(build_baseline(results, source="suites/unit.yaml"), tmp_path / "deep" / "unit.json")
    text = path.read_text()
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"  # sorted keys, indented: diffable
    assert (document["format"], document["version"], document["suite"]) == (
        "harness-baseline",
        BASELINE_VERSION,
        "unit",
    )
    assert document["directions"] == {"test_accuracy": "higher", "train_seconds": "lower"}
    assert document["environment"]["torch"] == {
        "hosts": ["host-a"],
        "devices": [ENVIRONMENT["device"]],
        "versions": [ENVIRONMENT["versions"]],
    }
    entry = document["results"]["a"]["torch"]
    assert entry["trials"] == {"ok": 5, "diverged": 0, "failed": 0, "timeout": 0}
    assert entry["metrics"]["test_accuracy"]["seeds"] == {str(seed): value for seed, value in enumerate(BASE_ACCURACY)}
    assert entry["metrics"]["train_seconds"]["seeds"]["1"] == BASE_SECONDS[1]
    summary = entry["metrics"]["test_accuracy"]["summary"]
    assert summary["n"] == 5 and summary["mean"] == pytest.approx(np.mean(BASE_ACCURACY), rel=FLOAT_TOLERANCE)
    assert summary["std"] == pytest.approx(np.std(BASE_ACCURACY, ddof=1), rel=1e-9)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(BASE_ACCURACY), scale=stats.sem(BASE_ACCURACY))
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    loaded = read_baseline(path, suite="unit")
    assert loaded.values[("b", "keras")]["test_accuracy"] == {0: 0.90, 1: 0.92, 2: 0.91}


# -- real runs through the runner and the CLI -----------------------------------------------------

SUITE = {
    "name": "ci-check",
    "description": "SGD vs Adam on digits, one hidden layer of 32: the regression-check fixture.",
    "dataset": {"name": "digits", "validation": 0.2},
    "model": {"mlp": {"hidden": [32], "activation": "relu"}},
    "loss": "cross_entropy",
    "optimizer": {"name": "sgd", "lr": 0.1},
    "initializer": "he_normal",
    "training": {"epochs": 4, "batch_size": 64},
    "seeds": [0, 1, 2],
    "backends": ["torch"],
    "grid": {"optimizer": {"sgd": {"name": "sgd", "lr": 0.1}, "adam": {"name": "adam", "lr": 0.005}}},
    # Accuracy and loss are deterministic given the seed. The speed tolerance is wide on purpose:
    # this machine is shared by parallel test jobs, so step times swing by tens of percent between
    # trials; speed gating is tested above on hand-built numbers.
    "check": {"test_accuracy": {"tolerance": 0.01}, "test_loss": "5%", "train_seconds": "300%"},
}
DRIFT_RUNS = 1  # an end-to-end run of the unpaired path; false-alarm rates: tests/test_gate_simulation.py


def suite_copy(folder: Path, file_name: str, **changes: object) -> Path:
    document = copy.deepcopy(SUITE)
    document.update(copy.deepcopy(changes))
    path = folder / f"{file_name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def harness_cli():
    """harness.cli.cli with `baseline` and `check` registered (the lead registers them in cli.py)."""
    from harness.cli import cli

    for command in (baseline_command, check_command):
        if command.name not in cli.commands:
            cli.add_command(command)
    return cli


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory, harness_cli) -> dict[str, Path]:
    """Every suite copy's trials, run ONCE through the real runner into one store (one worker pool).

    Copies share the suite name and arms (they are versions of one suite); their trials differ by
    content hash, so they coexist in the store:
      base        the baseline: sgd lr 0.1 and adam, seeds 0-2
      regressed   sgd's learning rate cut 200x (0.0005): the deliberate regression
      rerun       unchanged, except training.max_seconds (a limit it never reaches), so its trials
                  get fresh hashes and really run again
      drift1      unchanged, seeds 10-12: other seeds, an unpaired comparison
      wild        sgd lr 0.1 (= base's trials) and sgd lr 1e6 (diverges)
    """
    from harness.runner import run_trials
    from harness.store import Store
    from harness.suite import load_suite

    folder = tmp_path_factory.mktemp("check-runs")
    paths = {"base": suite_copy(folder, "base")}
    regressed_grid = copy.deepcopy(SUITE["grid"])
    regressed_grid["optimizer"]["sgd"]["lr"] = 0.0005
    paths["regressed"] = suite_copy(folder, "regressed", grid=regressed_grid)
    paths["rerun"] = suite_copy(folder, "rerun", training={"epochs": 4, "batch_size": 64, "max_seconds": 3600})
    for run in range(1, DRIFT_RUNS + 1):
        paths[f"drift{run}"] = suite_copy(folder, f"drift{run}", seeds=[10 * run, 10 * run + 1, 10 * run + 2])
    paths["wild"] = suite_copy(
        folder,
        "wild",
        name="ci-wild",
        check={},
        grid={"optimizer": {"calm": {"name": "sgd", "lr": 0.1}, "wild": {"name": "sgd", "lr": 1e6}}},
        expect=["calm.test_accuracy > 0.5"],
    )
    paths["claims-true"] = suite_copy(
        folder,
        "claims-true",
        expect=[
            "sgd.test_accuracy > 0.5",
            "adam.final_train_loss < sgd.final_train_loss",
            "`adam`.at_best_validation_test_accuracy >= 0.8",
        ],
    )
    paths["claims-false"] = suite_copy(
        folder, "claims-false", expect=["sgd.test_accuracy > 0.5", "sgd.test_accuracy - adam.test_accuracy > 0.05"]
    )
    paths["typo"] = suite_copy(folder, "typo", check={"test_acuracy": 0.01})
    store = folder / "store"
    trials = [
        trial
        for name in ("base", "regressed", "rerun", *(f"drift{r}" for r in range(1, DRIFT_RUNS + 1)), "wild")
        for trial in load_suite(paths[name]).trials
    ]
    # Trials alone: a stacked group's members share its time equally, so a stacked arm's train_seconds has no
    # spread over seeds and the gate can decide no speed row (a zero-width interval); these tests exercise
    # the gate on timings that vary by seed. The accuracies of stacked trials are checked in test_vectorize.
    with Store(store) as opened:
        summary = run_trials(trials, opened, jobs=2, quiet=True, vectorize="off")
    assert summary.failed == 0 and summary.timeout == 0, summary
    # The real `harness run` on the base copy: everything is stored, so it only writes the tables and
    # the results folder's manifest (store/ci-check/), which the folder-target tests read.
    result = CliRunner().invoke(
        harness_cli, ["run", str(paths["base"]), "--store", str(store), "-q", "--vectorize", "off"]
    )
    assert result.exit_code == 0, result.output
    saved = CliRunner().invoke(
        harness_cli,
        [
            "baseline",
            "save",
            str(paths["base"]),
            "--store",
            str(store),
            "-o",
            str(folder / "baselines" / "ci-check.json"),
        ],
    )
    assert saved.exit_code == 0, saved.output
    return {**paths, "store": store, "baseline": folder / "baselines" / "ci-check.json", "folder": folder}


def run_check(cli, runs: Mapping[str, Path], suite: str | Path, *extra: str, baseline: bool = True):
    target = str(runs[suite]) if isinstance(suite, str) and suite in runs else str(suite)
    arguments = ["check", target, "--store", str(runs["store"])]
    if baseline:
        arguments += ["--baseline", str(runs["baseline"])]
    return CliRunner().invoke(cli, [*arguments, *extra])


def test_deliberate_regression_fails_naming_arm_and_metric(harness_cli, real_runs) -> None:
    result = run_check(harness_cli, real_runs, "regressed")
    assert result.exit_code == 1, result.output
    assert "sgd / torch / test_accuracy REGRESSED" in result.output
    rows = {
        tuple(line.split()[:3]): line.split()[-1]
        for line in result.output.splitlines()
        if line.startswith(("sgd ", "adam "))
    }
    assert rows[("sgd", "torch", "test_accuracy")] == "REGRESSED"
    assert rows[("adam", "torch", "test_accuracy")] == "WITHIN"  # adam's trials are the baseline's own


def test_unchanged_rerun_passes(harness_cli, real_runs) -> None:
    result = run_check(harness_cli, real_runs, "rerun", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    accuracy = [row for row in document["verdicts"] if row["metric"] == "test_accuracy"]
    quality = [row for row in document["verdicts"] if row["metric"] != "train_seconds"]
    assert quality and {row["status"] for row in quality} == {"WITHIN"}
    # The speed row times trials of ~20 ms on 3 seeds: one stall of this shared machine (a 5x outlier) can
    # widen its interval past the 300% tolerance. The gate may then say it cannot decide; it must never
    # call an unchanged rerun slower (measured: one INCONCLUSIVE train_seconds row in a fresh-clone CI run).
    speed = {row["status"] for row in document["verdicts"] if row["metric"] == "train_seconds"}
    assert speed and speed <= {"WITHIN", "INCONCLUSIVE"}
    assert document["result"] == ("pass" if speed == {"WITHIN"} else "inconclusive")
    assert all(row["test"] == "paired" and row["current_n"] == 3 for row in accuracy)
    # Same seeds, same initial weights and batches, one thread per worker: the rerun reproduces the
    # accuracies exactly (a change here means training stopped being deterministic).
    assert all(row["change"] == 0.0 for row in accuracy)


def test_other_seeds_are_compared_unpaired_without_false_alarm(harness_cli, real_runs) -> None:
    """End to end through Welch's path. One rerun cannot measure a false-alarm rate; the rates are
    measured by simulation in tests/test_gate_simulation.py."""
    result = run_check(harness_cli, real_runs, "drift1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert {row["test"] for row in document["verdicts"]} == {"welch"}  # no shared seed: unpaired
    assert document["counts"].get("REGRESSED", 0) == 0


def test_results_folder_target_and_json_agree_with_text(harness_cli, real_runs, tmp_path: Path) -> None:
    folder = real_runs["store"] / "ci-check"
    saved = CliRunner().invoke(harness_cli, ["baseline", "save", str(folder), "-o", str(tmp_path / "from-folder.json")])
    assert saved.exit_code == 0, saved.output
    from_folder = json.loads((tmp_path / "from-folder.json").read_text())
    from_suite = json.loads(real_runs["baseline"].read_text())
    for document in (from_folder, from_suite):
        document.pop("created_at"), document.pop("source")
    assert from_folder == from_suite
    text = run_check(harness_cli, real_runs, "regressed")
    machine = run_check(harness_cli, real_runs, "regressed", "--json")
    document = json.loads(machine.output)
    assert machine.exit_code == text.exit_code == document["exit_code"] == 1
    text_rows = [line.split()[-1] for line in text.output.splitlines() if line.startswith(("sgd ", "adam "))]
    assert [row["status"] for row in document["verdicts"]] == text_rows


def test_fail_on_overrides_the_suite(harness_cli, real_runs) -> None:
    result = run_check(
        harness_cli, real_runs, "regressed", "--json", "--fail-on", "test_accuracy:0.95", "--fail-on", "test_loss:10"
    )
    assert result.exit_code == 0, result.output  # tolerances wider than the drop: nothing regressed
    verdicts = {(row["arm"], row["metric"]): row for row in json.loads(result.output)["verdicts"]}
    assert verdicts[("sgd", "test_accuracy")]["tolerance"] == "0.95"  # the CLI's, not the suite's 0.01
    sgd = verdicts[("sgd", "test_accuracy")]
    # A real drop (two-sided p < 0.05), shown inside the wide tolerance (one-sided p_within < 0.05): WITHIN.
    assert sgd["status"] == "WITHIN" and sgd["p_value"] < 0.05 and sgd["p_within"] < 0.05
    assert verdicts[("sgd", "train_seconds")]["tolerance"] == "300%"  # the suite's, untouched


def test_claims_true_and_false_through_the_cli(harness_cli, real_runs) -> None:
    true = run_check(harness_cli, real_runs, "claims-true", baseline=False)
    assert true.exit_code == 0, true.output
    assert true.output.count("PASS  ") == 3
    false = run_check(harness_cli, real_runs, "claims-false", baseline=False)
    assert false.exit_code == 1, false.output
    assert "FAIL  sgd.test_accuracy - adam.test_accuracy > 0.05" in false.output
    assert (
        "95% CI [" in false.output
        and "n=3 seeds" in false.output
        and "lies entirely on the other side of 0: the claim is false" in false.output
    )


def test_claims_are_judged_on_confirmation_seeds_only(harness_cli, real_runs, tmp_path: Path) -> None:
    """base (seeds 0-2) and drift1 (10-12) hold the same trials at other seeds: a copy that explores on
    0-2 and confirms on 10-12 runs nothing new, and its claims see only 10-12."""
    seeds = {"explore": [0, 1, 2], "confirm": [10, 11, 12]}
    path = suite_copy(tmp_path, "confirm", name="ci-confirm", seeds=seeds, expect=["sgd.test_accuracy > 0.5"])
    ran = CliRunner().invoke(
        harness_cli, ["run", str(path), "--store", str(real_runs["store"]), "-q", "--phase", "confirm"]
    )
    assert ran.exit_code == 0, ran.output
    assert "6 trials: 6 already in the store" in ran.output  # 2 arms x the 3 confirm seeds, nothing else
    assert "seeds 0-2 explore, 10-12 confirm" in ran.output
    machine = run_check(harness_cli, real_runs, path, "--json", baseline=False)
    document = json.loads(machine.output)
    assert document["claim_seeds"] == {"confirm": [10, 11, 12], "explore_not_used": [0, 1, 2], "missing": []}
    assert [outcome["seeds"] for outcome in document["claims"][0]["outcomes"]] == [[10, 11, 12]]
    text = run_check(harness_cli, real_runs, path, baseline=False)
    assert text.exit_code == 0, text.output
    assert "claims judged on confirmation seeds 10-12 (explore seeds 0-2 not used)" in text.output
    # The results folder's manifest remembers the sets: a folder target judges the same way.
    folder = run_check(harness_cli, real_runs, str(real_runs["store"] / "ci-confirm"), "--json", baseline=False)
    assert json.loads(folder.output)["claim_seeds"] == document["claim_seeds"]

    claim = ["sgd.test_accuracy > 0.5"]
    partly = suite_copy(tmp_path, "partly", seeds={"explore": [0, 1, 2], "confirm": [10, 11, 12, 13]}, expect=claim)
    partly_text = run_check(harness_cli, real_runs, partly, baseline=False)
    assert f"confirmation seed(s) 13 are not in the store, so fewer seeds decide: run `harness run {partly}" in (
        partly_text.output.replace("\n", "")
    )
    absent = suite_copy(tmp_path, "absent", seeds={"explore": [0, 1, 2], "confirm": [40, 41]}, expect=claim)
    refused = run_check(harness_cli, real_runs, absent, baseline=False)
    assert refused.exit_code == 2, refused.output
    assert "confirmation seeds 40-41" in refused.output and "--phase confirm" in refused.output


def test_diverged_trials_exit_3(harness_cli, real_runs) -> None:
    result = run_check(harness_cli, real_runs, "wild", baseline=False)
    assert result.exit_code == 3, result.output
    assert "PASS  calm.test_accuracy > 0.5" in result.output
    assert "wild / torch / seed 0: diverged" in result.output


def test_divergence_a_suite_expects_is_listed_not_failed(harness_cli, real_runs, tmp_path) -> None:
    """check.expect_diverged names arms whose divergence is a finding (batch norm's suite): those trials
    are listed but do not exit 3; a name that is no arm is a usage error with a did-you-mean."""
    document = yaml.safe_load(Path(real_runs["wild"]).read_text())
    expecting = tmp_path / "expecting.yaml"
    expecting.write_text(yaml.safe_dump({**document, "check": {"expect_diverged": ["wild"]}}, sort_keys=False))
    result = run_check(harness_cli, real_runs, expecting, baseline=False)
    assert result.exit_code == 0, result.output
    assert "PASS  calm.test_accuracy > 0.5" in result.output
    assert "diverged as the suite expects (check.expect_diverged; not failed trials): 3 trial(s) in wild" in (
        result.output
    )
    assert "trials not ok" not in result.output
    expecting.write_text(yaml.safe_dump({**document, "check": {"expect_diverged": ["wilde"]}}, sort_keys=False))
    result = run_check(harness_cli, real_runs, expecting, baseline=False)
    assert result.exit_code == 2 and "Did you mean 'wild'?" in result.output, result.output


def test_nothing_to_check_is_a_usage_error(harness_cli, real_runs) -> None:
    result = run_check(harness_cli, real_runs, "base", baseline=False)
    assert result.exit_code == 2
    assert (
        "nothing to check" in result.output and "harness baseline save" in result.output and "expect:" in result.output
    )


def test_check_block_typo_is_a_usage_error(harness_cli, real_runs) -> None:
    result = run_check(harness_cli, real_runs, "typo")
    assert result.exit_code == 2 and "Did you mean 'test_accuracy'?" in result.output


def _truncated(text: str) -> str:
    return text[: len(text) // 2]


def _cut_inside_string(text: str) -> str:
    """Cut one character into the first string value past the middle (where `json` reports the
    error at the string's START, far from the end of the text)."""
    start = text.index(': "', len(text) // 2) + 3
    return text[: start + 1]


def _set(key: str, value: object):
    def edit(text: str) -> str:
        document = json.loads(text)
        document[key] = value
        return json.dumps(document)

    return edit


def _bad_seed(text: str) -> str:
    document = json.loads(text)
    document["results"]["sgd"]["torch"]["metrics"]["test_accuracy"]["seeds"]["zero"] = "high"
    return json.dumps(document)


BAD_BASELINES = {
    "truncated": (_truncated, [r"is not valid JSON", r"truncated", r"harness baseline save"]),
    "truncated-in-string": (_cut_inside_string, [r"is not valid JSON", r"truncated", r"harness baseline save"]),
    "newer-version": (_set("version", BASELINE_VERSION + 1), [r"schema version 2", r"newer harness", r"re-create"]),
    "older-version": (_set("version", 0), [r"schema version 0", r"reads version 1", r"re-create"]),
    "other-suite": (
        _set("suite", "optimizers"),
        [r"baseline of suite 'optimizers'", r"results are of suite 'ci-check'", r"baselines/ci-check.json"],
    ),
    "not-a-baseline": (lambda text: json.dumps({"benchmarks": []}), [r"is not a harness baseline"]),
    "bad-seed-entry": (_bad_seed, [r"malformed at results\.sgd\.torch\.metrics\.test_accuracy\.seeds"]),
    "empty-file": (lambda text: "", [r"is not valid JSON"]),
}


@pytest.mark.parametrize("case", list(BAD_BASELINES), ids=list(BAD_BASELINES))
def test_bad_baseline_files_exit_2_with_a_clear_message(case: str, harness_cli, real_runs, tmp_path: Path) -> None:
    edit, fragments = BAD_BASELINES[case]
    broken = tmp_path / "broken.json"
    broken.write_text(edit(real_runs["baseline"].read_text()))
    result = CliRunner().invoke(
        harness_cli,
        ["check", str(real_runs["regressed"]), "--store", str(real_runs["store"]), "--baseline", str(broken)],
    )
    assert result.exit_code == 2, result.output
    assert str(broken) in result.output and "Traceback" not in result.output
    for fragment in fragments:
        assert re.search(fragment, result.output), (fragment, result.output)
    with pytest.raises(BaselineError):
        read_baseline(broken, suite="ci-check")


def test_a_baseline_cut_anywhere_is_called_truncated(real_runs, tmp_path: Path) -> None:
    """Wherever the cut lands (inside a string, a number, a literal, between tokens), the message
    says the file ends early; the outcome must not depend on the digits the baseline stores."""
    text = real_runs["baseline"].read_text()
    broken = tmp_path / "cut.json"
    missed = []
    for cut in range(1, len(text.rstrip()) - 1):
        broken.write_text(text[:cut])
        with pytest.raises(BaselineError) as caught:
            read_baseline(broken, suite="ci-check")
        if "truncated?" not in str(caught.value):
            missed.append((cut, text[max(0, cut - 20) : cut], str(caught.value)))
    assert not missed, missed[:3]


def test_ends_early_is_not_claimed_for_broken_but_complete_json() -> None:
    for text in ['{"a": [1, 2 3]}', '{"a": 1} x', '{"a": 1} true', '{"a" 1}', '{"a": @}']:
        with pytest.raises(ValueError) as caught:
            json.loads(text)
        assert not ends_early(text, caught.value), text


def test_missing_baseline_file_says_how_to_create_it(harness_cli, real_runs, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run_check(harness_cli, {**real_runs, "baseline": missing}, "base")
    assert result.exit_code == 2 and "does not exist" in result.output and "harness baseline save" in result.output


def test_help_documents_exit_codes(harness_cli) -> None:
    result = CliRunner().invoke(harness_cli, ["check", "--help"])
    assert result.exit_code == 0
    for fragment in (
        "Exit codes:",
        "0  nothing failed",
        "1  a metric REGRESSED",
        "2  bad input",
        "3  some checked trials failed",
        "5  --strict only",
        "INCONCLUSIVE",
        "--strict",
        "--fail-on",
        "--baseline",
    ):
        assert fragment in result.output


def test_cli_commands_and_claim_parsing_import_no_framework() -> None:
    """`harness --help` and the suite loader's claim/check validation stay light: no framework, no pandas."""
    code = (
        "import sys, harness.cli, harness.cli.check, harness.cli.baseline, harness.check.claims, "
        "harness.check.options; "
        "harness.check.claims.validate_claims(['a.test_accuracy > 0'], ['a']); "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax', 'pandas', 'scipy') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_outcome_exit_codes_and_result_words(tmp_path: Path) -> None:
    """Empty: PASS, exit 0. An INCONCLUSIVE row: never the word PASS, exit 0, or 4 with --strict; a
    REGRESSED row wins over it (exit 1). The JSON document is strict JSON (NaN as null) and agrees."""
    empty = CheckOutcome("unit", CheckOptions())
    document = json.loads(json.dumps(outcome_document(empty), allow_nan=False))
    assert (document["exit_code"], document["result"], document["counts"]) == (0, "pass", {})
    assert render_text(empty).endswith("result: PASS (nothing compared) -> exit 0")
    baseline = saved_baseline(
        hand_results({("a", "torch"): cell(BASE_ACCURACY), ("b", "torch"): cell(BASE_ACCURACY)}), tmp_path
    )
    noisy = [a - 0.02 + n for a, n in zip(BASE_ACCURACY, [0.1, -0.1, 0.08, -0.09, 0.05])]
    current = hand_results({("a", "torch"): cell(BASE_ACCURACY), ("b", "torch"): cell(noisy)})
    verdicts = compare(current, baseline, ACCURACY_ONLY)
    assert [v.status for v in verdicts] == ["WITHIN", "INCONCLUSIVE"]
    for strict, code in ((False, 0), (True, 5)):
        outcome = CheckOutcome("unit", ACCURACY_ONLY, verdicts, strict=strict)
        text = render_text(outcome)
        assert outcome.exit_code == code
        assert text.splitlines()[-1] == f"result: INCONCLUSIVE (1 WITHIN, 1 INCONCLUSIVE) -> exit {code}"
        assert "PASS" not in text
        assert "INCONCLUSIVE: 1 row(s) and 0 claim(s) that these seeds cannot decide" in text
        assert "b / torch / test_accuracy: change -0.012; detectable at these seeds:" in text
        document = json.loads(json.dumps(outcome_document(outcome), allow_nan=False))
        assert (document["exit_code"], document["result"], document["strict"]) == (code, "inconclusive", strict)
        assert document["counts"] == {"WITHIN": 1, "INCONCLUSIVE": 1}
        assert document["verdicts"][0]["p_worse"] is None  # identical seeds: no test, NaN -> null
    dropped = hand_results(
        {("a", "torch"): cell([a - 0.05 + n for a, n in zip(BASE_ACCURACY, NOISE)]), ("b", "torch"): cell(noisy)}
    )
    failing = CheckOutcome("unit", ACCURACY_ONLY, compare(dropped, baseline, ACCURACY_ONLY), strict=True)
    assert failing.exit_code == 1 and render_text(failing).splitlines()[-1].startswith("result: FAIL (")
