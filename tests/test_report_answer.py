"""The answer first (harness.analysis.verdicts): the wording follows the numbers, and the report leads with it."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.synthetic import synthetic_frames

from harness.analysis import Results
from harness.analysis.verdicts import BETTER, EQUIVALENT, TOO_FEW, UNDECIDED, WORSE, verdicts
from harness.check.options import parse_tolerance
from harness.report.document import MAX_ANSWER_LINES, answer

SEEDS = 5
# arm -> the final test_accuracy change from the reference (sgd-h16) per seed
CHANGES = {
    "momentum-h16": [0.10, 0.11, 0.09, 0.12, 0.10],  # a clear win
    "adam-h16": [0.0004, -0.0003, 0.0002, -0.0001, 0.0003],  # a tie well inside 1% of ~0.6
    "rmsprop-h16": [0.06, -0.05, 0.04, -0.03, 0.05],  # noise: the seeds cannot tell
    "adagrad-h16": [-0.08, -0.09, -0.07, -0.08, -0.1],  # a clear loss
}


def _results(changes: dict[str, list[float]], seeds: int = SEEDS) -> Results:
    optimizers = ("sgd", *(arm.split("-")[0] for arm in changes))
    frames = synthetic_frames(
        optimizers=optimizers, widths=(16,), backends=("torch",), seeds=seeds, epochs=2, diverged=0, failed=0
    )
    trials, metrics = frames.trials, frames.metrics.copy()
    final = (metrics["metric"] == "test_accuracy") & (metrics["epoch"] == 2)
    base = np.linspace(0.58, 0.62, seeds)
    for row in trials[["hash", "arm", "seed"]].itertuples(index=False):
        value = base[row.seed] + (changes[row.arm][row.seed] if row.arm in changes else 0.0)
        metrics.loc[final & (metrics["hash"] == row.hash), "value"] = value
    return Results(trials, metrics, frames.arms, frames.axes, name="answer", report_options={"reference": "sgd-h16"})


@pytest.fixture(scope="module")
def table():
    return verdicts(_results(CHANGES)).set_index("arm")


def test_outcomes_follow_the_numbers(table) -> None:
    assert table.loc["momentum-h16", "outcome"] == BETTER
    assert table.loc["adam-h16", "outcome"] == EQUIVALENT
    assert table.loc["rmsprop-h16", "outcome"] == UNDECIDED
    assert table.loc["adagrad-h16", "outcome"] == WORSE
    assert table.loc["momentum-h16", "seeds_better"] == 5 and table.loc["adagrad-h16", "seeds_better"] == 0
    # the bound a tie states holds the whole 95% interval and sits inside the margin (1% of the reference mean)
    tie = table.loc["adam-h16"]
    assert max(abs(tie["ci_low"]), abs(tie["ci_high"])) == pytest.approx(tie["bound"])
    assert tie["bound"] < tie["margin"] == pytest.approx(0.01 * 0.6, rel=1e-6)


def test_sentences(table) -> None:
    win = table.loc["momentum-h16", "text"]
    assert win.startswith("momentum-h16 vs sgd-h16: better, +0.1040 test_accuracy [0.0898, 0.1182]")
    assert "5 of 5 seeds better, significant after Holm" in win
    assert table.loc["adagrad-h16", "text"].startswith("adagrad-h16 vs sgd-h16: worse, -0.0840 test_accuracy")
    tie = table.loc["adam-h16", "text"]
    assert "no detectable difference larger than 0.00047 test_accuracy" in tie and "within the margin +-0.006" in tie
    undecided = table.loc["rmsprop-h16", "text"]
    assert "undecided" in undecided and "not significant after Holm" in undecided
    assert f"these seeds detect differences of {table.loc['rmsprop-h16', 'detectable']:.2f}"[:-1] in undecided
    assert "3 of 5 seeds better" in undecided


def test_a_wider_margin_turns_undecided_into_a_tie() -> None:
    # the suite's check tolerance is the margin: 0.2 absolute covers the noisy arm's whole interval
    table = verdicts(_results(CHANGES), parse_tolerance(0.2, "test")).set_index("arm")
    assert table.loc["rmsprop-h16", "outcome"] == EQUIVALENT
    assert table.loc["momentum-h16", "outcome"] == BETTER  # significance is not the margin's business


def test_one_seed_cannot_tell() -> None:
    table = verdicts(_results({"momentum-h16": [0.1]}, seeds=1))
    assert table["outcome"].tolist() == [TOO_FEW]
    assert "cannot tell, 1 paired seed" in table["text"].iloc[0]


def test_a_big_grid_lists_the_decided_comparisons_first() -> None:
    changes = {f"{name}-h16": [0.0] * SEEDS for name in ("momentum", "adam", "rmsprop", "adagrad")}
    changes["adagrad-h16"] = [-0.08, -0.09, -0.07, -0.08, -0.1]
    results = _results(changes)
    shown = answer(results)
    assert shown.summary == "4 comparisons of test_accuracy: 1 worse, 3 equivalent"
    assert [outcome for outcome, _ in shown.lines] == [WORSE, EQUIVALENT, EQUIVALENT, EQUIVALENT]
    assert MAX_ANSWER_LINES >= 4 and shown.left_out == 0
