"""Analysis of stored results with pandas and scipy.stats: tidy tables, per-arm summaries over
seeds with 95% confidence intervals, paired comparisons against a reference arm (Holm-corrected),
backend deltas, time to target and grid pivots.

Imports no deep-learning framework and no plotting library (the CLI's --help stays fast);
figures and reports live in `harness.report`.
"""

from __future__ import annotations

from harness.analysis.options import ReportOptions, check_report_options
from harness.analysis.results import Results
from harness.analysis.statistics import describe, holm, mean_interval, paired_test

__all__ = ["ReportOptions", "Results", "check_report_options", "describe", "holm", "mean_interval", "paired_test"]
