"""Benchmark: 1,000 synthetic trials x 50 epochs -> HTML + PDF report, target < 15 s; with --grid, a 3-axis
grid of 2,000 arms (1 seed, 1 epoch) -> report, target < 15 s and < 5 MB of HTML.

The grid is 5 optimizers x 10 hidden widths = 50 arms, 2 backends, 10 seeds (1,000 trials,
about 355,000 metric rows). The synthetic data is made first and not timed; the timed part is
what `harness report` does after reading the store: build `Results`, compute every table,
draw every figure, write report.html and report.pdf.

The --grid case is the shape of a big sweep: 20 learning rates x 10 widths x 10 batch sizes, one seed each,
with an effect per axis, an lr x width interaction and noise. Its report shows the grid's structure (main
effects, interactions, importance, top and bottom arms), not 2,000-row tables (harness.report.grid).

    python -m benchmarks.bench_report [--out DIRECTORY] [--grid]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary folder)")
    parser.add_argument("--grid", action="store_true", help="the 2,000-arm 3-axis grid instead")
    arguments = parser.parse_args(argv)
    if arguments.grid:
        return grid_benchmark(arguments.out)

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
    cpu = time.process_time()
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
    cpu = time.process_time() - cpu
    verdict = "ok" if seconds < TARGET_SECONDS else "TOO SLOW"
    print(f"report: {seconds:.2f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")
    print(f"  CPU time {cpu:.2f} s (load average {os.getloadavg()[0]:.1f})")
    print(f"  {html_path} ({html_path.stat().st_size / 1e6:.1f} MB)")
    print(f"  {pdf_path} ({pdf_path.stat().st_size / 1e6:.1f} MB)")
    return 0 if seconds < TARGET_SECONDS else 1


GRID_TARGET_MB = 5.0
LEARNING_RATES = tuple(round(0.005 * 1.3**index, 5) for index in range(20))
WIDTHS = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
BATCH_SIZES = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def grid_results() -> object:
    """The 2,000-arm grid as `Results` (synthetic trials relabelled onto three axes, an effect per axis)."""
    import numpy as np

    from harness.analysis import Results
    from tests.helpers.synthetic import synthetic_frames

    cells = [(lr, width, batch) for lr in LEARNING_RATES for width in WIDTHS for batch in BATCH_SIZES]
    frames = synthetic_frames(
        optimizers=("sgd",),
        widths=tuple(range(1, len(cells) + 1)),
        backends=("torch",),
        seeds=1,
        epochs=1,
        diverged=0,
        failed=0,
    )
    names = {old: f"lr{lr}-h{width}-b{batch}" for old, (lr, width, batch) in zip(frames.arms, cells)}
    by_arm = dict(zip(names.values(), cells))
    trials = frames.trials.drop(columns=list(frames.axes)).assign(arm=lambda f: f["arm"].map(names))
    trials["optimizer.lr"] = [str(by_arm[arm][0]) for arm in trials["arm"]]
    trials["model.mlp.hidden"] = [f"[{by_arm[arm][1]}]" for arm in trials["arm"]]
    trials["training.batch_size"] = [str(by_arm[arm][2]) for arm in trials["arm"]]
    rng = np.random.default_rng(1)
    effect = {}
    for arm, (lr, width, batch) in by_arm.items():
        best = -((np.log(lr) - np.log(0.05)) ** 2) / 8 + 0.04 * np.log2(width) - 0.02 * np.log2(batch / 4)
        effect[arm] = 0.55 + 0.1 * best + (0.05 if lr > 0.1 and width >= 32 else 0.0) + rng.normal(0, 0.02)
    metrics = frames.metrics.copy()
    hashes = dict(zip(trials["hash"], trials["arm"]))
    accuracy = metrics["metric"].isin(["test_accuracy", "validation_accuracy", "train_accuracy"])
    metrics.loc[accuracy, "value"] = np.clip(metrics.loc[accuracy, "hash"].map(hashes).map(effect), 0, 1)
    return Results(
        trials,
        metrics,
        tuple(names.values()),
        ("optimizer.lr", "model.mlp.hidden", "training.batch_size"),
        name="bench_report_grid",
        description="A 3-axis grid of 2,000 arms, 1 seed, 1 epoch (benchmark data, no training)",
    )


def grid_benchmark(out: Path | None) -> int:
    """Time and size the 2,000-arm grid's report; print the numbers and the peak memory."""
    import resource

    import harness.report.document  # noqa: F401 - imports outside the timed part
    from harness.report import write_report

    start = time.perf_counter()
    results = grid_results()
    print(f"synthetic grid: 2,000 arms, 3 axes ({time.perf_counter() - start:.1f} s, not timed)")
    directory = out or Path(tempfile.mkdtemp(prefix="harness-bench-report-grid-"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = time.process_time()
    start = time.perf_counter()
    html_path, pdf_path = write_report(results, directory, {"name": "bench_report_grid"})  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    megabytes = html_path.stat().st_size / 1e6
    ok = seconds < TARGET_SECONDS and megabytes < GRID_TARGET_MB
    print(
        f"report: {seconds:.2f} s (target < {TARGET_SECONDS:.0f} s), HTML {megabytes:.2f} MB (target < {GRID_TARGET_MB:.0f} MB): {'ok' if ok else 'MISSED'}"
    )
    print(
        f"  CPU time {cpu:.2f} s (wall time includes waiting for a shared CPU; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"  peak resident memory {peak / 1024:.0f} MB (before the report: {before / 1024:.0f} MB)")
    print(f"  {html_path}\n  {pdf_path} ({pdf_path.stat().st_size / 1e6:.2f} MB)")
    from harness.report.document import report_content
    from harness.report.interactive import write_interactive

    start = time.perf_counter()
    interactive = write_interactive(results, directory, report_content(results, {"name": "bench_report_grid"}))  # type: ignore[arg-type]
    print(
        f"interactive: {time.perf_counter() - start:.2f} s, {interactive.stat().st_size / 1e6:.2f} MB "
        f"(plotly.js inlined once) {interactive}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
