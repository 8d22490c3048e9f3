"""The report's tables and texts as display strings, shared by the HTML and the PDF report.

Nothing here draws or escapes: values become plain strings (numbers to 4 significant digits,
intervals as 'mean [low, high]'); the HTML template escapes them, the PDF prints them as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from harness.analysis.environment import environment_differences, environment_summary, provenance_aspects
from harness.analysis.text import format_number, status_counts_text, summary_groups
from harness.measures import LOSS, SPEED_METRIC, STATUS_TABLE, TEST_SPLIT, TRAINING_SPLIT, metric_name, reaches
from harness.report.numeric_axes import NumericAxis, numeric_axes, numeric_axis_frame

if TYPE_CHECKING:
    from harness.analysis import Results

VOLATILE_SPEC_KEYS = ("seed", "backend")  # differ between trials of one arm: not part of an arm's spec
SUMMARY_LOSSES = tuple(metric_name(split, LOSS) for split in (TRAINING_SPLIT, TEST_SPLIT))  # beside the primary metric
STATUS_COUNTS_HEADER = "/".join(status.label for status in STATUS_TABLE)  # 'ok/div/fail/timeout'
# Beyond this many arms a report shows the grid's structure (harness.report.grid), not one row or line per arm.
LARGE_GRID_ARMS = 60


def is_large_grid(results: Results) -> bool:
    """True when the per-arm tables and figures give way to the grid's structure (harness.report.grid)."""
    return len(results.arms) > LARGE_GRID_ARMS


@dataclass(frozen=True)
class DisplayTable:
    """A table ready to show: every cell is a string."""

    key: str
    title: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{format_number(low)}, {format_number(high)}]"


def _median_interval(low: float, high: float, digits: int) -> str:
    """A median time's interval; its upper end is 'not reached' when the data cannot bound it."""
    if math.isnan(low):
        return "-"
    return f"[{format_number(low, digits)}, {'not reached' if math.isnan(high) else format_number(high, digits)}]"


