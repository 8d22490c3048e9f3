"""Benchmark: 1,000 synthetic trials x 50 epochs -> HTML + PDF report, target < 15 s.

The grid is 5 optimizers x 10 hidden widths = 50 arms, 2 backends, 10 seeds (1,000 trials,
about 355,000 metric rows). The synthetic data is made first and not timed; the timed part is
what `harness report` does after reading the store: build `Results`, compute every table,
draw every figure, write report.html and report.pdf.

    python -m benchmarks.bench_report [--out DIRECTORY]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary folder)")
    arguments = parser.parse_args(argv)

    import harness.report.document  # noqa: F401 - import matplotlib/seaborn/jinja2 outside the timed part
    from harness.analysis import Results
    from harness.report import write_report
    from tests.helpers.synthetic import synthetic_frames

    start = time.perf_counter()
    frames = synthetic_frames(
        optimizers=("sgd", "momentum", "adagrad", "rmsprop", "adam"),
        widths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
        backends=("torch", "keras"),
        seeds=10,
        epochs=50,
        diverged=3,
        failed=2,
    )
    made = time.perf_counter() - start
    print(f"synthetic data: {len(frames.trials)} trials, {len(frames.metrics)} metric rows ({made:.1f} s, not timed)")

    directory = arguments.out or Path(tempfile.mkdtemp(prefix="harness-bench-report-"))
    start = time.perf_counter()
    results = Results(
        frames.trials,
        frames.metrics,
        frames.arms,
        frames.axes,
        name="bench_report",
        description="1,000 synthetic trials x 50 epochs (benchmark data, no training)",
        report_options={"reference": frames.arms[0], "targets": {"test_accuracy": 0.6}},
    )
    html_path, pdf_path = write_report(
        results, directory, {"name": "bench_report", "grid": {"optimizer": "...", "model.mlp.hidden": "..."}}
    )
    seconds = time.perf_counter() - start
    verdict = "ok" if seconds < TARGET_SECONDS else "TOO SLOW"
    print(f"report: {seconds:.2f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")
    print(f"  {html_path} ({html_path.stat().st_size / 1e6:.1f} MB)")
    print(f"  {pdf_path} ({pdf_path.stat().st_size / 1e6:.1f} MB)")
    return 0 if seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
