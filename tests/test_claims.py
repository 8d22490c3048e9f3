"""Tests of the `expect:` claim language (harness.check.claims) and its evaluation over seeds
(harness.check.evidence), on hand-built results whose intervals are recomputed with scipy."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis import Results
from harness.check.claims import (
    Binary,
    ClaimError,
    Negative,
    Number,
    Operand,
    claim_metrics,
    parse_claim,
    tokenize,
    validate_claims,
)
from harness.check.evidence import evaluate_claims

FLOAT_TOLERANCE = 1e-12  # float64 sums of a handful of values

# -- parsing --------------------------------------------------------------------------------------

VALID = {
    "arm-vs-arm": (
        "he.test_accuracy > xavier.test_accuracy",
        [("he", "test_accuracy"), ("xavier", "test_accuracy")],
        ">",
    ),
    "arm-vs-constant": ("std001.final_train_loss > 2.2", [("std001", "final_train_loss")], ">"),
    "difference": (
        "adam.test_accuracy - sgd.test_accuracy > 0.05",
        [("adam", "test_accuracy"), ("sgd", "test_accuracy")],
        ">",
    ),
    "backticks": (
        "`hidden=[32]`.test_accuracy >= `hidden=[8]`.test_accuracy",
        [("hidden=[32]", "test_accuracy"), ("hidden=[8]", "test_accuracy")],
        ">=",
    ),
    "double-quotes": (
        '"lr=0.1,initializer=he_normal".test_loss <= 1',
        [("lr=0.1,initializer=he_normal", "test_loss")],
        "<=",
    ),
    "single-quotes": ("'a b'.best_train_loss < 1e-1", [("a b", "best_train_loss")], "<"),
    "arithmetic": (
        "(a.train_seconds + b.train_seconds) / 2 * -1 < -0.5",
        [("a", "train_seconds"), ("b", "train_seconds")],
        "<",
    ),
    "constant-left": ("0.9 < a.test_accuracy", [("a", "test_accuracy")], "<"),
    "repeated-operand": ("a.test_loss - a.test_loss * 2 < 0", [("a", "test_loss")], "<"),
}


@pytest.mark.parametrize("case", list(VALID), ids=list(VALID))
def test_parse_valid_claims(case: str) -> None:
    text, operands, comparison = VALID[case]
    claim = parse_claim(text)
    assert [(operand.arm, operand.metric) for operand in claim.operands] == operands
    assert claim.comparison == comparison and claim.text == text


def test_parse_builds_the_expected_tree() -> None:
    claim = parse_claim("-a.x * (b.y - 2) / 4 > c.z + 1")
    assert claim.left == Binary(
        "/", Binary("*", Negative(Operand("a", "x")), Binary("-", Operand("b", "y"), Number(2.0))), Number(4.0)
    )
    assert claim.right == Binary("+", Operand("c", "z"), Number(1.0))
    values = {("a", "x"): np.array([1.0, 2.0]), ("b", "y"): np.array([4.0, 6.0]), ("c", "z"): np.array([0.0, 1.0])}
    # left = -x * (y - 2) / 4 = [-0.5, -2.0]; right = z + 1 = [1, 2]; margin = left - right
    assert claim.margin(values).tolist() == [-1.5, -4.0]


INVALID = {
    "import-call": ("__import__('os')", r"calls such as __import__\(\.\.\.\) are not part of the claim language"),
    "import-in-comparison": ("__import__('os').system('x') > 0", r"calls such as __import__"),
    "open-call": ('open("/etc/passwd").read() > 0', r"calls such as open"),
    "method-call": ("a.test_accuracy() > 0", r"calls are not part of the claim language"),
    "attribute-chain": ("a.test_accuracy.real > 0", r"attribute access beyond <arm>\.<metric>"),
    "dunder-chain": ('"a".__class__.__bases__ > 0', r"attribute access beyond"),
    "bare-name": ("x > 1", r"'x': a bare name is not a value: write <arm>\.<metric>"),
    "bare-names-both": ("adam > sgd", r"'adam': a bare name is not a value"),
    "indexing": ("a.test_accuracy[0] > 1", r"indexing is not part of the claim language"),
    "equality": ("a.test_accuracy == 1", r"'=' \(compare with > >= < <=\)"),
    "not-equal": ("a.test_accuracy != 1", r"'!' \(compare with"),
    "power": ("a.test_accuracy ** 2 > 1", r"'\*\*' \(power\)"),
    "chained": ("0 < a.test_accuracy < 1", r"one comparison per claim"),
    "no-comparison": ("a.test_accuracy + 1", r"expected a comparison \(> >= < <=\), found the end of the claim"),
    "no-operand": ("1 > 0", r"a claim must read at least one <arm>\.<metric>"),
    "lambda": ("lambda: 1", r"a colon is not part of the claim language"),
    "boolean": ("a.test_accuracy > 1 and b.test_accuracy > 1", r"expected the end of the claim, found 'and'"),
    "string-value": ("a.test_accuracy > 'high'", r"a quoted arm name must be followed by \.<metric>"),
    "unclosed-quote": ("`hidden=[32].test_accuracy > 1", r"never closed with `"),
    "unclosed-paren": ("(a.test_accuracy > 1", r"expected '\)' to close the '\(' at column 1"),
    "comma": ("a.test_accuracy, b.test_accuracy > 1", r"a comma is not part of the claim language"),
    "semicolon": ("a.test_accuracy > 1; import os", r"a semicolon is not part of the claim language"),
    "empty": ("   ", r"claim: empty"),
    "not-a-string": (42, r"expected a string"),
    "too-long": ("a.test_accuracy > " + "1+" * 600 + "1", r"at most 1000"),
    "too-deep": ("(" * 40 + "a.test_accuracy" + ")" * 40 + " > 1", r"nested more than 32 levels deep"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_parser_rejects_anything_outside_the_language(case: str) -> None:
    text, message = INVALID[case]
    with pytest.raises(ClaimError, match=message):
        parse_claim(text)  # type: ignore[arg-type]


def test_error_points_at_the_column() -> None:
    with pytest.raises(ClaimError) as raised:
        parse_claim("a.test_accuracy > b.test_accuracy.x")
    message = str(raised.value)
    assert "(column 34)" in message
    pointer_line = message.splitlines()[-1]
    assert pointer_line.index("^") - 4 == 33  # four spaces of indent, then the 0-based column of the '.'


def test_tokenizer_reads_numbers_and_quotes() -> None:
    kinds = [(token.kind, token.text) for token in tokenize("`a.b`.c >= .5e-2")]
    assert kinds == [
        ("quoted", "a.b"),
        ("dot", "."),
        ("name", "c"),
        ("compare", ">="),
        ("number", ".5e-2"),
        ("end", ""),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("adma.test_accuracy > sgd.test_accuracy", r"expect\[0\]: claim .*unknown arm 'adma'\. Did you mean 'adam'\?"),
        (
            "adam.test_acuracy > 0.5",
            r"expect\[0\]: claim .*unknown metric 'test_acuracy'\. Did you mean 'test_accuracy'\?",
        ),
        ("adam.__class__ > 0", r"unknown metric '__class__'"),
        ("hidden.test_accuracy > 0", r"unknown arm 'hidden'.*go in backticks"),
    ],
    ids=["arm-typo", "metric-typo", "dunder-metric", "unquoted-arm"],
)
def test_validate_claims_names_unknown_arms_and_metrics(text: str, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        validate_claims([text], arms=("sgd", "adam", "hidden=[32]"))


def test_validate_claims_accepts_every_documented_metric_form() -> None:
    arms = ("sgd", "hidden=[32]")
    texts = [
        "sgd.final_train_loss > 2.2",
        "sgd.best_validation_accuracy > 0",
        "`hidden=[32]`.train_seconds < 10",
        "sgd.test_r2 < 1",
        "sgd.wall_seconds > sgd.eval_seconds",
    ]
    claims = validate_claims(texts, arms)
    assert [claim.text for claim in claims] == texts
    assert {"final_train_loss", "at_best_validation_test_accuracy", "train_seconds", "minibatch_loss"} <= set(
        claim_metrics()
    )
    assert not any(name.startswith("best_test_") for name in claim_metrics())


def test_a_best_test_metric_is_refused_as_an_oracle() -> None:
    with pytest.raises(
        ClaimError,
        match=r"expect\[0\]: claim .*best_test_accuracy would be the best test value over "
        r"epochs, i.e. an epoch chosen by the test set .* Use at_best_validation_test_accuracy",
    ):
        validate_claims(["sgd.best_test_accuracy > 0.9"], ("sgd",))
    # A suite without a validation split records no validation_loss: the selected value cannot exist.
    with pytest.raises(ClaimError, match="this suite records no validation_loss: its dataset has no validation split"):
        evaluate_claims(claim_results(), ["he.at_best_validation_test_accuracy > 0.5"])


def test_validate_claims_reports_the_position() -> None:
    with pytest.raises(ClaimError, match=r"^expect\[1\]: claim 'x > 1'"):
        validate_claims(["sgd.test_accuracy > 0", "x > 1"], arms=("sgd",))


# -- evaluation over seeds ------------------------------------------------------------------------

PEAK_GAIN, PEAK_LOSS_FACTOR = 0.03, 0.8  # epoch 1 of `claim_results(peaked=True)` against the final epoch
PEAK_VALIDATION_LOSS = (0.5, 0.7, 0.5)  # per epoch, peaked only: the least is first reached at epoch 0

# Final test accuracy and train loss per (arm, backend), one value per seed 0..3.
ACCURACY = {
    ("he", "torch"): [0.91, 0.93, 0.90, 0.92],
    ("xavier", "torch"): [0.88, 0.90, 0.88, 0.89],
    ("he", "keras"): [0.91, 0.89, 0.93, 0.90],
    ("xavier", "keras"): [0.90, 0.91, 0.89, 0.92],
}
TRAIN_LOSS = {
    ("he", "torch"): [0.20, 0.25, 0.22, 0.21],
    ("xavier", "torch"): [2.30, 2.31, 2.29, 2.32],
    ("he", "keras"): [0.21, 0.24, 0.23, 0.20],
    ("xavier", "keras"): [2.31, 2.30, 2.30, 2.33],
}


def claim_results(
    diverged: tuple[str, str, int] | None = None, zero_seconds: tuple[str, int] | None = None, peaked: bool = False
) -> Results:
    """Two arms x two backends x four seeds, with ACCURACY and TRAIN_LOSS as the final (epoch 2) values.

    Epochs 0 and 1 are worse than the final one (accuracy x0.1, x0.5; loss /0.1, /0.5), so the best
    epoch is the final one, unless `peaked`: then epoch 1 is the best (accuracy + PEAK_GAIN, loss x
    PEAK_LOSS_FACTOR) and training got worse after it, as with overfitting."""
    trials, metrics = [], []
    for (arm, backend), accuracies in ACCURACY.items():
        for seed, accuracy in enumerate(accuracies):
            key = f"{arm}-{backend}-{seed}"
            status = "diverged" if diverged == (arm, backend, seed) else "ok"
            seconds = 0.0 if zero_seconds == (arm, seed) else 1.0 + 0.1 * seed + (0.5 if arm == "xavier" else 0.0)
            trials.append(
                {
                    "hash": key,
                    "arm": arm,
                    "backend": backend,
                    "seed": seed,
                    "status": status,
                    "error": None,
                    "diverged_epoch": 2 if status == "diverged" else None,
                    "epochs_completed": 2,
                    "train_seconds": seconds,
                    "eval_seconds": 0.1,
                    "wall_seconds": seconds + 0.5,
                    "host": "h",
                    "versions": json.dumps({backend: "1"}),
                    "device": json.dumps({"device": "cpu"}),
                }
            )
            for epoch, scale in ((0, 0.1), (1, 0.5), (2, 1.0)):
                final = epoch == 2
                loss = TRAIN_LOSS[(arm, backend)][seed]
                if peaked:  # least validation loss at epochs 0 and 2: the first, 0, is the selected epoch
                    value = PEAK_VALIDATION_LOSS[epoch]
                    metrics.append({"hash": key, "epoch": epoch, "metric": "validation_loss", "value": value})
                if peaked and epoch == 1:
                    metrics += [
                        {"hash": key, "epoch": 1, "metric": "test_accuracy", "value": accuracy + PEAK_GAIN},
                        {"hash": key, "epoch": 1, "metric": "train_loss", "value": loss * PEAK_LOSS_FACTOR},
                    ]
                    continue
                metrics += [
                    {
                        "hash": key,
                        "epoch": epoch,
                        "metric": "test_accuracy",
                        "value": math.nan
                        if final and status == "diverged"
                        else accuracy * scale
                        if not final
                        else accuracy,
                    },
                    {
                        "hash": key,
                        "epoch": epoch,
                        "metric": "train_loss",
                        "value": math.nan if final and status == "diverged" else loss / scale if not final else loss,
                    },
                ]
    return Results(
        pd.DataFrame(trials).astype({"diverged_epoch": "Int64"}),
        pd.DataFrame(metrics),
        arms=("he", "xavier"),
        axes=(),
        name="initializers",
    )


def t_interval(values: np.ndarray) -> tuple[float, float]:
    return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def test_arm_vs_arm_is_the_paired_difference_ci_per_backend() -> None:
    [result] = evaluate_claims(claim_results(), ["he.test_accuracy > xavier.test_accuracy"])
    torch, keras = result.outcomes
    difference = np.array(ACCURACY[("he", "torch")]) - np.array(ACCURACY[("xavier", "torch")])
    paired = stats.ttest_rel(ACCURACY[("he", "torch")], ACCURACY[("xavier", "torch")]).confidence_interval(0.95)
    assert (torch.ci_low, torch.ci_high) == pytest.approx((paired.low, paired.high), rel=1e-9)
    assert torch.margin_mean == pytest.approx(difference.mean(), abs=FLOAT_TOLERANCE)
    assert torch.passed and torch.n == 4 and torch.seeds == (0, 1, 2, 3)
    assert torch.operand_means == pytest.approx({"he.test_accuracy": 0.915, "xavier.test_accuracy": 0.8875}, rel=1e-9)
    # keras: he - xavier = [0.01, -0.02, 0.04, -0.02]: the mean is positive but the CI straddles 0.
    assert keras.margin_mean > 0 and keras.ci_low < 0 < keras.ci_high and not keras.passed
    # Neither shown nor refuted: undecided, with the seeds that would decide it (never a FAIL).
    assert keras.undecided and "straddles 0 (not entirely above 0)" in keras.reason
    assert re.search(r"~\d+ seeds would decide it", keras.reason)
    assert not result.passed and result.undecided  # a claim must hold on every backend


def test_difference_against_a_constant_shifts_the_interval() -> None:
    [holds, fails] = evaluate_claims(
        claim_results(),
        ["he.test_accuracy - xavier.test_accuracy > 0.01", "he.test_accuracy - xavier.test_accuracy > 0.03"],
    )
    difference = np.array(ACCURACY[("he", "torch")]) - np.array(ACCURACY[("xavier", "torch")])
    low, high = t_interval(difference - 0.01)
    torch = holds.outcomes[0]
    assert (torch.ci_low, torch.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert torch.passed and torch.left_mean == pytest.approx(difference.mean(), abs=FLOAT_TOLERANCE)
    assert torch.right_mean == 0.01
    assert not fails.outcomes[0].passed  # the CI of the difference, about [0.0195, 0.0355], is not above 0.03


def test_arm_vs_constant_is_the_ci_of_the_mean() -> None:
    [result] = evaluate_claims(claim_results(), ["xavier.final_train_loss > 2.2"])
    for outcome, backend in zip(result.outcomes, ("torch", "keras")):
        values = np.array(TRAIN_LOSS[("xavier", backend)])
        low, high = t_interval(values)
        assert (outcome.ci_low + 2.2, outcome.ci_high + 2.2) == pytest.approx((low, high), rel=1e-9)
        assert outcome.passed
    assert result.passed


def test_best_metric_reads_the_best_epoch() -> None:
    # Peaked: epoch 1 is better than the final epoch 2 (loss x0.8, accuracy + 0.03), so best_ and final_ differ.
    texts = [
        "he.best_train_loss < 0.21",
        "he.final_train_loss < 0.21",
        "he.at_best_validation_test_accuracy < 0.2",
        "he.final_test_accuracy > 0.92",
    ]
    best_loss, final_loss, selected, final_accuracy = evaluate_claims(claim_results(peaked=True), texts)
    loss, accuracy = np.array(TRAIN_LOSS[("he", "torch")]), np.array(ACCURACY[("he", "torch")])
    assert best_loss.outcomes[0].left_mean == pytest.approx((loss * PEAK_LOSS_FACTOR).mean(), rel=1e-12)
    assert final_loss.outcomes[0].left_mean == pytest.approx(loss.mean(), rel=1e-12)
    # The test accuracy at the epoch validation selects (epoch 0, the first of two least losses), not the
    # best test accuracy over epochs (epoch 1's, accuracy + PEAK_GAIN): the test set chooses nothing.
    assert selected.outcomes[0].left_mean == pytest.approx((accuracy * 0.1).mean(), rel=1e-12)
    assert final_accuracy.outcomes[0].left_mean == pytest.approx(accuracy.mean(), rel=1e-12)
    # The best epoch's loss (mean 0.176) is shown below 0.21; the final one (mean 0.22) is not.
    assert best_loss.outcomes[0].passed and not final_loss.outcomes[0].passed
    assert selected.passed and not final_accuracy.outcomes[0].passed
    final = claim_results(peaked=True).final()
    assert set(final["best_validation_epoch"]) == {0} and "best_test_accuracy" not in final.columns
    # Unpeaked, the final epoch is the best one: the same numbers.
    [best, final] = evaluate_claims(claim_results(), ["he.best_train_loss < 0.3", "he.final_train_loss < 0.3"])
    assert best.outcomes[0].margin_mean == pytest.approx(final.outcomes[0].margin_mean, abs=FLOAT_TOLERANCE)


def test_less_than_uses_the_upper_bound() -> None:
    [result] = evaluate_claims(claim_results(), ["he.final_train_loss < xavier.final_train_loss"])
    outcome = result.outcomes[0]
    difference = np.array(TRAIN_LOSS[("he", "torch")]) - np.array(TRAIN_LOSS[("xavier", "torch")])
    assert (outcome.ci_low, outcome.ci_high) == pytest.approx(t_interval(difference), rel=1e-9)
    assert outcome.ci_high < 0 and result.passed and "lies entirely below 0" in outcome.reason


def test_seeds_that_agree_exactly_leave_the_claim_undecided() -> None:
    """Every pair differs by exactly 0.5 s: a zero-width interval. Not certainty, in either direction."""
    holds, wrong = evaluate_claims(
        claim_results(), ["he.train_seconds < xavier.train_seconds", "he.train_seconds > xavier.train_seconds"]
    )
    for result in (holds, wrong):
        outcome = result.outcomes[0]
        assert outcome.ci_method == "exact" and outcome.ci_low == outcome.ci_high == pytest.approx(-0.5, rel=1e-12)
        assert outcome.undecided and not outcome.passed and "the seeds agree exactly" in outcome.reason
        assert result.undecided and not result.passed


def test_diverged_seed_leaves_the_pair_out() -> None:
    [result] = evaluate_claims(
        claim_results(diverged=("xavier", "torch", 1)), ["he.test_accuracy > xavier.test_accuracy"]
    )
    torch = result.outcomes[0]
    assert torch.seeds == (0, 2, 3) and torch.n == 3
    kept = [0, 2, 3]
    difference = np.array(ACCURACY[("he", "torch")])[kept] - np.array(ACCURACY[("xavier", "torch")])[kept]
    assert (torch.ci_low, torch.ci_high) == pytest.approx(t_interval(difference), rel=1e-9)


def test_division_by_zero_drops_the_seed_and_says_so() -> None:
    [result] = evaluate_claims(claim_results(zero_seconds=("he", 2)), ["xavier.train_seconds / he.train_seconds > 1"])
    torch = result.outcomes[0]
    assert torch.n == 3 and 2 not in torch.seeds and "1 seed(s) left out" in torch.reason


def test_fewer_than_two_seeds_cannot_show_a_claim() -> None:
    results = claim_results()
    only_seed_zero = Results(
        results.trials[results.trials["seed"] == 0], results.metrics, arms=results.arms, axes=(), name="initializers"
    )
    [result] = evaluate_claims(only_seed_zero, ["he.test_accuracy > 0"])
    assert not result.passed and "needs at least 2 seeds" in result.outcomes[0].reason


def test_unrecorded_metric_is_an_error_at_check_time() -> None:
    with pytest.raises(ClaimError, match=r"expect\[0\]: claim 'he.test_r2 > 0': unknown metric 'test_r2'"):
        evaluate_claims(claim_results(), ["he.test_r2 > 0"])


# -- ratio claims and the level of the claim rule -------------------------------------------------


def test_ratio_claim_is_judged_on_the_log_scale() -> None:
    """`x > 2 * y` is a ratio claim: the t interval of log(x) - log(2 y), shown as the ratio's interval."""
    [result] = evaluate_claims(claim_results(), ["xavier.final_train_loss > 5 * he.final_train_loss"])
    torch = result.outcomes[0]
    log_ratio = np.log(TRAIN_LOSS[("xavier", "torch")]) - np.log(5 * np.array(TRAIN_LOSS[("he", "torch")]))
    low, high = t_interval(log_ratio)
    assert torch.log_ratio and torch.ci_method == "t-log-ratio"
    assert (torch.ci_low, torch.ci_high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-9)
    assert torch.ratio == pytest.approx(math.exp(log_ratio.mean()), rel=1e-12)
    assert torch.passed == (low > 0) and "ratio left / right" in torch.reason
    [additive] = evaluate_claims(claim_results(), ["xavier.final_train_loss - he.final_train_loss > 1"])
    assert not additive.outcomes[0].log_ratio  # a difference stays a difference


