"""The outcome of `harness check`: its exit code, a plain aligned-text report and the --json document.

Exit codes: 0 nothing failed (every row WITHIN, IMPROVED or NEW, every claim holds; or some rows
INCONCLUSIVE or claims undecided, which the result line says: `result: INCONCLUSIVE`, never PASS);
1 a REGRESSED or MISSING row, or a false claim; 3 some checked trials failed, diverged or timed out
(it takes precedence over 1: the verdicts were computed without those trials, so fix the run
first); 5 with --strict, some row INCONCLUSIVE or claim undecided and nothing worse; 2 is raised
earlier, for bad input (HarnessError).
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
from harness.check.equivalence import ALPHA, MAX_SEEDS_SEARCHED, POWER
from harness.check.evidence import ClaimResult
from harness.check.gate import FAILING_VERDICTS, UNDECIDED_VERDICTS, VERDICTS, Verdict
from harness.check.options import CheckOptions
from harness.exit_codes import EXIT_DISAGREE as EXIT_FAIL
from harness.exit_codes import EXIT_INCONCLUSIVE
from harness.exit_codes import EXIT_OK as EXIT_PASS
from harness.exit_codes import EXIT_TRIALS_FAILED as EXIT_TRIALS


@dataclass(frozen=True)
class ClaimSeeds:
    """The confirmation seeds a suite's claims were judged on (a suite with `seeds: {explore, confirm}`)."""

    seeds: tuple[int, ...]  # the confirmation seeds in the store: the claims are judged on these
    explore: tuple[int, ...]  # the seeds the claims were written on: not used to judge them
    missing: tuple[int, ...]  # confirmation seeds the store lacks
    command: str  # what runs the missing ones

    def text(self) -> str:
        """'claims judged on confirmation seeds 3-7 (explore seeds 0-2 not used)' (+ what is missing)."""
        from harness.suite.schema import seed_text

        line = (
            f"claims judged on confirmation seeds {seed_text(self.seeds)} "
            f"(explore seeds {seed_text(self.explore)} not used)"
        )
        if self.missing:
            line += (
                f"; confirmation seed(s) {seed_text(self.missing)} are not in the store, so fewer seeds decide: "
                f"run `{self.command}`"
            )
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"confirm": list(self.seeds), "explore_not_used": list(self.explore), "missing": list(self.missing)}


@dataclass(frozen=True)
class CheckOutcome:
    """Everything one `harness check` found."""

    suite: str
    options: CheckOptions
    verdicts: Sequence[Verdict] = field(default_factory=tuple)
    claims: Sequence[ClaimResult] = field(default_factory=tuple)
    trials_not_ok: pd.DataFrame | None = None  # Results.failures(): the checked trials whose status is not 'ok'
    # diverged trials in the arms the suite's check.expect_diverged names: a finding, shown, not exit 3
    expected_divergence: pd.DataFrame | None = None
    baseline: Baseline | None = None
    strict: bool = False  # --strict: an INCONCLUSIVE row or an undecided claim exits EXIT_INCONCLUSIVE
    claim_seeds: ClaimSeeds | None = None  # the claims were judged on confirmation seeds only (None: on every seed)

    @property
    def failing_rows(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.status in FAILING_VERDICTS]

    @property
    def inconclusive_rows(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.status in UNDECIDED_VERDICTS]

    @property
    def false_claims(self) -> list[ClaimResult]:
        return [claim for claim in self.claims if not claim.passed and not claim.undecided]

    @property
    def undecided_claims(self) -> list[ClaimResult]:
        return [claim for claim in self.claims if claim.undecided]

    @property
    def inconclusive(self) -> bool:
        """Some row or claim the seeds could not decide (and nothing failed)."""
        return bool(self.inconclusive_rows or self.undecided_claims)

    @property
    def exit_code(self) -> int:
        if self.trials_not_ok is not None and len(self.trials_not_ok):
            return EXIT_TRIALS
        if self.failing_rows or self.false_claims:
            return EXIT_FAIL
        if self.strict and self.inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_PASS

    @property
    def result(self) -> str:
        """PASS, FAIL, INCONCLUSIVE or TRIALS NOT OK: never PASS when anything is inconclusive."""
        code = self.exit_code
        if code in (EXIT_PASS, EXIT_INCONCLUSIVE):
            return "INCONCLUSIVE" if self.inconclusive else "PASS"
        return {EXIT_FAIL: "FAIL", EXIT_TRIALS: "TRIALS NOT OK"}[code]


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
            "p worse (Holm)": format_number(verdict.p_holm, 2),
            "p within": format_number(verdict.p_within, 2),
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
        "p worse (Holm)",
        "p within",
        "status",
    ]
    return render_table(pd.DataFrame(rows, columns=columns))


