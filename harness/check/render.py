"""The outcome of `harness check`: its exit code, a plain aligned-text report and the --json document.

Exit codes: 0 every row passes and every claim holds; 1 a REGRESSED or MISSING row, or a false
claim; 3 some checked trials failed, diverged or timed out (it takes precedence over 1: the
verdicts were computed without those trials, so fix the run first); 2 is raised earlier, for
bad input (HarnessError).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.analysis.text import format_number, render_table
from harness.check.baseline import Baseline
from harness.check.evidence import ClaimResult
from harness.check.gate import FAILING_VERDICTS, VERDICTS, Verdict
from harness.check.options import CheckOptions

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_TRIALS = 0, 1, 2, 3


@dataclass(frozen=True)
class CheckOutcome:
    """Everything one `harness check` found."""

    suite: str
    options: CheckOptions
    verdicts: Sequence[Verdict] = field(default_factory=tuple)
    claims: Sequence[ClaimResult] = field(default_factory=tuple)
    trials_not_ok: pd.DataFrame | None = None  # Results.failures(): the checked trials whose status is not 'ok'
    baseline: Baseline | None = None

    @property
    def failing_rows(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.status in FAILING_VERDICTS]

    @property
    def false_claims(self) -> list[ClaimResult]:
        return [claim for claim in self.claims if not claim.passed]

    @property
    def exit_code(self) -> int:
        if self.trials_not_ok is not None and len(self.trials_not_ok):
            return EXIT_TRIALS
        if self.failing_rows or self.false_claims:
            return EXIT_FAIL
        return EXIT_PASS


def _number(value: float) -> str:
    return format_number(value, 4)


def _signed(value: float) -> str:
    text = _number(value)
    return text if text.startswith("-") or text == "-" else f"+{text}"


def _change_text(verdict: Verdict) -> str:
    if not math.isfinite(verdict.change):
        return "-"
    relative = f" ({verdict.relative_change * 100:+.1f}%)" if math.isfinite(verdict.relative_change) else ""
    return f"{_signed(verdict.change)}{relative}"


def _interval_text(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"[{_number(low)}, {_number(high)}]"


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """The per-row table, plain text in aligned columns."""
    rows = [
        {
            "arm": verdict.arm,
            "backend": verdict.backend,
            "metric": verdict.metric,
            "better": verdict.direction,
            "baseline": f"{_number(verdict.baseline_mean)} (n={verdict.baseline_n})",
            "current": f"{_number(verdict.current_mean)} (n={verdict.current_n})",
            "change": _change_text(verdict),
            "tolerance": f"{verdict.tolerance} ({_number(verdict.limit)})"
            if math.isfinite(verdict.limit)
            else verdict.tolerance,
            "95% CI of change": _interval_text(verdict.ci_low, verdict.ci_high),
            "test": verdict.test or "-",
            "p (Holm)": format_number(verdict.p_holm, 2),
            "status": verdict.status,
        }
        for verdict in verdicts
    ]
    columns = [
        "arm",
        "backend",
        "metric",
        "better",
        "baseline",
        "current",
        "change",
        "tolerance",
        "95% CI of change",
        "test",
        "p (Holm)",
        "status",
    ]
    return render_table(pd.DataFrame(rows, columns=columns))


def claim_lines(result: ClaimResult) -> list[str]:
    """A claim's PASS/FAIL line and one line of numbers per backend."""
    lines = [f"{'PASS' if result.passed else 'FAIL'}  {result.claim.text}"]
    for outcome in result.outcomes:
        operands = ", ".join(f"{name} {_number(mean)}" for name, mean in outcome.operand_means.items())
        numbers = (
            f"left {_number(outcome.left_mean)}, right {_number(outcome.right_mean)}; "
            f"left - right = {_number(outcome.margin_mean)}, 95% CI {_interval_text(outcome.ci_low, outcome.ci_high)}, "
            f"n={outcome.n} seeds"
        )
        lines.append(f"      [{outcome.backend}] {'pass' if outcome.passed else 'FAIL'}: {numbers}: {outcome.reason}")
        if operands:
            lines.append(f"      [{outcome.backend}] means over those seeds: {operands}")
    if not result.outcomes:
        lines.append("      no backend ran")
    return lines


def _trial_lines(failures: pd.DataFrame) -> list[str]:
    lines = []
    for row in failures.to_dict("records"):
        detail = ""
        if (
            row.get("status") == "diverged"
            and row.get("diverged_epoch") is not None
            and not pd.isna(row.get("diverged_epoch"))
        ):
            detail = f" at epoch {int(row['diverged_epoch'])}"
        error = row.get("error")
        if isinstance(error, str) and error:
            detail += ": " + error.splitlines()[0][:160]
        lines.append(f"  {row['arm']} / {row['backend']} / seed {row['seed']}: {row['status']}{detail}")
    return lines