def _false_pass_rate(seeds: int, log_sd: float, multiplicative: bool, replicates: int, generator) -> float:
    """`a > 3 * b` exactly at its boundary: a (tight, ~1% noise) and b log-normal with `log_sd`, the
    geometric mean of a equal to 3 x that of b. The rule must not pass it more than 2.5% of the time."""
    from harness.check.evidence import judge

    passes = 0
    for _ in range(replicates):
        b = np.exp(generator.normal(0.0, log_sd, seeds))
        a = 3.0 * np.exp(generator.normal(0.0, 0.01, seeds))
        passes += judge(a, 3.0 * b, ">", multiplicative).passed
    return passes / replicates


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_ratio_claims_hold_their_level(seeds: int) -> None:
    """The level of the ratio rule, by simulation: the false-pass rate at the boundary is one side of a
    95% interval, 2.5%. With 2,000 replicates the estimate's binomial sd is sqrt(0.025 * 0.975 / 2000) =
    0.0035, so 0.025 + 3 sd = 0.0355 bounds it (a rule at its level fails this about 1 run in 700; the
    difference rule, 16%, fails it always)."""
    generator = np.random.default_rng(20250 + seeds)
    rate = _false_pass_rate(seeds, 1.0, True, 2000, generator)
    assert rate <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 2000), rate


