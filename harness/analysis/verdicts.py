"""The answer first: one verdict in words per comparison, generated from its statistics.

For every row of `Results.comparisons()` (arm vs its reference, paired by seed), one of:

    BETTER / WORSE  Holm-adjusted paired t test p < ALPHA (the comparisons table's `significant`):
                    "adam vs sgd (torch): +0.12 test_accuracy [0.09, 0.15], 5 of 5 seeds better,
                    significant after Holm (p 0.0012)".
    EQUIVALENT      not significant, and the two one-sided tests against the practical margin
                    (harness.check.equivalence.margin_tests, TOST at ALPHA each side) put the
                    difference inside +-margin: "no detectable difference larger than B", where B is
                    the larger end of the 95% interval in absolute value (at most the margin).
    UNDECIDED       neither: the seeds cannot tell. The line names the smallest difference these
                    seeds would detect (80% power at Holm's first-step level, two-sided:
                    `detectable_change`) and the seeds that would settle a difference of the margin
                    (`seeds_needed`).
    TOO_FEW         fewer than 2 paired seeds: no test.

The practical margin is the check's tolerance for the metric (`check:` block of the suite, else
the default: 1% of the reference arm's mean), so the report's "equivalent" and `harness check`'s
WITHIN use one number. Pure: frames in, a frame out; nothing is drawn or formatted for HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.analysis.comparisons import paired_by_seed, values_by_cell
from harness.analysis.statistics import ALPHA
from harness.analysis.text import format_number
from harness.measures import is_higher_better

if TYPE_CHECKING:
    from harness.analysis import Results
    from harness.check.options import Tolerance

BETTER, WORSE, EQUIVALENT, UNDECIDED, TOO_FEW = "better", "worse", "equivalent", "undecided", "too few seeds"
OUTCOMES = (BETTER, WORSE, EQUIVALENT, UNDECIDED, TOO_FEW)  # the order a report lists them in
VERDICT_COLUMNS = (
    "arm",
    "reference",
    "backend",
    "metric",
    "outcome",
    "n_pairs",
    "seeds_better",
    "seeds_tied",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_holm",
    "margin",
    "bound",
    "detectable",
    "seeds_needed",
    "text",
)


def _decimals(*values: float) -> int:
    """Decimals that show `values` (a difference and its interval) to about 2 significant digits of their
    spread: 0.1482 and -0.0008 become 0.148 and -0.001, not 0.1482 and -8.271e-04."""
    finite = [abs(value) for value in values if math.isfinite(value) and value != 0]
    spread = (max(values) - min(values)) if all(math.isfinite(value) for value in values) else 0.0
    scale = spread if spread > 0 else (min(finite) if finite else 1.0)
    return int(min(6, max(2, 2 - math.floor(math.log10(scale)))))


def _fixed(value: float, decimals: int, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    return text.replace("-0." + "0" * decimals, "0." + "0" * decimals).replace(
        "+0." + "0" * decimals, "0." + "0" * decimals
    )


def _margin(tolerance: Tolerance | None, reference_mean: float, metric: str) -> float:
    if tolerance is None:
        from harness.check.options import default_metrics

        tolerance = default_metrics(metric)[metric]
    return float(tolerance.limit(reference_mean)) if math.isfinite(reference_mean) else math.nan


def verdicts(results: Results, tolerance: Tolerance | None = None, metric: str | None = None) -> pd.DataFrame:
    """One row per comparison (`VERDICT_COLUMNS`), in the comparisons table's order; `text` is the sentence.

    Args:
        results: the suite's results.
        tolerance: the practical margin (`harness.check.options.Tolerance`); None: the check's default.
        metric: the metric (default: the primary metric).
    """
    from harness.check.equivalence import detectable_change, margin_tests, seeds_needed

    metric = metric or results.primary_metric
    table = results.comparisons(metric=metric)
    cells = values_by_cell(results.final(), metric)
    higher = is_higher_better(metric)
    family = max(1, int(table["n_pairs"].ge(2).sum())) if len(table) else 1
    rows: list[dict[str, Any]] = []
    empty = pd.Series(dtype=np.float64)
    for row in table.to_dict("records"):
        arm_values = cells.get((row["arm"], row["backend"]), empty)
        reference_values = cells.get((row["reference"], row["backend"]), empty)
        after, before = paired_by_seed(arm_values, reference_values)
        seeds = after
        difference = after - before
        better = int(np.sum(difference > 0 if higher else difference < 0))
        tied = int(np.sum(difference == 0))
        margin = _margin(tolerance, float(np.mean(before)) if len(before) else math.nan, metric)
        low, high, mean = float(row["ci_low"]), float(row["ci_high"]), float(row["mean_difference"])
        bound = max(abs(low), abs(high)) if math.isfinite(low) and math.isfinite(high) else math.nan
        detectable, needed = math.nan, None
        if len(seeds) < 2:
            outcome = TOO_FEW
        elif bool(row["significant"]):
            outcome = BETTER if (mean > 0) == higher else WORSE
        else:
            tests = margin_tests(after[:, None], before[:, None], True, margin, higher)
            p_not_worse = float(tests.p_not_worse[0])
            p_not_better = 1.0 - float(tests.p_better[0])  # H1: the change is short of +margin
            zero = bool(tests.zero_spread[0])
            inside = (p_not_worse < ALPHA and p_not_better < ALPHA) or (zero and abs(mean) <= margin)
            outcome = EQUIVALENT if inside else UNDECIDED
            standard_error = float(tests.standard_error[0])
            detectable = detectable_change(standard_error, len(seeds) - 1, ALPHA / 2 / family)
            needed = seeds_needed(margin, float(tests.seed_sd[0]), True, ALPHA / 2 / family)
        rows.append(
            {
                "arm": row["arm"],
                "reference": row["reference"],
                "backend": row["backend"],
                "metric": metric,
                "outcome": outcome,
                "n_pairs": len(seeds),
                "seeds_better": better,
                "seeds_tied": tied,
                "mean_difference": mean,
                "ci_low": low,
                "ci_high": high,
                "p_holm": float(row["p_holm"]),
                "margin": margin,
                "bound": bound,
                "detectable": detectable,
                "seeds_needed": needed,
            }
        )
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS[:-1]))
    multiple_backends = len(results.backends) > 1
    frame["text"] = [verdict_text(row, multiple_backends) for row in frame.to_dict("records")]
    return frame


def _bound(value: float) -> str:
    """The interval's larger end, rounded UP to 2 significant digits (a bound must not shrink in print)."""
    if not (math.isfinite(value) and value > 0):
        return format_number(value)
    exponent = math.floor(math.log10(value)) - 1
    rounded = math.ceil(value / 10.0**exponent - 1e-9) * 10.0**exponent
    return f"{rounded:.{max(0, -exponent)}f}"