def claim_lines(result: ClaimResult) -> list[str]:
    """A claim's PASS/FAIL line and one line of numbers per backend."""
    word = "UNDECIDED" if result.undecided else "PASS" if result.passed else "FAIL"
    lines = [f"{word}  {result.claim.text}"]
    for outcome in result.outcomes:
        operands = ", ".join(f"{name} {_number(mean)}" for name, mean in outcome.operand_means.items())
        if outcome.log_ratio:
            measured = f"left / right = {_number(outcome.ratio)} (geometric mean over seeds)"
        else:
            measured = f"left - right = {_number(outcome.margin_mean)}"
        numbers = (
            f"left {_number(outcome.left_mean)}, right {_number(outcome.right_mean)}; "
            f"{measured}, 95% CI {_interval_text(outcome.ci_low, outcome.ci_high)}, n={outcome.n} seeds"
        )
        state = "undecided" if outcome.undecided else "pass" if outcome.passed else "FAIL"
        lines.append(f"      [{outcome.backend}] {state}: {numbers}: {outcome.reason}")
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
            "rule: the tolerance is a region of practical equivalence; two one-sided t tests per row "
            f"({ALPHA:.0%} each): REGRESSED = shown worse beyond the tolerance (Holm-corrected over the rows "
            "that can fail); WITHIN = shown not worse beyond it; IMPROVED = shown better beyond it; "
            f"INCONCLUSIVE = neither. Paired by seed when >= {options.min_seeds} seeds are shared, Welch "
            f"otherwise; fewer than {options.min_seeds} seeds on a side: never WITHIN"
            f"{' (tolerance only when no test is possible)' if options.few_seeds == 'tolerance' else ''}."
        )
        lines.append(verdict_table(outcome.verdicts) if outcome.verdicts else "(no rows to compare)")
        noted = [verdict for verdict in outcome.verdicts if verdict.notes]
        if noted:
            lines.append("notes:")
            lines += [f"  {v.arm} / {v.backend} / {v.metric}: {note}" for v in noted for note in v.notes]
    if outcome.claims:
        lines.append(f"claims of suite {outcome.suite!r} (95% CI over seeds, paired by seed, per backend):")
        seeds = outcome.claim_seeds
        lines.append(
            f"  {seeds.text()}"
            if seeds is not None
            else "  claims judged on every stored seed (the suite has no confirmation seeds)"
        )
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
    expected = outcome.expected_divergence
    if expected is not None and len(expected):
        arms = ", ".join(dict.fromkeys(expected["arm"]))
        lines.append(
            f"diverged as the suite expects (check.expect_diverged; not failed trials): {len(expected)} trial(s) "
            f"in {arms}"
        )
    lines += inconclusive_lines(outcome)
    lines.append(result_line(outcome))
    return "\n".join(lines)


