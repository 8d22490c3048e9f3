"""Which trials a run trains together as one stacked model (harness.adapters.vectorize), decided in the driver.

Trials that share a `group_key` (architecture, data, loss, optimizer rule, training settings) and are
each eligible (`ineligible_reason` is None) are cut into groups of at most `group_size` members; a
group becomes ONE task whose members are recorded one by one, each under its own hash. An eligible
trial with no companion is a group of one: the stacked engine gives a member the same numbers whichever
members share its group (per-member rows, fixed evaluation chunks; tests/test_vectorize.py), so a
trial's result does not depend on --jobs, on what an interrupted run left, or on its companions. It
differs from the same trial trained alone (--vectorize off) by float32 rounding only. Everything
else stays a lone task, and the run says why (`Grouping.reasons`).

Group size: at most MAX_MEMBERS (16), and as many as GROUP_MEMORY_BYTES holds at the trial's estimated
training footprint (harness.spec.footprint). A run with more workers than groups splits its largest
groups until every worker has one, so stacking never leaves a worker idle that would have had work.

On a GPU the stack is the parallelism: a group is at most GPU_MAX_MEMBERS (64) within GPU_GROUP_MEMORY_BYTES,
and GPU groups are split only until each GPU has one, not each worker (measured on an H100,
benchmarks/bench_vectorized.py: a lone MLP trial 0.9 trials/s, stacked 4.5 at 8 members, 12.2 at 32 and 17.1 at
64; sixteen workers sharing one GPU with a group of one each waste it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from harness.adapters.stackable import group_key, ineligible_reason
from harness.data.registry import dataset_info
from harness.runner.tasks import Task
from harness.spec.footprint import trial_footprint
from harness.spec.types import TrialSpec

VECTORIZE_MODES = ("auto", "off")
# Beyond this the CPU speedup per member flattens or, when other work takes the cache, falls
# (benchmarks/bench_vectorized.py, 1 thread on 2 shared cores: 2.6-2.8x at 8, 2.7-2.9x at 16, 2.5-3.6x at 32
# members), and smaller groups leave work for a second run on the same store.
MAX_MEMBERS = 16
GROUP_MEMORY_BYTES = 256 * 2**20  # estimated training memory of one group's members together
GPU_MAX_MEMBERS = 64
GPU_GROUP_MEMORY_BYTES = 4 * 2**30


@dataclass
class Grouping:
    """What grouping did: the tasks to run, and why the trials left alone were."""

    tasks: list[Task]
    grouped: int = 0  # trials in stacked groups
    groups: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # why -> how many trials run one at a time

    def describe(self) -> str:
        """One line for the run's output, e.g. 'vectorized: 12 trials in 3 stacked groups; 2 one at a time (...)'."""
        alone = sum(self.reasons.values())
        text = f"vectorized: {self.grouped} trials in {self.groups} stacked group(s)"
        if alone:
            why = "; ".join(f"{count}: {reason}" for reason, count in self.reasons.most_common())
            text += f"; {alone} one at a time ({why})"
        return text


def on_gpu(spec: TrialSpec) -> bool:
    """Whether the trial trains on a GPU (its device settled to 'cuda' or 'cuda:N' before grouping)."""
    return spec.device.startswith("cuda")


def group_size(spec: TrialSpec) -> int:
    """Most members of one group of this trial's kind: MAX_MEMBERS (GPU_MAX_MEMBERS on a GPU), fewer when
    memory says so."""
    footprint = trial_footprint(spec, dataset_info(spec.dataset).input_shape)
    most, memory = (GPU_MAX_MEMBERS, GPU_GROUP_MEMORY_BYTES) if on_gpu(spec) else (MAX_MEMBERS, GROUP_MEMORY_BYTES)
    return max(1, min(most, memory // max(1, footprint.total_bytes)))


def group_tasks(tasks: Sequence[Task], jobs: int, mode: str = "auto", gpus: int | None = None) -> Grouping:
    """Merge the tasks of stackable trials into group tasks, keeping the schedule's order (a group takes
    the place of its first member).

    Args:
        tasks: lone tasks in schedule order.
        jobs: workers the run uses (groups are split until there are at least this many tasks).
        mode: 'auto' (stack what can be stacked) or 'off' (every trial alone).
        gpus: GPUs the run's workers share (GPU groups are split only until each has one); None: as `jobs`
            (a Ray cluster, whose GPUs are not known here).

    Raises:
        ValueError: an unknown mode (the CLI's choice list prevents it).
    """
    if mode not in VECTORIZE_MODES:
        raise ValueError(f"vectorize: expected one of {', '.join(VECTORIZE_MODES)}, got {mode!r}")
    grouping = Grouping(tasks=[])
    if mode == "off":
        grouping.tasks = list(tasks)
        return grouping
    by_key: dict[str, list[Task]] = {}
    first_of: dict[int, str] = {}  # task index -> the key of the group it leads
    for task in tasks:
        reason = ineligible_reason(task.trial.spec)
        if reason is not None:
            grouping.reasons[reason] += 1
            continue
        key = group_key(task.trial.spec)
        if key not in by_key:
            first_of[task.index] = key
        by_key.setdefault(key, []).append(task)
    chunks = {key: _cut(members, group_size(members[0].trial.spec)) for key, members in by_key.items()}
    gpu_keys = {key for key, members in by_key.items() if on_gpu(members[0].trial.spec)}
    _spread({key: chunks[key] for key in chunks if key not in gpu_keys}, jobs, sum(grouping.reasons.values()))
    _spread({key: chunks[key] for key in gpu_keys}, jobs if gpus is None else max(1, gpus), 0)
    grouped_ids = {task.index for members in by_key.values() for task in members}
    for task in tasks:
        if task.index not in grouped_ids:
            grouping.tasks.append(task)
            continue
        lead_key = first_of.get(task.index)
        if lead_key is None:
            continue  # placed with its group
        for chunk in chunks[lead_key]:
            lead = chunk[0]
            members = tuple(member.trial for member in chunk[1:])
            grouping.tasks.append(Task(lead.index, lead.trial, members=members, stacked=True))
            grouping.grouped += len(chunk)
            grouping.groups += 1
    return grouping


def _cut(members: list[Task], size: int) -> list[list[Task]]:
    """Members in ceil(n / size) groups of near-equal size, in order."""
    count = math.ceil(len(members) / size)
    bounds = [round(i * len(members) / count) for i in range(count + 1)]
    return [members[start:stop] for start, stop in pairwise(bounds)]


def _spread(chunks: dict[str, list[list[Task]]], jobs: int, alone: int) -> None:
    """Split the largest groups in two until there are `jobs` tasks (groups plus lone trials) or none can be split."""
    while alone + sum(len(groups) for groups in chunks.values()) < jobs:
        key, position = max(
            ((key, i) for key, groups in chunks.items() for i in range(len(groups))),
            key=lambda item: len(chunks[item[0]][item[1]]),
            default=(None, -1),
        )
        if key is None or len(chunks[key][position]) < 2:
            return
        group = chunks[key][position]
        half = len(group) // 2
        chunks[key][position : position + 1] = [group[: len(group) - half], group[len(group) - half :]]
