"""What the torch and Keras adapters share, written once and framework-free.

Keras 3 keeps one folder per backend exporting the same names; what is not backend-specific
lives outside them. Here: the init-mode check, the device names a trial may ask for, the prediction
chunk size, how several outputs' losses are weighted, the kernel penalty as data, which
realizer serves each layer kind, the "has no realization" error, and the host's CPU name.
Each adapter folder (harness/adapters/torch/, harness/adapters/keras/) holds only what its
framework needs to realize these facts.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from harness.errors import BackendError, SpecError
from harness.spec.graph import ModelOutput
from harness.spec.layers import LAYERS
from harness.spec.types import INIT_MODES

PREDICT_CHUNK = 8192  # rows per forward pass in predict and layer_outputs: bounds memory on large splits

Function = TypeVar("Function")


# --- errors -------------------------------------------------------------------------------------


def no_realization(
    backend: str, what: str, name: str, known: Iterable[str], where: str = "", fix: str = ""
) -> BackendError:
    """The error for a canonical name (loss, layer, optimizer, initializer, ...) an adapter does not realize.

    Args:
        backend: the adapter as users name it ('torch', 'Keras').
        what: the kind of name ('loss', 'layer', 'initializer').
        name: the name received.
        known: the names the adapter does realize (listed, sorted).
        where: the location in the suite; default: `what`.
        fix: a sentence saying what to do instead, when there is more to say than "pick a known one".
    """
    message = (
        f"{where or what}: the {backend} backend has no realization of {what} {name!r}. "
        f"Expected one of: {', '.join(sorted(known))}."
    )
    return BackendError(f"{message} {fix}" if fix else message)


def check_init_mode(init_mode: str) -> None:
    """Raise SpecError unless `init_mode` is one of INIT_MODES."""
    if init_mode not in INIT_MODES:
        raise SpecError(f"init_mode: expected one of {', '.join(INIT_MODES)}, got {init_mode!r}.")


# --- devices ------------------------------------------------------------------------------------


def requested_gpu(device: str, backend: str) -> int | None:
    """The GPU index a trial's `device` asks for: None for 'cpu' and 'auto', N for 'cuda:N' ('cuda' = 0).

    Raises:
        BackendError: the name is none of 'cpu', 'cuda', 'cuda:N', 'auto'.
    """
    if device in ("auto", "cpu"):
        return None
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise BackendError(f"device: the {backend} backend got {device!r}; expected 'cpu', 'cuda', 'cuda:N' or 'auto'.")
    return int(match.group(1) or 0)


def check_gpu_visible(device: str, index: int, visible: int, seen_by: str, no_gpu_fix: str) -> None:
    """Raise BackendError unless GPU `index` is among the `visible` ones.

    Args:
        device: the name the trial asked for, e.g. 'cuda:1'.
        index: the GPU index it asks for.
        visible: how many GPUs the framework sees.
        seen_by: who sees them, as the message names it ('torch', "Keras' jax backend").
        no_gpu_fix: what the message tells a user whose framework sees no GPU at all.
    """
    if visible == 0:
        raise BackendError(f"device: {device!r} was asked for, but {seen_by} sees no GPU{no_gpu_fix}")
    if index >= visible:
        raise BackendError(
            f"device: {device!r} was asked for, but {seen_by} sees {visible} GPU(s) "
            f"(cuda:0..cuda:{visible - 1}). Pick one of those, or 'auto'."
        )


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


# --- tables from canonical names to a framework's realizations ----------------------------------


def complete_table(
    table: Mapping[str, Function], canonical: Iterable[str], backend: str, what: str
) -> dict[str, Function]:
    """`table` as a dict, after checking it realizes exactly the canonical names (a programming error otherwise)."""
    expected, have = set(canonical), set(table)
    if have != expected:
        raise TypeError(
            f"the {backend} adapter's {what} table is out of step with the canonical names: "
            f"missing {sorted(expected - have)}, extra {sorted(have - expected)}"
        )
    return dict(table)


def look_up(
    table: Mapping[str, Function], name: str, backend: str, what: str, where: str = "", fix: str = ""
) -> Function:
    """table[name], or the no_realization error naming every key of the table."""
    if name not in table:
        raise no_realization(backend, what, name, table, where, fix)
    return table[name]


# Which realizer function builds each canonical layer kind (harness.spec.layers.LAYERS): each adapter's
# realize.py defines one function per family, under these names, and builds REALIZERS with realizer_table.
REALIZER_FAMILIES: dict[str, str] = {
    "dense": "dense",
    "activation": "activation",
    "dropout": "dropout",
    "conv1d": "convolution",
    "conv2d": "convolution",
    "max_pool1d": "pool",
    "max_pool2d": "pool",
    "avg_pool1d": "pool",
    "avg_pool2d": "pool",
    "global_avg_pool": "global_pool",
    "global_max_pool": "global_pool",
    "flatten": "flatten",
    "reshape": "reshape",
    "batch_norm": "batch_norm",
    "layer_norm": "layer_norm",
    "simple_rnn": "recurrent",
    "lstm": "recurrent",
    "gru": "recurrent",
    "embedding": "embedding",
    "position_embedding": "position_embedding",
    "multi_head_attention": "attention",
    "transformer_encoder": "transformer",
    "add": "add",
    "concatenate": "concatenate",
}
assert set(REALIZER_FAMILIES) == set(LAYERS), "every canonical layer kind needs a realizer family"


def realizer_table(namespace: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """Layer kind -> realizer, from a realize.py's globals(): each family's realizer is the function of its name."""
    families = set(REALIZER_FAMILIES.values())
    realizers = complete_table(
        {name: namespace[name] for name in families if name in namespace}, families, backend, "realizer"
    )
    return {kind: realizers[family] for kind, family in REALIZER_FAMILIES.items()}


# --- the kernel penalty, as data ----------------------------------------------------------------


@dataclass(frozen=True)
class PenaltyTerm:
    """One term of the kernel penalty: coefficient * sum(elementwise(kernel)) over every kernel."""

    elementwise: str  # 'abs' or 'square': each adapter maps these to its framework's functions
    coefficient: float


def penalty_terms(l1: float, l2: float) -> tuple[PenaltyTerm, ...]:
    """The canonical penalty l1 * sum|kernel| + (l2 / 2) * sum kernel^2 (RegularizerSpec), zero terms left out.

    Its gradient is l1 * sign(kernel) + l2 * kernel. Kernels are the regularized tensors (kernel,
    recurrent_kernel, embedding), never biases or batch_norm's tensors. An empty result: no penalty.
    """
    terms = []
    if l1:
        terms.append(PenaltyTerm("abs", l1))
    if l2:
        terms.append(PenaltyTerm("square", 0.5 * l2))
    return tuple(terms)


# --- several outputs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputLosses(Generic[Function]):
    """Each output's name, canonical loss, that loss's function in one framework, and its share.

    A model with several outputs (the graph form) minimizes the weighted mean of their losses,
    sum_i(w_i * loss_i) / sum_j(w_j) = sum_i(share_i * loss_i). An output without a loss of its own
    uses the trial's.
    """

    names: tuple[str, ...]
    loss_names: tuple[str, ...]
    functions: tuple[Function, ...]
    shares: tuple[float, ...]  # w_i / sum_j(w_j)


def output_losses(
    outputs: Sequence[ModelOutput], trial_loss: str, loss_function: Callable[[str], Function]
) -> OutputLosses[Function]:
    """The OutputLosses of a model's outputs (ModelSpec.outputs()), with functions from the adapter's `loss_function`."""
    loss_names = tuple(output.loss or trial_loss for output in outputs)
    total_weight = sum(output.weight for output in outputs)
    return OutputLosses(
        names=tuple(output.name for output in outputs),
        loss_names=loss_names,
        functions=tuple(loss_function(name) for name in loss_names),
        shares=tuple(output.weight / total_weight for output in outputs),
    )


def train_epoch(
    run_epoch: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray],
    batches: list[np.ndarray],
    output_names: Sequence[str],
    learning_rates: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run one epoch of steps and split its losses: (each step's data loss, {output: each step's loss}), float64.

    Args:
        run_epoch: the adapter's epoch runner, (order, bounds, rates) -> (steps, 1 + outputs) losses, where
            order holds the epoch's sample indices batch after batch (int64) and batch b is
            order[bounds[b]:bounds[b + 1]]; column 0 is the minimized data loss, then one per output.
        batches: one index array per optimizer step.
        output_names: the model's outputs, in column order.
        learning_rates: the learning rate of each step (harness.spec.schedules.step_rates), set on the
            optimizer before that step; None: the optimizer's own lr, untouched.
    """
    if learning_rates is not None and len(learning_rates) != len(batches):
        raise ValueError(f"train_epoch: {len(learning_rates)} learning rates for {len(batches)} steps")
    if not batches:
        return np.zeros(0, dtype=np.float64), {name: np.zeros(0, dtype=np.float64) for name in output_names}
    order = np.concatenate(batches).astype(np.int64, copy=False)
    bounds = np.concatenate([[0], np.cumsum([len(batch) for batch in batches])]).astype(np.int64)
    rates = None if learning_rates is None else np.asarray(learning_rates, dtype=np.float64)
    table = np.asarray(run_epoch(order, bounds, rates), dtype=np.float64)  # (steps, 1 + outputs)
    return table[:, 0], {name: table[:, 1 + i] for i, name in enumerate(output_names)}


def prediction_chunks(count: int) -> Iterator[slice]:
    """The row ranges predict runs one forward pass on: PREDICT_CHUNK rows each (one empty chunk for 0 rows)."""
    for start in range(0, max(count, 1), PREDICT_CHUNK):
        yield slice(start, start + PREDICT_CHUNK)