def inconclusive_lines(outcome: CheckOutcome) -> list[str]:
    """What the seeds could not decide, one line each, with the change they could have detected."""
    rows, claims = outcome.inconclusive_rows, outcome.undecided_claims
    if not (rows or claims):
        return []
    consequence = (
        f"--strict: exit {EXIT_INCONCLUSIVE}"
        if outcome.strict
        else f"exit 0 without --strict; --strict makes it exit {EXIT_INCONCLUSIVE}"
    )
    lines = [
        f"INCONCLUSIVE: {len(rows)} row(s) and {len(claims)} claim(s) that these seeds cannot decide ({consequence}):"
    ]
    for verdict in rows:
        edge = -verdict.limit if verdict.direction == "higher" else verdict.limit
        if math.isfinite(verdict.detectable_change):
            needed = (
                f"~{verdict.seeds_needed} seeds would decide it"
                if verdict.seeds_needed is not None
                else f"more than {MAX_SEEDS_SEARCHED} seeds would (the change is that close to the edge)"
            )
            detail = (
                f"change {_signed(verdict.change)}; detectable at these seeds: {_number(verdict.detectable_change)} "
                f"beyond the edge {_signed(edge)} ({POWER:.0%} power); {needed}"
            )
        else:
            detail = f"change {_signed(verdict.change)}; " + "; ".join(
                note for note in verdict.notes if "environment" in note or "not decided" in note or "speed" in note
            )
        lines.append(f"  {verdict.arm} / {verdict.backend} / {verdict.metric}: {detail}")
    lines += [f"  claim {result.claim.text!r}: undecided" for result in claims]
    return lines


def result_line(outcome: CheckOutcome) -> str:
    """'result: PASS/FAIL/INCONCLUSIVE ...' with the counts and the exit code (never PASS with an inconclusive row)."""
    counts = Counter(verdict.status for verdict in outcome.verdicts)
    parts = [f"{counts[status]} {status}" for status in VERDICTS if counts[status]]
    if outcome.claims:
        parts.append(
            f"{len(outcome.claims) - len(outcome.false_claims) - len(outcome.undecided_claims)}"
            f"/{len(outcome.claims)} claims hold"
        )
        if outcome.undecided_claims:
            parts.append(f"{len(outcome.undecided_claims)} undecided")
    failing = [f"{v.arm} / {v.backend} / {v.metric} {v.status}" for v in outcome.failing_rows]
    failing += [f"claim {result.claim.text!r} FAILED" for result in outcome.false_claims]
    detail = f": {'; '.join(failing)}" if failing else ""
    return f"result: {outcome.result} ({', '.join(parts) or 'nothing compared'}){detail} -> exit {outcome.exit_code}"


def _trial_records(failures: pd.DataFrame | None) -> list[dict[str, Any]]:
    return (
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


def outcome_document(outcome: CheckOutcome) -> dict[str, Any]:
    """The --json document: the same verdicts, claims and exit code as the text report."""
    baseline = outcome.baseline
    trials = _trial_records(outcome.trials_not_ok)
    return {
        "suite": outcome.suite,
        "exit_code": outcome.exit_code,
        "result": outcome.result.lower(),
        "strict": outcome.strict,
        "baseline": None
        if baseline is None
        else {"path": str(baseline.path), "suite": baseline.suite, "created_at": baseline.created_at},
        "rule": {
            "min_seeds": outcome.options.min_seeds,
            "few_seeds": outcome.options.few_seeds,
            "confidence": 0.95,
            "one_sided_alpha": ALPHA,
            "power": POWER,
            "correction": "holm (p_worse, over the rows that can fail)",
        },
        "counts": dict(Counter(verdict.status for verdict in outcome.verdicts)),
        "verdicts": [verdict.to_dict() for verdict in outcome.verdicts],
        "claims": [claim.to_dict() for claim in outcome.claims],
        "claim_seeds": None if outcome.claim_seeds is None else outcome.claim_seeds.to_dict(),
        "trials_not_ok": trials,
        "expected_divergence": _trial_records(outcome.expected_divergence),
    }


def render_json(outcome: CheckOutcome) -> str:
    return json.dumps(outcome_document(outcome), indent=2, sort_keys=True, allow_nan=False)
