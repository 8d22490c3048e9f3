"""`write_report`: a suite's results as one self-contained HTML page and a multi-page PDF."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.analysis.environment import environment_differences
from harness.analysis.verdicts import OUTCOMES, tolerance_from_suite, verdicts
from harness.errors import HarnessError
from harness.measures import TRIAL_STATUSES
from harness.report import sections
from harness.report.gallery import ReportFigure, build_figures
from harness.report.html import render_html
from harness.report.pdf import write_pdf
from harness.report.ranking_section import across_datasets_figures, across_datasets_tables
from harness.report.search_section import search_figures, search_tables
from harness.report.sections import DisplayTable

if TYPE_CHECKING:
    from harness.analysis import Results

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


class ReportError(HarnessError):
    """The report cannot be written (folder not writable, report extra not installed)."""


@dataclass(frozen=True)
class Answer:
    """The answer first: a verdict sentence per comparison (`harness.analysis.verdicts`), shortened for big grids."""

    summary: str  # counts per outcome ('' when there is nothing to compare)
    lines: tuple[tuple[str, str], ...]  # (outcome, sentence), at most MAX_ANSWER_LINES
    left_out: int  # comparisons not listed (they are in the comparisons table and CSV)


MAX_ANSWER_LINES = 12


def answer(results: Results, suite_document: Mapping[str, Any] | None = None) -> Answer:
    """The verdicts of every comparison, the decided ones first (better, worse, equivalent, undecided), the
    largest differences first within each; at most MAX_ANSWER_LINES, and a count of the rest."""
    if len(results.arms) < 2:
        return Answer("", (), 0)
    table = verdicts(results, tolerance_from_suite(suite_document, results.primary_metric))
    if table.empty:
        return Answer("", (), 0)
    counts = table["outcome"].value_counts()
    summary = f"{len(table)} comparisons of {results.primary_metric}: " + ", ".join(
        f"{int(counts[name])} {name}" for name in OUTCOMES if name in counts
    )
    rank = table["outcome"].map({name: index for index, name in enumerate(OUTCOMES)})
    size = table["mean_difference"].abs().fillna(-1.0)
    table = table.assign(_rank=rank, _size=-size).sort_values(["_rank", "_size"], kind="stable")
    shown = table.head(MAX_ANSWER_LINES)
    lines = tuple(zip(shown["outcome"].astype(str), shown["text"].astype(str)))
    return Answer(summary, lines, len(table) - len(shown))


@dataclass(frozen=True)
class ReportContent:
    """Everything a report shows, computed once and rendered twice (HTML and PDF)."""

    name: str
    description: str
    answer: Answer
    version: str
    reference: str
    meta_lines: tuple[str, ...]
    tables: tuple[DisplayTable, ...]
    figures: tuple[ReportFigure, ...]
    failures: DisplayTable
    environment: DisplayTable
    suite_text: str
    reference_spec: str
    spec_differences: DisplayTable


def _seed_roles_line(suite_document: Mapping[str, Any] | None) -> tuple[str, ...]:
    """'seeds 0-2 explore, 3-7 confirm (claims are judged on the confirmation seeds)' for a suite with them."""
    from harness.errors import HarnessError
    from harness.suite.load import seed_roles
    from harness.suite.schema import parse_seed_sets
    from harness.suite.yaml_source import SuiteIssue

    raw = (suite_document or {}).get("seeds")
    if not isinstance(raw, Mapping):
        return ()
    try:
        sets = parse_seed_sets(raw, ("seeds",))
    except (SuiteIssue, HarnessError):
        return ()
    return (f"{seed_roles(sets.explore, sets.confirm)} (claims are judged on the confirmation seeds)",)


def _meta_lines(results: Results, generated: str, seed_roles: tuple[str, ...] = ()) -> tuple[str, ...]:
    trials = results.trials
    counts = trials["status"].value_counts()
    status = ", ".join(f"{int(counts.get(name, 0))} {name}" for name in TRIAL_STATUSES)
    seeds = trials["seed"].nunique() if len(trials) else 0
    return (
        f"{len(trials)} trials: {status}",
        f"{len(results.arms)} arms x {len(results.backends)} backends ({', '.join(results.backends)}) x {seeds} seeds",
        *seed_roles,
        f"primary metric {results.primary_metric}; {_reference_line(results)}",
        *sections.data_lines(results),
        *sections.python_model_lines(results),
        *_environment_line(results),
        f"generated {generated} by harness {__version__}",
    )


def _environment_line(results: Results) -> tuple[str, ...]:
    # A warning up front; the Environment section says which values and which trials.
    aspects = list(dict.fromkeys(difference.aspect for difference in environment_differences(results.trials)))
    return (f"trials ran in different environments ({', '.join(aspects)} differ): see Environment",) if aspects else ()


def _reference_line(results: Results) -> str:
    options = results.report_options
    if options.per_axis:
        return f"reference {options.describe_reference()} (each arm vs the arm that differs from it only there)"
    return f"reference arm {options.describe_reference()}"


def report_content(results: Results, suite_document: Mapping[str, Any] | None = None) -> ReportContent:
    """Compute every table, figure and text of the report."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ReportContent(
        name=results.name,
        description=results.description,
        answer=answer(results, suite_document),
        version=__version__,
        reference=results.reference,
        meta_lines=_meta_lines(results, generated, _seed_roles_line(suite_document)),
        tables=(*sections.report_tables(results), *search_tables(results), *across_datasets_tables(results)),
        figures=(*build_figures(results), *search_figures(results), *across_datasets_figures(results)),
        failures=sections.failures_table(results),
        environment=sections.environment_table(results),
        suite_text=sections.suite_document_text(suite_document),
        reference_spec=sections.reference_spec_text(results),
        spec_differences=sections.spec_differences_table(results),
    )


def write_report(
    results: Results,
    directory: str | Path,
    suite_document: Mapping[str, Any] | None = None,
    interactive: bool = False,
) -> tuple[Path, Path]:
    """Write `<directory>/report.html` (one self-contained file) and `<directory>/report.pdf`, and with
    `interactive` also `<directory>/report_interactive.html` (plotly figures; harness.report.interactive).

    Args:
        results: the suite's results.
        directory: the report folder (the CLI passes reports/<suite>); created if missing.
        suite_document: the suite as loaded from YAML, shown in the report (None: left out).

    Returns:
        (html_path, pdf_path).

    Raises:
        ReportError: the folder cannot be created or written.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(
            f"report: cannot create the report folder {str(directory)!r} ({error.strerror or error}). "
            "Expected a writable folder. Fix: pass a folder you can write to."
        ) from None
    content = report_content(results, suite_document)
    html_path, pdf_path = directory / HTML_NAME, directory / PDF_NAME
    try:
        html = render_html(content)
        html_path.write_text(html, encoding="utf-8")
        write_pdf(content, pdf_path, html)
        if interactive:
            from harness.report.interactive import write_interactive

            write_interactive(results, directory, content)
    except OSError as error:
        raise ReportError(
            f"report: cannot write into {str(directory)!r} ({error.strerror or error}). "
            "Fix: check the folder's permissions and free space."
        ) from None
    return html_path, pdf_path