def _p_value(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def _table(key: str, title: str, caption: str, columns: list[str], rows: list[list[Any]]) -> DisplayTable:
    return DisplayTable(key, title, caption, tuple(columns), tuple(tuple(str(cell) for cell in row) for row in rows))


def summary_table(results: Results) -> DisplayTable:
    """Per arm and backend: n ok, the primary metric's mean and CI, final losses, train seconds, statuses."""
    metric = results.primary_metric
    extra = [name for name in SUMMARY_LOSSES if name in results.metric_names and name != metric]
    rows = []
    for arm, backend, means, counts, primary in summary_groups(results):
        row: list[Any] = [arm, backend, int(counts["n_ok"])]
        if primary is not None:
            row += [
                format_number(float(primary["mean"])),
                _interval(float(primary["ci_low"]), float(primary["ci_high"])),
                primary["ci_method"],
            ]
        else:
            row += ["-", "-", "-"]
        row += [format_number(float(means[name])) if name in means else "-" for name in extra]
        seconds = float(means[SPEED_METRIC]) if SPEED_METRIC in means else math.nan
        row += [format_number(seconds, 3), status_counts_text(counts)]
        if primary is not None:
            row += [
                format_number(float(primary["iqm"])),
                _interval(float(primary["iqm_ci_low"]), float(primary["iqm_ci_high"])),
            ]
        else:
            row += ["-", "-"]
        rows.append(row)
    columns = [
        "arm",
        "backend",
        "n",
        f"{metric} (mean)",
        "95% CI",
        "CI method",
        *extra,
        "train s",
        STATUS_COUNTS_HEADER,
        "IQM",
        "IQM 95% CI",
    ]
    return _table(
        "summary",
        "Summary per arm",
        f"Final {metric}: mean over the seeds that finished ok, 95% confidence interval and how it was "
        "computed (t: Student t; bootstrap: BCa; t-clipped: t cut at the metric's bound; exact: all equal). "
        "Losses and seconds are means over the same seeds. IQM: the interquartile mean (the mean of the "
        "middle half of the seeds, robust where a few seeds dominate) with its 95% bootstrap interval "
        "(Agarwal et al. 2021; from 5 seeds)." + (RESPLIT_NOTE if results.resplits_per_seed else ""),
        columns,
        rows,
    )


RESPLIT_NOTE = (
    " Each seed drew its own train/validation (and, unless the dataset ships one, test) split "
    "(dataset.resplit: per_seed), the same for every arm: the intervals include split variance."
)


def comparisons_table(results: Results) -> DisplayTable:
    """Every arm vs its reference arm (paired by seed), with Holm-corrected p-values."""
    table = results.comparisons()
    options = results.report_options
    rows = [
        [
            row["arm"],
            *([row["reference"]] if options.per_axis else []),
            row["backend"],
            int(row["n_pairs"]),
            format_number(row["mean_difference"]),
            _interval(row["ci_low"], row["ci_high"]),
            _p_value(row["p_value"]),
            _p_value(row["p_holm"]),
            format_number(row["cohens_dz"], 3),
            row["verdict"],
            row["initial_weights"],
            format_number(row["probability_of_improvement"], 3),
            _interval(row["probability_of_improvement_ci_low"], row["probability_of_improvement_ci_high"]),
        ]
        for row in table.to_dict("records")
    ]
    reference = options.describe_reference()
    minus = (
        f"its reference arm (the arm with {reference} and the same variant on every other axis)"
        if options.per_axis
        else reference
    )
    return _table(
        "comparisons",
        f"Comparisons vs {reference}",
        f"{results.primary_metric}: arm minus {minus} on the same seed and backend; paired t-test "
        "(scipy.stats.ttest_rel), p Holm-corrected over the whole table, effect size Cohen's d_z. "
        "Initial weights: whether the two arms' layers started from identical tensors at each seed "
        "(identical; partly, naming the layers that differ; no). P(arm > reference): the share of "
        "(arm run, reference run) pairs the arm wins, ties half (Mann-Whitney over every seed, unpaired), "
        "with its 95% stratified bootstrap interval from 5 seeds per arm (Agarwal et al. 2021)."
        + (RESPLIT_NOTE if results.resplits_per_seed else ""),
        [
            "arm",
            *(["reference"] if options.per_axis else []),
            "backend",
            "pairs",
            "difference",
            "95% CI",
            "p",
            "p (Holm)",
            "d_z",
            "verdict",
            "initial weights",
            "P(arm > reference)",
            "P 95% CI",
        ],
        rows,
    )


def example_level_table(results: Results) -> DisplayTable | None:
    """Each comparison on the test examples themselves (McNemar, example x seed bootstrap), or None
    when no per-example predictions are stored (regression, sequence tasks, older stores)."""
    table = results.example_comparisons()
    if table.empty:
        return None
    rows = [
        [
            row["arm"],
            row["reference"],
            row["backend"],
            int(row["seeds"]),
            _p_value(row["mcnemar_p"]),
            row["mcnemar_significant"],
            format_number(row["example_difference"]),
            _interval(row["example_ci_low"], row["example_ci_high"]),
        ]
        for row in table.to_dict("records")
    ]
    return _table(
        "example_level",
        "Comparisons on the test examples",
        "Final-epoch test predictions of arm and reference, paired by seed on the same test examples. "
        "McNemar's exact test per seed pair; p is the largest over the seed pairs (every pair differs "
        "at that level: an intersection-union test, valid although the seeds share the examples), "
        "with how many pairs have p < 0.05. The accuracy difference arm - reference with a 95% "
        "two-level bootstrap interval (seeds, then one draw of test examples shared by every seed): "
        "it includes the test set's own sampling error, which the seed interval above does not."
        + (
            " Each seed drew its own test split (dataset.resplit: per_seed): a seed pair is compared on its "
            "seed's test examples."
            if results.resplits_per_seed
            else ""
        ),
        ["arm", "reference", "backend", "seeds", "McNemar p (max)", "p < 0.05", "accuracy difference", "95% CI"],
        rows,
    )


def backend_table(results: Results) -> DisplayTable:
    """First backend minus each other backend per arm (paired by seed)."""
    table = results.backend_deltas()
    rows = [
        [
            row["arm"],
            f"{row['backend']} - {row['versus']}",
            row["metric"],
            int(row["n_pairs"]),
            format_number(row["mean_difference"]),
            _interval(row["ci_low"], row["ci_high"]),
            format_number(row["max_abs_difference"]),
            _p_value(row["p_holm"]),
        ]
        for row in table.to_dict("records")
    ]
    return _table(
        "backend_deltas",
        "Backend deltas",
        "The same trial (arm, seed) in two frameworks: mean difference with its 95% CI, the largest "
        "absolute difference, and the paired t-test p (Holm-corrected over arms).",
        ["arm", "difference", "metric", "pairs", "mean", "95% CI", "max |difference|", "p (Holm)"],
        rows,
    )


def time_to_target_table(results: Results) -> DisplayTable:
    """Per arm and backend: how many seeds reach each target, and the median epoch and seconds."""
    table = results.time_to_target_summary()
    rows = []
    for row in table.to_dict("records"):
        rows.append(
            [
                row["arm"],
                row["backend"],
                f"{row['metric']} {reaches(row['metric'])} {format_number(row['target'])}",
                f"{row['n_reached']}/{row['n']}",
                format_number(row["median_epoch"]) if not math.isnan(row["median_epoch"]) else "not reached",
                format_number(row["median_seconds"], 3) if not math.isnan(row["median_seconds"]) else "not reached",
                _median_interval(row["median_epoch_ci_low"], row["median_epoch_ci_high"], 4),
                _median_interval(row["median_seconds_ci_low"], row["median_seconds_ci_high"], 3),
            ]
        )
    return _table(
        "time_to_target",
        "Time to target",
        "Median over ok and diverged seeds of the first epoch reaching the target, and the training seconds "
        "pro-rated to it; a seed that never reaches it (a diverged one included) counts as never, not "
        "dropped; 'not reached' when half or more of the seeds never reach it. 95% intervals: "
        "Kaplan-Meier (Brookmeyer-Crowley); an upper end 'not reached' when never cannot be ruled out.",
        ["arm", "backend", "target", "reached", "median epoch", "median train s", "epoch 95% CI", "train s 95% CI"],
        rows,
    )


def _mapping_text(raw: Any) -> str:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return str(raw)
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return str(value)


def environment_table(results: Results) -> DisplayTable:
    """Where the trials ran: backend, host, versions, device, trial count; the caption says what differs
    between the trials' environments (harness.analysis.environment), when anything does."""
    table = results.environment()
    rows = [
        [
            row.get("backend", "-"),
            row.get("host") or "-",
            _mapping_text(row.get("versions", "")),
            _mapping_text(row.get("device", "")),
            "; ".join(f"{name} {value}" for name, value in provenance_aspects(row.get("provenance")).items()) or "-",
            int(row["n_trials"]),
        ]
        for row in table.to_dict("records")
    ]
    return _table(
        "environment",
        "Environment",
        " ".join(
            filter(
                None,
                [
                    "Library versions, device, host and provenance (the code's git commit, '+dirty' when it "
                    "differed from it; a hash of every installed package's version; CPU flags; thread settings) "
                    "recorded with the trials.",
                    environment_note(results),
                ],
            )
        ),
        ["backend", "host", "versions", "device", "provenance", "trials"],
        rows,
    )


def environment_note(results: Results) -> str:
    """What differs between the environments the trials ran in ('' when nothing does)."""
    return environment_summary(environment_differences(results.trials))


def failures_table(results: Results) -> DisplayTable:
    """Trials that did not finish ok, with their errors."""
    table = results.failures()
    rows = [
        [
            row["arm"],
            row["backend"],
            row["seed"],
            row["status"],
            "-" if row.get("diverged_epoch") is None or _missing(row.get("diverged_epoch")) else row["diverged_epoch"],
            row.get("epochs_completed", "-"),
            "" if _missing(row.get("error")) else row["error"],
        ]
        for row in table.to_dict("records")
    ]
    return _table(
        "failures",
        "Failed, diverged and timed-out trials",
        "They are counted in the summary but enter no statistic.",
        ["arm", "backend", "seed", "status", "diverged at epoch", "epochs done", "error"],
        rows,
    )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and pandas.NA
    except TypeError:
        return True


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a.b[0].c': leaf} for nested mappings and lists."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat or {prefix: []}
    return {prefix: value}


def arm_specs(results: Results) -> dict[str, dict[str, Any]]:
    """Per arm, its resolved spec (TrialSpec.to_dict() of its first trial) without seed and backend."""
    if "spec" not in results.trials.columns:
        return {}
    specs: dict[str, dict[str, Any]] = {}
    for arm, raw in results.trials.drop_duplicates("arm")[["arm", "spec"]].itertuples(index=False, name=None):
        try:
            spec = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            continue
        specs[arm] = {key: value for key, value in spec.items() if key not in VOLATILE_SPEC_KEYS}
    return specs


def data_lines(results: Results) -> list[str]:
    """Which data the trials read, for each dataset of the user's own (a file, image folder or plug-in):
    its name, where it was, its content digest (bytes and options) and its rows per split."""
    lines = []
    seen = set()
    for spec in arm_specs(results).values():
        dataset = spec.get("dataset", {})
        if "content" not in dataset or dataset["content"] in seen:
            continue
        seen.add(dataset["content"])
        rows = dataset.get("rows") or ["?", "?", "?"]
        where = dataset.get("path") or dataset.get("python", "")
        lines.append(
            f"data {dataset.get('label')}: {dataset.get('task')}, {rows[0]} train / {rows[1]} validation / {rows[2]} "
            f"test rows, content {dataset['content']} ({where})"
        )
    return lines


def python_model_lines(results: Results) -> list[str]:
    """The arms whose model is the user's Python code without paired parameters, labelled: their backends are
    not compared by parity (a paired one is, like a built-in model)."""
    from harness.adapters.python_models import PARITY_NOT_CHECKED
    from harness.analysis.text import python_model_arms

    arms = sorted(python_model_arms(results))
    if not arms:
        return []
    return [
        f"{PARITY_NOT_CHECKED}: {', '.join(arms)} (the user's Python model: each framework's own initial weights, "
        "not paired across backends; a backend difference there is not a framework effect alone)"
    ]


def spec_differences_table(results: Results) -> DisplayTable:
    """Per arm, every resolved-spec value that differs from its reference arm's (`reference_for(arm)`)."""
    specs = {} if is_large_grid(results) else arm_specs(results)  # a large grid: one row per arm and key, unread
    options = results.report_options
    rows = []
    for arm in results.arms:
        reference_arm = options.reference_for(arm)
        if arm == reference_arm or arm not in specs:
            continue
        flat = _flatten(specs[arm])
        reference = _flatten(specs.get(reference_arm, {}))
        for key in sorted(set(flat) | set(reference)):
            if flat.get(key, "(absent)") != reference.get(key, "(absent)"):
                rows.append(
                    [
                        arm,
                        *([reference_arm] if options.per_axis else []),
                        key,
                        json.dumps(flat.get(key, "(absent)")),
                        json.dumps(reference.get(key, "(absent)")),
                    ]
                )
    described = options.describe_reference()
    columns = ["arm", "reference", "key", "value", "reference value"] if options.per_axis else None
    return _table(
        "spec_differences",
        f"What each arm changes vs {described}",
        "Resolved spec values (every default filled in) that differ from the reference arm's.",
        columns or ["arm", "key", "value", f"{described} value"],
        rows,
    )


def reference_spec_text(results: Results) -> str:
    """The reference arm's resolved spec as indented JSON ('' when the trials carry no spec)."""
    spec = arm_specs(results).get(results.reference)
    return json.dumps(spec, indent=2, sort_keys=True) if spec is not None else ""


def suite_document_text(document: Mapping[str, Any] | None) -> str:
    """The suite as loaded, as YAML ('' when not given)."""
    if not document:
        return ""
    try:
        return yaml.safe_dump(_plain(document), sort_keys=False, allow_unicode=True, width=100)
    except yaml.YAMLError:
        return json.dumps(document, indent=2, default=str)


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists (safe_dump refuses other mapping types)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def numeric_axis_table(results: Results, axis: NumericAxis) -> DisplayTable:
    """The primary metric per value of a numeric axis (rows, in suite order) and per series x backend
    (columns): the mean over ok seeds, with 'ok/trials' where some trials did not finish ok."""
    frame = numeric_axis_frame(results, axis)
    columns = list(dict.fromkeys(zip(frame["series"], frame["backend"])))
    cells: dict[tuple[str, str, str], dict[str, Any]] = {
        (str(row["series"]), str(row["backend"]), str(row["label"])): {str(key): value for key, value in row.items()}
        for row in frame.to_dict("records")
    }
    rows = []
    for label in axis.values:
        row: list[Any] = [label]
        for series, backend in columns:
            cell = cells.get((series, backend, label))
            if cell is None:
                row.append("")
                continue
            mean = float(cell["mean"])
            text = "-" if math.isnan(mean) else format_number(mean)
            if cell["n_ok"] < cell["n_trials"]:
                text += f" ({cell['n_ok']}/{cell['n_trials']} ok)"
            row.append(text)
        rows.append(row)
    header = [f"{series} ({backend})" if axis.series_axis is not None else backend for series, backend in columns]
    return _table(
        f"numeric_axis_{axis.name}",
        f"{results.primary_metric} by {axis.name}",
        f"Mean final {results.primary_metric} over the seeds that finished ok, per value of {axis.name}"
        + (f" and variant of {axis.series_axis}" if axis.series_axis is not None else "")
        + "; '(k/n ok)' where only k of the n trials finished ok (the rest diverged, failed or timed out).",
        [axis.name, *header],
        rows,
    )


def per_arm_tables(results: Results) -> list[DisplayTable]:
    """Summary, comparisons, backend deltas and time to target, one row per arm: for grids that are not large."""
    if is_large_grid(results):
        return []
    tables = [summary_table(results)]
    tables.extend(numeric_axis_table(results, axis) for axis in numeric_axes(results))
    if len(results.arms) > 1:
        tables.append(comparisons_table(results))
        examples = example_level_table(results)
        if examples is not None:
            tables.append(examples)
    if len(results.backends) > 1:
        tables.append(backend_table(results))
    if results.targets:
        tables.append(time_to_target_table(results))
    return tables


def grid_structure_tables(results: Results) -> list[DisplayTable]:
    """Top and bottom arms, main effects, importance: for large grids (harness.report.grid)."""
    from harness.report.grid import GRID_TABLE_BUILDERS

    return [table for builder in GRID_TABLE_BUILDERS for table in builder(results)]


TableBuilder = Callable[["Results"], list[DisplayTable]]
# The report's result tables, in order. Extension point: a builder returns the tables that apply to
# `results` (none when it does not apply); add one line here, or `TABLE_BUILDERS.append(builder)`.
TABLE_BUILDERS: list[TableBuilder] = [per_arm_tables, grid_structure_tables]


def report_tables(results: Results) -> list[DisplayTable]:
    """Every applicable result table for `results`, in TABLE_BUILDERS order."""
    return [table for builder in TABLE_BUILDERS for table in builder(results)]
