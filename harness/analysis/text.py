"""The compact per-arm summary `harness run` prints at the end (plain text, no colors).

optimizers: test_accuracy, mean ± 95% CI half-width over ok seeds (reference arm: sgd)
arm       backend  n  test_accuracy      train_loss  train_s  ok/div/fail/time
sgd       torch    3  0.6120 ± 0.0210    1.023       4.10     3/0/0/0
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from harness.adapters.python_models import PARITY_NOT_CHECKED
from harness.measures import SPEED_METRIC, STATUS_COUNT_COLUMNS, STATUS_TABLE, TRAIN_LOSS

if TYPE_CHECKING:
    from harness.analysis.results import Results
    from harness.search.tables import SearchTables


def format_number(value: float | None, digits: int = 4) -> str:
    """`digits` significant digits; whole numbers from 10**digits up; scientific below 1e-3; '-' for NaN."""
    if value is None or math.isnan(float(value)):
        return "-"
    value = float(value)
    magnitude = abs(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if magnitude >= 1e9 or (0 < magnitude < 1e-3):
        return f"{value:.{digits - 1}e}"
    if magnitude >= 10**digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def format_mean_ci(mean: float, low: float, high: float) -> str:
    """'mean ± half-width' for a symmetric interval, 'mean [low, high]' otherwise, '-' without data."""
    if mean is None or math.isnan(mean):
        return "-"
    if math.isnan(low) or math.isnan(high):
        return format_number(mean)
    below, above = mean - low, high - mean
    if math.isclose(below, above, rel_tol=1e-6, abs_tol=1e-12):
        return f"{format_number(mean)} ± {format_number(above, 2)}"
    return f"{format_number(mean)} [{format_number(low)}, {format_number(high)}]"


# The trial counts per status in one column, e.g. 'ok/div/fail/time' = '3/0/0/0'.
STATUS_COUNTS_HEADER = "/".join(status.abbreviation for status in STATUS_TABLE)


def status_counts_text(row: pd.Series, columns: tuple[str, ...] = STATUS_COUNT_COLUMNS) -> str:
    """A summary row's trial counts per status joined by '/', in TRIAL_STATUSES order."""
    return "/".join(str(row[column]) for column in columns)


class SummaryGroup(NamedTuple):
    """One (arm, backend) of `Results.summary()`, as the printed and the report summaries read it."""

    arm: str
    backend: str
    means: dict[str, float]  # metric -> mean over the ok seeds
    counts: pd.Series  # the group's first row: its trial counts per status are the same on every row
    primary: pd.Series | None  # the primary metric's row; None when no trial recorded it


def summary_groups(results: Results) -> Iterator[SummaryGroup]:
    """The (arm, backend) groups of `results.summary()`, in its order."""
    summary = results.summary()
    for (arm, backend), group in summary.groupby(["arm", "backend"], sort=False):
        primary_rows = group[group["metric"] == results.primary_metric]
        yield SummaryGroup(
            str(arm),
            str(backend),
            dict(zip(group["metric"], group["mean"])),
            group.iloc[0],
            primary_rows.iloc[0] if len(primary_rows) else None,
        )


