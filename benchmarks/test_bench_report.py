"""Report generation: `harness.report.write_report` (HTML + PDF) for a made-up grid.

3 optimizers x 2 widths x 2 backends x 4 seeds x 12 epochs (tests.helpers.synthetic: no
training). Skipped when the report extra (matplotlib, seaborn, jinja2) is not installed.

    pytest benchmarks/test_bench_report.py
"""

from __future__ import annotations

from pathlib import Path

import pytest


def test_report_generation(benchmark, tmp_path: Path) -> None:
    for package in ("matplotlib", "seaborn", "jinja2"):
        pytest.importorskip(package)
    from harness.analysis import Results
    from harness.report import write_report
    from tests.helpers.synthetic import synthetic_frames

    frames = synthetic_frames()
    counter = iter(range(1_000_000))

    def report() -> tuple[Path, Path]:
        # A fresh Results each round: its tables are cached, and the report should pay for them.
        results = Results(
            frames.trials,
            frames.metrics,
            frames.arms,
            frames.axes,
            name="bench-report",
            report_options={"reference": frames.arms[0]},
        )
        return write_report(results, tmp_path / f"report-{next(counter)}", {"name": "bench-report"})

    html, pdf = benchmark.pedantic(report, rounds=3, iterations=1, warmup_rounds=1)
    assert html.stat().st_size > 0 and pdf.read_bytes().startswith(b"%PDF")
    benchmark.extra_info.update(trials=len(frames.trials), metric_rows=len(frames.metrics))
