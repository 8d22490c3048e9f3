"""Analysis of stored results with pandas and scipy.stats: tidy tables, per-arm summaries over
seeds with 95% confidence intervals, paired comparisons against a reference arm (Holm-corrected),
backend deltas, time to target and grid pivots.

Imports no deep-learning framework and no plotting library (the CLI's --help stays fast);
figures and reports live in `harness.report`.

The names below are imported on first use: checking a suite's report block (`check_report_options`,
which `harness run` does before any trial starts) must not pay for pandas and scipy.stats (about a
second), which only the tables at the end of a run need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.analysis.options import ReportOptions, check_report_options
    from harness.analysis.results import Results
    from harness.analysis.statistics import describe, holm, mean_interval, paired_test

_EXPORTS = {
    "ReportOptions": "options",
    "check_report_options": "options",
    "Results": "results",
    "describe": "statistics",
    "holm": "statistics",
    "mean_interval": "statistics",
    "paired_test": "statistics",
}
__all__ = ["ReportOptions", "Results", "check_report_options", "describe", "holm", "mean_interval", "paired_test"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.analysis.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.analysis' has no attribute {name!r}")