def summary_rows(results: Results) -> pd.DataFrame:
    """One row per (arm, backend) with the display strings of `summary_text` (also used by reports)."""
    metric = results.primary_metric
    rows = []
    for arm, backend, means, counts, primary in summary_groups(results):
        rows.append(
            {
                "arm": arm,
                "backend": backend,
                "n": int(primary["n"]) if primary is not None else 0,
                metric: format_mean_ci(float(primary["mean"]), float(primary["ci_low"]), float(primary["ci_high"]))
                if primary is not None
                else "-",
                TRAIN_LOSS: format_number(means.get(TRAIN_LOSS, math.nan)),
                "train_s": format_number(means.get(SPEED_METRIC, math.nan), 3),
                STATUS_COUNTS_HEADER: status_counts_text(counts),
            }
        )
    columns = ["arm", "backend", "n", metric, TRAIN_LOSS, "train_s", STATUS_COUNTS_HEADER]
    frame = pd.DataFrame(rows, columns=columns)
    unchecked = python_model_arms(results)
    if unchecked and not frame.empty:  # only then, so every other suite's table keeps its columns
        frame["parity"] = [PARITY_NOT_CHECKED if arm in unchecked else "" for arm in frame["arm"]]
    if len(results.backends) > 1 and not frame.empty:
        # The framework delta, paired by seed: (reference backend - this backend) of the primary
        # metric with its 95% CI, on each non-reference backend's row (see Results.backend_deltas).
        deltas = results.backend_deltas([metric])
        label = f"{results.backends[0]} - this"
        frame[label] = ""
        for _, delta in deltas.iterrows():
            where = (frame["arm"] == delta["arm"]) & (frame["backend"] == delta["versus"])
            frame.loc[where, label] = format_mean_ci(
                float(delta["mean_difference"]), float(delta["ci_low"]), float(delta["ci_high"])
            )
    return frame


def python_model_arms(results: Results) -> set[str]:
    """Arms whose model is the user's Python code (model.python) without paired parameters (model.names):
    native initial weights, not paired across backends, and no parity check, so their backend differences are
    labelled PARITY_NOT_CHECKED. A paired one is checked by `harness parity` like a built-in model."""
    if "spec" not in results.trials.columns:
        return set()
    arms = set()
    for arm, raw in results.trials.drop_duplicates("arm")[["arm", "spec"]].itertuples(index=False, name=None):
        try:
            model = json.loads(raw)["model"]
            if model.get("python") and not model.get("names"):
                arms.add(arm)
        except (TypeError, KeyError, json.JSONDecodeError):
            continue
    return arms


def render_table(frame: pd.DataFrame) -> str:
    """Left-aligned columns separated by two spaces; every cell is str()."""
    header = [str(column) for column in frame.columns]
    cells = [[str(value) for value in row] for row in frame.itertuples(index=False)]
    widths = [max([len(header[i]), *(len(row[i]) for row in cells)]) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in [header, *cells]]
    return "\n".join(lines)


def summary_text(results: Results) -> str:
    """The per-arm summary for the terminal: a title line and one line per (arm, backend)."""
    options = results.report_options
    reference = (
        f"reference: {options.describe_reference()}, each arm vs the arm that differs only there"
        if options.per_axis
        else f"reference arm: {options.describe_reference()}"
    )
    title = (
        f"{results.name}: {results.primary_metric}, mean ± 95% CI half-width over ok seeds, "
        f"[low, high] where the CI meets the metric's bound ({reference})"
    )
    if results.resplits_per_seed:
        title += "\neach seed drew its own data split (dataset.resplit: per_seed): the intervals include split variance"
    if not len(results.trials):
        return f"{title}\n(no trials stored yet)"
    return f"{title}\n{render_table(summary_rows(results))}"


def search_text(search: SearchTables) -> str:
    """Each arm's chosen values (objective on validation, averaged over the search seeds) and the budget its
    search spent: configurations, trials, optimizer steps, train seconds (the same for every arm by design,
    up to divergence and pruning)."""
    chosen = search.chosen.set_index("arm") if not search.chosen.empty else pd.DataFrame()
    rows = []
    for record in search.budget.to_dict("records"):
        arm = record["arm"]
        row = {"arm": arm}
        for path in search.dimensions:
            value = chosen.at[arm, path] if arm in chosen.index and path in chosen.columns else None
            row[path] = (
                "-"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else (format_number(value) if isinstance(value, float) else str(value))
            )
        row[search.objective] = (
            format_number(float(str(chosen.at[arm, search.objective]))) if arm in chosen.index else "-"
        )
        row["configs"] = str(record["configurations"])
        row["trials"] = str(record["trials_run"])
        row["steps"] = str(record["optimizer_steps"])
        row["train_s"] = format_number(record["train_seconds"])
        rows.append(row)
    title = f"search: each arm's chosen values by {search.objective} (mean over search seeds), and its search budget"
    return title + "\n" + render_table(pd.DataFrame(rows))
