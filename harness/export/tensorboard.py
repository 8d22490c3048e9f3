"""`harness export --to tensorboard`: a suite's stored trials as TensorBoard event files.

Layout under `<output>/<suite>/`: one folder per trial, `<arm>/<backend>-seed<seed>-<hash8>/`,
holding its scalars (every metric, the epoch as the step, the tag the metric's name) and the
HParams plugin's session record for it; the suite folder itself holds the HParams experiment
(which hyperparameters and metrics the table and the parallel-coordinates view show). The
hyperparameters are the trial's arm, backend and seed, its grid axes' labels, and every
parameter of the resolved spec that differs between the suite's trials (`optimizer.lr`, ...).

Written with tensorboard's own event writer and protos: TensorFlow is not imported. Idempotent:
a trial folder holds a `.harness-recorded` stamp (when the trial's result was stored); a trial
with the same stamp is left as it is, one stored again since is rewritten (its old event files
are removed first). Non-finite values (a diverged epoch's NaN loss) are left out.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.export.common import TrialRecord, trial_records

if TYPE_CHECKING:
    from harness.analysis import Results

INSTALL = 'pip install "harness[tensorboard]"'
STAMP = ".harness-recorded"
EVENT_FILES = "events.out.tfevents.*"
UNSAFE = re.compile(r"[^A-Za-z0-9_.=,+-]+")  # characters kept in a folder name


@dataclass(frozen=True)
class TensorboardExport:
    """What one export did: its folder, trial folders written and left as they were."""

    directory: Path
    written: int
    unchanged: int

    def describe(self) -> str:
        return (
            f"{self.written} trials written, {self.unchanged} already exported: tensorboard --logdir {self.directory}"
        )


def _modules() -> Any:
    # tensorboard's writer reaches file I/O through `tensorboard.compat.tf`, which imports TensorFlow
    # when it is installed (about 5 s) unless the module `tensorboard.compat.notf` exists (tensorboard's
    # own switch to its stub). Where TensorFlow is not loaded yet, register that switch: local files need
    # no TensorFlow. Where it is loaded already, it costs nothing and is left in use.
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import summary_v2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as error:
        raise HarnessError(
            f"--to tensorboard: the tensorboard package is not installed ({error}). Install it with: {INSTALL}"
        ) from None
    return event_pb2, summary_pb2, summary_v2, EventFileWriter


def folder_name(text: str) -> str:
    """`text` made safe as one path component ('adam,hidden=[64, 64]' -> 'adam,hidden=_64,_64_')."""
    return UNSAFE.sub("_", text).strip(".") or "_"


def _typed(text: str) -> bool | int | float | str:
    """A flattened parameter's value as the HParams plugin types it: numbers and booleans as such."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
        return value
    return text


def hyperparameters(records: Sequence[TrialRecord], axes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """hash -> {hyperparameter: value}: arm, backend, seed, each axis label, and every spec parameter
    whose value is not the same in all trials (what tells the trials apart)."""
    varying = [
        key
        for key in dict.fromkeys(key for record in records for key in record.params)
        if key not in ("seed", "backend") and len({record.params.get(key, "") for record in records}) > 1
    ]
    table = {}
    for record in records:
        values: dict[str, Any] = {"arm": record.arm, "backend": record.backend, "seed": record.seed}
        for axis in axes:
            values[f"axis.{axis}"] = record.tags.get(f"axis.{axis}", "")
        for key in varying:
            values[key] = _typed(record.params.get(key, ""))
        table[record.hash] = values
    return table


def export_tensorboard(results: Results, output: str | Path) -> TensorboardExport:
    """Write a suite's stored results as TensorBoard event files (module docstring: the layout).

    Args:
        results: the suite's results (`harness.load`, `open_results`).
        output: the log folder; the suite's runs go to `<output>/<suite>/`.

    Raises:
        HarnessError: tensorboard is not installed, or the folder cannot be written.
    """
    event_pb2, summary_pb2, summary_v2, EventFileWriter = _modules()
    directory = Path(output) / folder_name(results.name)
    records = trial_records(results)
    table = hyperparameters(records, results.axes)
    metric_names = list(dict.fromkeys(name for record in records for _, name, _ in record.metrics))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        experiment = summary_v2.hparams_config_pb(
            hparams=[summary_v2.HParam(name) for name in next(iter(table.values()), {})],
            metrics=[summary_v2.Metric(name) for name in metric_names],
        )
        _replace_events(directory, [_event(event_pb2, experiment, 0)], EventFileWriter)
        written = unchanged = 0
        for record in records:
            folder = (
                directory
                / folder_name(record.arm)
                / folder_name(f"{record.backend}-seed{record.seed}-{record.hash[:8]}")
            )
            stamp = folder / STAMP
            if stamp.is_file() and stamp.read_text() == record.recorded:
                unchanged += 1
                continue
            session = summary_v2.hparams_pb(table[record.hash], trial_id=record.hash)
            events = [_event(event_pb2, session, 0)]
            for epoch, name, value in record.metrics:
                if math.isfinite(value):
                    scalar = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, simple_value=value)])
                    events.append(_event(event_pb2, scalar, epoch))
            folder.mkdir(parents=True, exist_ok=True)
            stamp.unlink(missing_ok=True)  # a folder half-rewritten is never taken for done
            _replace_events(folder, events, EventFileWriter)
            stamp.write_text(record.recorded)
            written += 1
    except OSError as error:
        raise HarnessError(
            f"--to tensorboard: cannot write {directory} ({error.strerror or error}). "
            "Fix: pass --output with a folder you can write to."
        ) from None
    return TensorboardExport(directory, written, unchanged)


def _event(event_pb2: Any, summary: Any, step: int) -> Any:
    return event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)


def _replace_events(folder: Path, events: Sequence[Any], writer_class: Any) -> None:
    """Write `events` to one new event file in `folder`, removing the event files written there before."""
    for old in folder.glob(EVENT_FILES):
        old.unlink()
    writer = writer_class(str(folder))
    try:
        for event in events:
            writer.add_event(event)
    finally:
        writer.close()


def read_scalars(folder: str | Path) -> Mapping[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the scalars in a folder's event files (tensorboard's EventAccumulator):
    how the tests, and a user, read an export back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }
