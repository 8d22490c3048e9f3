"""The PDF report: the HTML page printed by WeasyPrint; matplotlib pages when WeasyPrint is missing.

`write_pdf` renders the report's own HTML (the same template, its print stylesheet: A4, a title
block, sections that flow, tables that break between rows and repeat their header, figures at full
width, page numbers) with WeasyPrint, a maintained HTML/CSS-to-PDF renderer. When WeasyPrint cannot
be imported (not installed, or its system libraries Pango/HarfBuzz missing), it falls back to the
page-per-section layout below and logs why, once.

The fallback (matplotlib PdfPages):

Pages, in order: a title page; each result table (summary, comparisons, backend deltas, time
to target), as many pages as its rows need; every figure, one per page; the failed trials; the
environment; the suite and the reference arm's resolved spec as text; the per-arm spec
differences. Tables are monospace text (one text line per row), so they stay fast at thousands
of rows and their text can be extracted from the PDF.
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.figures import figure_style, new_figure
from harness.report.sections import DisplayTable

if TYPE_CHECKING:
    from harness.report.document import ReportContent

LANDSCAPE = (11.69, 8.27)  # A4, inches
TABLE_ROWS_PER_PAGE = 32
TEXT_LINES_PER_PAGE = 70
MAX_CELL_CHARACTERS = 60  # longer cells (errors) are cut in the PDF; the HTML report has them whole
MONOSPACE_WIDTH = 0.6  # advance of one DejaVu Sans Mono character, in ems
MARGIN = 0.05  # of the page, every side


def table_page_count(rows: int) -> int:
    """Pages a table of `rows` rows takes (at least one: an empty table says so)."""
    return max(1, math.ceil(rows / TABLE_ROWS_PER_PAGE))


def _cell(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_CELL_CHARACTERS else flat[: MAX_CELL_CHARACTERS - 1] + "…"


def _page_header(figure: Figure, title: str, caption: str) -> float:
    """Title and wrapped caption at the top of a page; returns the y (figure fraction) below them."""
    figure.text(MARGIN, 1 - MARGIN, title, fontsize=14, fontweight="bold", va="top")
    y = 1 - MARGIN - 0.045
    for line in textwrap.wrap(caption, 150)[:4]:
        figure.text(MARGIN, y, line, fontsize=8, color="0.35", va="top")
        y -= 0.022
    return y - 0.015


def table_pages(table: DisplayTable) -> list[Figure]:
    """A DisplayTable as landscape pages of monospace rows."""
    cells = [[_cell(value) for value in row] for row in table.rows]
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(table.columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths)).rstrip()

    characters = max(sum(widths) + 2 * (len(widths) - 1), 1)
    usable_points = LANDSCAPE[0] * 72 * (1 - 2 * MARGIN)
    font_size = min(8.0, usable_points / (characters * MONOSPACE_WIDTH))
    pages = []
    count = table_page_count(len(cells))
    for page in range(count):
        with figure_style():  # mathtext off for every text of the page
            figure = new_figure(*LANDSCAPE)
            figure.set_layout_engine("none")
            suffix = f" (page {page + 1} of {count})" if count > 1 else ""
            y = _page_header(figure, table.title + suffix, table.caption)
            step = min(0.024, (y - MARGIN) / (TABLE_ROWS_PER_PAGE + 1))
            figure.text(
                MARGIN, y, line(table.columns), family="monospace", fontsize=font_size, fontweight="bold", va="top"
            )
            y -= step
            figure.add_artist(_rule(y + step * 0.15))
            chunk = cells[page * TABLE_ROWS_PER_PAGE : (page + 1) * TABLE_ROWS_PER_PAGE]
            if not chunk:
                figure.text(MARGIN, y, "Nothing to show.", fontsize=9, style="italic", va="top")
            for row in chunk:
                figure.text(MARGIN, y, line(row), family="monospace", fontsize=font_size, va="top")
                y -= step
            pages.append(figure)
    return pages


def _rule(y: float) -> Line2D:
    return Line2D([MARGIN, 1 - MARGIN], [y, y], color="0.6", linewidth=0.6)


def text_pages(title: str, text: str, caption: str = "") -> list[Figure]:
    """Monospace text (the suite, a spec) as pages of TEXT_LINES_PER_PAGE lines, long lines wrapped."""
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(raw, 140, subsequent_indent="    ", drop_whitespace=False) or [""])
    count = max(1, math.ceil(len(lines) / TEXT_LINES_PER_PAGE))
    pages = []
    for page in range(count):
        with figure_style():
            figure = new_figure(*LANDSCAPE)
            figure.set_layout_engine("none")
            suffix = f" (page {page + 1} of {count})" if count > 1 else ""
            y = _page_header(figure, title + suffix, caption)
            chunk = lines[page * TEXT_LINES_PER_PAGE : (page + 1) * TEXT_LINES_PER_PAGE]
            figure.text(MARGIN, y, "\n".join(chunk), family="monospace", fontsize=6.5, va="top", linespacing=1.25)
        pages.append(figure)
    return pages


def title_page(content: ReportContent) -> Figure:
    """The suite's name, description and the report's key facts."""
    with figure_style():
        figure = new_figure(*LANDSCAPE)
        figure.set_layout_engine("none")
        figure.text(MARGIN, 0.85, content.name, fontsize=24, fontweight="bold", va="top")
        y = 0.76
        for line in textwrap.wrap(content.description, 110)[:12]:
            figure.text(MARGIN, y, line, fontsize=12, va="top")
            y -= 0.035
        y -= 0.03
        for line in content.meta_lines:
            figure.text(MARGIN, y, line, fontsize=10, color="0.3", va="top")
            y -= 0.03
        if content.answer.lines:
            y -= 0.02
            figure.text(MARGIN, y, "The answer", fontsize=13, fontweight="bold", va="top")
            y -= 0.035
            figure.text(MARGIN, y, content.answer.summary, fontsize=9, color="0.3", va="top")
            y -= 0.03
            for _, sentence in content.answer.lines:
                for index, line in enumerate(textwrap.wrap(sentence, 140)):
                    if y < MARGIN:
                        break
                    figure.text(MARGIN + (0.015 if index else 0), y, line, fontsize=8.5, va="top")
                    y -= 0.022
    return figure


def report_pages(content: ReportContent) -> list[Figure]:
    """Every page of the PDF, in order (see the module docstring)."""
    pages = [title_page(content)]
    for table in content.tables:
        pages += table_pages(table)
    pages += [item.figure for item in content.figures]
    if content.failures.rows:
        pages += table_pages(content.failures)
    pages += table_pages(content.environment)
    if content.suite_text:
        pages += text_pages("Suite as written", content.suite_text)
    if content.reference_spec:
        pages += text_pages(
            f"Resolved spec of the reference arm ({content.reference})",
            content.reference_spec,
            "Every default filled in; seed and backend vary per trial and are left out.",
        )
    if content.spec_differences.rows:
        pages += table_pages(content.spec_differences)
    return pages


def _latin1_only(figure: Figure) -> bool:
    """True when every text of a text-only page can be set in the PDF's built-in fonts (cp1252)."""
    try:
        for text in figure.texts:
            text.get_text().encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