def render_text(outcome: CheckOutcome) -> str:
    """The human-readable report: the table, its notes, the claims, failed trials, and the result line."""
    options = outcome.options
    lines: list[str] = []
    if outcome.baseline is not None:
        where = outcome.baseline.path if outcome.baseline.path is not None else "(baseline)"
        lines.append(f"check: suite {outcome.suite!r} against {where} (saved {outcome.baseline.created_at})")
        lines.append(
            "rule: REGRESSED = moved the wrong way beyond the tolerance AND significant (95%, Holm-corrected over "
            f"the rows); paired by seed when >= {options.min_seeds} seeds are shared, Welch otherwise; fewer than "
            f"{options.min_seeds} seeds on a side: {'tolerance only' if options.few_seeds == 'tolerance' else 'UNCERTAIN'}."
        )
        lines.append(verdict_table(outcome.verdicts) if outcome.verdicts else "(no rows to compare)")
        few = sum(verdict.test == "insufficient seeds" for verdict in outcome.verdicts)
        if few:
            lines.append(
                f"{few} row(s) have fewer than {options.min_seeds} seeds on a side: a change there cannot be "
                "shown significant (add seeds to the suite)."
            )
        noted = [verdict for verdict in outcome.verdicts if verdict.notes]
        if noted:
            lines.append("notes:")
            lines += [f"  {v.arm} / {v.backend} / {v.metric}: {note}" for v in noted for note in v.notes]
    if outcome.claims:
        lines.append(f"claims of suite {outcome.suite!r} (95% CI over seeds, paired by seed, per backend):")
        for result in outcome.claims:
            lines += ["  " + line for line in claim_lines(result)]
    failures = outcome.trials_not_ok
    if failures is not None and len(failures):
        counts = Counter(failures["status"])
        lines.append(
            f"trials not ok ({', '.join(f'{n} {status}' for status, n in counts.items())}); the verdicts "
            "above leave them out:"
        )
        lines += _trial_lines(failures)
    lines.append(result_line(outcome))
    return "\n".join(lines)


def result_line(outcome: CheckOutcome) -> str:
    """'result: PASS/FAIL ...' with the counts and the exit code."""
    counts = Counter(verdict.status for verdict in outcome.verdicts)
    parts = [f"{counts[status]} {status}" for status in VERDICTS if counts[status]]
    if outcome.claims:
        parts.append(f"{len(outcome.claims) - len(outcome.false_claims)}/{len(outcome.claims)} claims hold")
    failing = [f"{v.arm} / {v.backend} / {v.metric} {v.status}" for v in outcome.failing_rows]
    failing += [f"claim {result.claim.text!r} FAILED" for result in outcome.false_claims]
    code = outcome.exit_code
    word = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_TRIALS: "TRIALS NOT OK"}[code]
    detail = f": {'; '.join(failing)}" if failing else ""
    return f"result: {word} ({', '.join(parts) or 'nothing compared'}){detail} -> exit {code}"


def outcome_document(outcome: CheckOutcome) -> dict[str, Any]:
    """The --json document: the same verdicts, claims and exit code as the text report."""
    baseline = outcome.baseline
    failures = outcome.trials_not_ok
    trials = (
        []
        if failures is None
        else [
            {
                key: (
                    None
                    if pd.isna(value)
                    else int(value)
                    if key in ("seed", "diverged_epoch", "epochs_completed")
                    else value
                )
                for key, value in row.items()
                if key in ("hash", "arm", "backend", "seed", "status", "diverged_epoch", "error")
            }
            for row in failures.to_dict("records")
        ]
    )
    return {
        "suite": outcome.suite,
        "exit_code": outcome.exit_code,
        "result": {EXIT_PASS: "pass", EXIT_FAIL: "fail", EXIT_TRIALS: "trials not ok"}[outcome.exit_code],
        "baseline": None
        if baseline is None
        else {"path": str(baseline.path), "suite": baseline.suite, "created_at": baseline.created_at},
        "rule": {
            "min_seeds": outcome.options.min_seeds,
            "few_seeds": outcome.options.few_seeds,
            "confidence": 0.95,
            "correction": "holm",
        },
        "counts": dict(Counter(verdict.status for verdict in outcome.verdicts)),
        "verdicts": [verdict.to_dict() for verdict in outcome.verdicts],
        "claims": [claim.to_dict() for claim in outcome.claims],
        "trials_not_ok": trials,
    }


def render_json(outcome: CheckOutcome) -> str:
    return json.dumps(outcome_document(outcome), indent=2, sort_keys=True, allow_nan=False)