def _p(value: float) -> str:
    return "p < 1e-4" if value < 1e-4 else f"p {value:.2g}"


def verdict_text(row: Mapping[Any, Any], name_backend: bool = True) -> str:
    """The sentence for one `verdicts` row."""
    head = f"{row['arm']} vs {row['reference']}" + (f" ({row['backend']})" if name_backend else "")
    metric, n = row["metric"], int(row["n_pairs"])
    if row["outcome"] == TOO_FEW:
        return f"{head}: cannot tell, {n} paired seed{'s' if n != 1 else ''} (a test needs 2 or more)."
    mean, low, high = float(row["mean_difference"]), float(row["ci_low"]), float(row["ci_high"])
    decimals = _decimals(mean, low, high)
    measured = f"{_fixed(mean, decimals, signed=True)} {metric} [{_fixed(low, decimals)}, {_fixed(high, decimals)}]"
    seeds = f"{row['seeds_better']} of {n} seeds better" + (f", {row['seeds_tied']} tied" if row["seeds_tied"] else "")
    if row["outcome"] == EQUIVALENT and row["bound"] == 0:
        return f"{head}: identical {metric} on all {n} seeds (no difference at all)."
    if row["outcome"] in (BETTER, WORSE):
        return f"{head}: {row['outcome']}, {measured}, {seeds}, significant after Holm ({_p(row['p_holm'])})."
    if row["outcome"] == EQUIVALENT:
        return (
            f"{head}: no detectable difference larger than {_bound(row['bound'])} {metric} "
            f"({measured}, {seeds}; within the margin +-{format_number(row['margin'], 2)} by two one-sided tests)."
        )
    detail = f"{head}: undecided, {measured}, {seeds}, not significant after Holm"
    if math.isfinite(row["detectable"]):
        detail += f"; these seeds detect differences of {format_number(row['detectable'], 2)} or more"
    needed = row["seeds_needed"]
    if needed is not None and not (isinstance(needed, float) and math.isnan(needed)):
        detail += f", about {int(needed)} seeds would settle +-{format_number(row['margin'], 2)}"
    return detail + "."


def tolerance_from_suite(document: Mapping[str, Any] | None, metric: str) -> Tolerance | None:
    """The suite's `check:` tolerance for `metric`, or None (use the default). A bad block is the
    check's business (`harness validate` reports it): here it falls back to the default."""
    from harness.check.options import parse_check_block
    from harness.errors import HarnessError

    block = (document or {}).get("check")
    if not isinstance(block, Mapping):
        return None
    try:
        return parse_check_block(block).metrics.get(metric)
    except HarnessError:
        return None
