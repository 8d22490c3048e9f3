"""Reports: seaborn figures (pure functions), one self-contained HTML page and a PDF per suite.

Importing this package imports no plotting library; `write_report` loads matplotlib, seaborn
and jinja2 when called, and says how to install them when they are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.analysis import Results

REPORT_PACKAGES = ("matplotlib", "seaborn", "jinja2")


def write_report(
    results: Results, directory: str | Path, suite_document: Mapping[str, Any] | None = None, interactive: bool = False
) -> tuple[Path, Path]:
    """Write `<directory>/report.html` and `<directory>/report.pdf`; return their paths. With `interactive`,
    also `<directory>/report_interactive.html` (needs plotly: pip install 'harness[interactive]').

    See `harness.report.document.write_report`.

    Raises:
        HarnessError: the report extra is not installed, or the folder is not writable.
    """
    try:
        from harness.report.document import write_report as write
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        raise HarnessError(
            f"report: the Python package {missing!r} is not installed; reports need {', '.join(REPORT_PACKAGES)}. "
            "Fix: pip install 'harness[report]'."
        ) from None
    if interactive:
        try:
            import plotly  # noqa: F401
        except ImportError:
            raise HarnessError(
                "report --interactive: the Python package 'plotly' is not installed. "
                "Fix: pip install 'harness[interactive]', or leave out --interactive."
            ) from None
    return write(results, directory, suite_document, interactive)


__all__ = ["write_report"]