@contextmanager
def _builtin_fonts(enabled: bool) -> Iterator[None]:
    """Set text pages in the PDF's 14 built-in fonts (Helvetica, Courier: metrics only, nothing
    embedded): 10x faster than laying out and embedding DejaVu glyph by glyph, which made the table
    pages of a 1,000-trial report take seconds. Pages with characters outside cp1252 keep DejaVu."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)  # silence 'weight normal not found, using medium' for Helvetica/Courier
    try:
        with matplotlib.rc_context({"pdf.use14corefonts": True}):
            yield
    finally:
        logger.setLevel(level)


logger = logging.getLogger(__name__)


def weasyprint_module() -> Any | None:
    """weasyprint, or None (with one logged reason) when it cannot be imported here."""
    try:
        import weasyprint
    except (ImportError, OSError) as error:  # OSError: a system library (Pango) is missing
        logger.warning(
            "report: WeasyPrint is not usable (%s); the PDF falls back to one matplotlib page per section. "
            "Fix: pip install 'harness[report]' (and the Pango library: apt-get install libpango-1.0-0).",
            error,
        )
        return None
    return weasyprint


def write_pdf(content: ReportContent, path: Path, html: str | None = None) -> int:
    """Write the PDF; return its page count. `html`: the rendered report page (WeasyPrint prints it; rendered
    here when not given); without WeasyPrint, matplotlib pages."""
    weasyprint = weasyprint_module()
    if weasyprint is not None:
        from harness.report.html import render_html

        quiet = logging.getLogger("weasyprint")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # it warns about CSS it ignores (sticky headers, system-ui)
        try:
            document = weasyprint.HTML(string=html if html is not None else render_html(content)).render()
            document.metadata.title = f"{content.name} - harness report"
            document.metadata.generator = f"harness {content.version}"
            document.write_pdf(path)
        finally:
            quiet.setLevel(level)
        return len(document.pages)
    return write_matplotlib_pdf(content, path)


def write_matplotlib_pdf(content: ReportContent, path: Path) -> int:
    """Write the fallback PDF (a page per section); return its page count."""
    pages = report_pages(content)
    text_only = {id(page) for page in pages if not page.axes}
    metadata = {"Title": f"{content.name} - harness report", "Creator": f"harness {content.version}"}
    with PdfPages(path, metadata=metadata) as pdf, figure_style():  # style at draw time too (tick labels)
        for page in pages:
            with _builtin_fonts(id(page) in text_only and _latin1_only(page)):
                pdf.savefig(page)
    return len(pages)