def test_the_difference_would_not_hold_the_level_of_a_ratio_claim() -> None:
    """Why ratios use the log scale: the difference's t interval at the boundary of the ARITHMETIC means
    (E[a] = 3 E[b]) passes far more often than 2.5% with skewed, log-normal b (16% measured, 3 seeds)."""
    from harness.check.evidence import judge

    generator = np.random.default_rng(7)
    passes = 0
    for _ in range(1000):
        b = np.exp(generator.normal(0.0, 1.0, 3))
        a = 3.0 * math.exp(0.5) * np.exp(generator.normal(0.0, 0.02, 3))  # E[b] = exp(1/2)
        passes += judge(a, 3.0 * b, ">", multiplicative=False).passed
    assert passes / 1000 > 0.10


def test_an_undecided_claim_is_inconclusive_in_the_check_outcome() -> None:
    """Undecided is neither PASS nor FAIL: the check says INCONCLUSIVE, exits 0, or 5 with --strict."""
    from harness.check.options import CheckOptions
    from harness.check.render import CheckOutcome, render_text

    claims = evaluate_claims(claim_results(), ["he.train_seconds < xavier.train_seconds", "he.test_accuracy > 0.5"])
    for strict, code in ((False, 0), (True, 5)):
        outcome = CheckOutcome("initializers", CheckOptions(), claims=claims, strict=strict)
        text = render_text(outcome)
        assert outcome.exit_code == code and outcome.false_claims == [] and len(outcome.undecided_claims) == 1
        assert "UNDECIDED  he.train_seconds < xavier.train_seconds" in text
        assert text.splitlines()[-1] == f"result: INCONCLUSIVE (1/2 claims hold, 1 undecided) -> exit {code}"
