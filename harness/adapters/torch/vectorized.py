"""StackedMLP: K trials of one dense stack trained as one model in torch (harness.adapters.vectorize).

Every member's trainable tensors live in ONE flat (K, P) buffer; each tensor is a leaf view of it with a
leading member axis: a bias (K, out), a dense kernel STORED TRANSPOSED, (K, out, in) - the canonical
(in, out) kernel is transposed on the way in (set_weights).

Activations run features-first: (K, units, rows), each member's rows along the last axis, so a dense
layer is torch.baddbmm(bias, kernel (K, out, in), h (K, in, rows)). Measured here on the reference MLP
(K = 32, batch 100, 1 thread): a narrow layer (10 outputs) is 4x faster as (10 x 100) @ (100 x B) than
as (B x 100) @ (100 x 10), forward and backward, the whole step 25% faster; and the logits come out as
(K, classes, B), the layout F.cross_entropy's class axis wants (its log_softmax over a short LAST axis
is 8x slower). A step is one batched forward pass (member m on its own batch x[order[m]]), the sum of
the members' mean losses backward (member m's gradient is its own loss's: the members share no
arithmetic), the gradients gathered into one (K, P) tensor, and the canonical update applied to the
flat buffer with per-member hyperparameters as (K, 1) columns - a handful of large elementwise ops per
step instead of a few per tensor per trial.

When every activation is ReLU (or none), the backward pass is written out (`_explicit_step`) instead of
run by autograd: each dense layer's kernel and bias gradients land in one flat (K, P) gradient buffer, so
there is no per-step concatenation and no autograd graph (measured: a K = 32 step of the reference MLP 7%
faster, a whole group ~6%). Its losses are autograd's bit for bit and its gradients agree to float32
rounding (tests/test_vectorize.py); other activations keep autograd.

The update rules are the formulas harness.adapters.torch.optimizers configures torch's built-ins to
(torch 2.13's torch/optim/*.py, read there):
    sgd       p -= lr*g
    momentum  v = mu*v + g (v starts at 0: the first v is g);  p -= lr*v
    nesterov  v = mu*v + g;  p -= lr*(g + mu*v)
    adagrad   G += g^2 (G starts at initial_accumulator);  p -= lr * g / (sqrt(G) + eps)
    rmsprop   s = rho*s + (1-rho)*g^2;  p -= lr * g / (sqrt(s) + eps)
    adam(w)   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
              (torch's fused Adam kernel, as a lone trial runs it, once per set of members sharing their
              hyperparameters, each member's row of the flat buffer a tensor of its own)
The kernel penalty's gradient (l1*sign(kernel) + l2*kernel, harness.adapters.common.penalty_terms) is
added to the gradient, and the decoupled decay (kernel *= 1 - lr*weight_decay) applied before the
rule, as CanonicalOptimizer does. Dropout masks come from each member's own generator, seeded as
TorchAdapter.build seeds a lone trial's, with the same draws in the same order: the same masks.

Memory: a K = 32 step allocates and frees tensors of a few MB, which glibc's malloc by default hands
back to the system and faults in afresh every step (~740 page faults, a third of the step, measured).
Building a StackedMLP therefore raises the process's malloc thresholds once (`retain_freed_memory`):
freed memory up to RETAINED_BYTES stays in the process for the next step.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.adapters.torch.layers import activation_module
from harness.data.types import DatasetInfo
from harness.spec.init import FRAMEWORK_STREAM, weight_key
from harness.spec.types import TrialSpec, effective_weight_decay

# Rows per stacked evaluation pass: small enough that 32 members' activations stay in this core's cache
# (measured on the reference MLP, K = 32, 1 thread: 128 rows 60 GFLOP/s, 1024 rows 38), and the same for
# every group size, so a member's outputs do not depend on how many members it was stacked with (a
# matrix product's rounding can depend on its row count).
STACKED_CHUNK = 128
ROW_ALIGNMENT = 16  # float32 values per 64 bytes: each member's row of the flat buffer starts on a cache line
# Columns (rows of data) of every per-member block of activations are padded to a multiple of this (16 bytes of
# float32): MKL rounds a product differently by where its output starts modulo 16 bytes (measured: iris's
# (3 x 16) @ (16 x 38) product, member 1 of 3 vs alone), so each member's blocks start where a lone member's do.
# The padding columns are copies of a real sample (finite, like any activation) and leave the losses out.
COLUMN_ALIGNMENT = 4
SEED_LIMIT = 2**63 - 1  # as TorchAdapter.build: torch.Generator.manual_seed takes a 64-bit seed
# Each rule's per-member hyperparameters (read from the resolved optimizer component)
RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": ("lr",),
    "momentum": ("lr", "momentum"),
    "nesterov": ("lr", "momentum"),
    "adagrad": ("lr", "initial_accumulator", "eps"),
    "rmsprop": ("lr", "rho", "eps"),
    "adam": ("lr", "beta1", "beta2", "eps"),
    "adamw": ("lr", "beta1", "beta2", "eps"),
}
# Optimizer state slots per rule, each a (K, P) buffer
RULE_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
# glibc mallopt parameters (malloc.h) and what retain_freed_memory sets them to: allocations below
# 32 MiB come from the heap, and up to RETAINED_BYTES of freed heap stays with the process
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed on 64-bit
RETAINED_BYTES = 256 * 2**20  # harness.runner.grouping.GROUP_MEMORY_BYTES: what a group is sized to
_malloc_tuned = False


def retain_freed_memory() -> bool:
    """Keep freed memory in the process instead of returning it to the system after every step (glibc
    malloc; a no-op elsewhere). Process-wide and once: it changes no result, only how often memory is
    faulted in. True when the thresholds were set (now or before)."""
    global _malloc_tuned
    if not _malloc_tuned:
        try:
            mallopt = ctypes.CDLL(None).mallopt  # the process's C library
        except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows): nothing to tune
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _malloc_tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            mallopt(M_TRIM_THRESHOLD, RETAINED_BYTES)
        )
    return _malloc_tuned


def _aligned(columns: int) -> int:
    """`columns` rounded up to a multiple of COLUMN_ALIGNMENT."""
    return -(-columns // COLUMN_ALIGNMENT) * COLUMN_ALIGNMENT


@contextmanager
def threads_per_member(members: int) -> Iterator[None]:
    """At most one intra-op thread per live member while the stacked model computes. A batched product with
    at least as many matrices as threads gives each matrix one thread; with fewer, MKL splits a matrix over
    threads, which changes its rounding (measured: a 10-unit layer's product at K = 1 on 2 threads, at K <= 5
    on 16), so a member's numbers would depend on its group's size."""
    threads = torch.get_num_threads()
    if members >= threads:
        yield
        return
    torch.set_num_threads(max(1, members))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Dense:
    def __init__(self, kernel: str, bias: str | None, activation: Callable[[torch.Tensor], torch.Tensor] | None):
        self.kernel, self.bias, self.activation = kernel, bias, activation


class _Dropout:
    def __init__(self, index: int) -> None:
        self.index = index  # plan index: each member's rate is read from its own spec's layer


class StackedMLP:
    """Implements harness.adapters.vectorize.StackedModel for a stack of dense, activation and dropout
    layers (one output, cross-entropy loss) on flat (features,) inputs.

    Args:
        specs: the members, sharing one harness.adapters.stackable.group_key.
        info: the dataset's shapes.
        device: where parameters and data live.

    Raises:
        ValueError: the inputs are not flat, or a layer is not one of these.
    """

    def __init__(self, specs: Sequence[TrialSpec], info: DatasetInfo, device: torch.device) -> None:
        if len(info.input_shape) != 1:
            raise ValueError(f"StackedMLP takes flat (features,) inputs, got shape {tuple(info.input_shape)}")
        retain_freed_memory()
        self.device = device
        plans = specs[0].model.plan(info.input_shape)
        self.rule = specs[0].optimizer.name
        self.layers: list[_Dense | _Dropout | Callable[[torch.Tensor], torch.Tensor]] = []
        self.shapes: dict[str, tuple[int, ...]] = {}  # canonical shapes
        self.stored: dict[str, tuple[int, ...]] = {}  # as kept in the flat buffer: kernels transposed
        kernels: list[str] = []
        self.plan_ends: list[int] = []  # per plan, how many of self.layers run up to its output (layer_outputs)
        for plan in plans:
            keys = {tensor.name: weight_key(plan, tensor) for tensor in plan.tensors}
            for tensor in plan.tensors:
                self.shapes[weight_key(plan, tensor)] = tuple(tensor.shape)
            kind = plan.layer.kind
            if kind == "dense":
                kernels.append(keys["kernel"])
                activation = activation_module(plan.layer["activation"], channel_dim=-2)
                if type(activation) is nn.ReLU:  # on the product it just made: in place (measured 10-20% of a step)
                    activation = nn.ReLU(inplace=True)
                self.layers.append(_Dense(keys["kernel"], keys.get("bias"), activation))
            elif kind == "activation":
                module = activation_module(plan.layer["activation"], channel_dim=-2)  # features-first
                if module is not None:
                    self.layers.append(module)
            elif kind == "dropout":
                self.layers.append(_Dropout(plan.index))
            else:  # ineligible_reason refuses these before a group is built
                raise ValueError(f"StackedMLP has no layer {kind!r}")
            self.plan_ends.append(len(self.layers))
        self.kernels = frozenset(kernels)
        # the backward pass written out when its only nonlinearity is ReLU (_explicit_step); else autograd's
        self.explicit = bool(kernels) and all(
            isinstance(layer, _Dropout)
            or (isinstance(layer, _Dense) and (layer.activation is None or type(layer.activation) is nn.ReLU))
            or type(layer) is nn.ReLU
            for layer in self.layers
        )
        for key, shape in self.shapes.items():
            if key in self.kernels and len(shape) != 2:
                raise ValueError(f"StackedMLP: kernel {key!r} has shape {shape}, expected (in, out)")
            self.stored[key] = (shape[1], shape[0]) if key in self.kernels else shape
        self.offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for key, shape in self.shapes.items():
            size = int(np.prod(shape))
            self.offsets[key] = (total, total + size)
            total += size
        self.num_values = total
        # each member's row padded to whole 64-byte lines (the allocator aligns the buffer to 64 bytes), so every
        # member's tensors sit at the same alignment as a lone member's: BLAS kernels may round differently
        # when an operand is aligned differently (measured: iris's 3-unit layer, member 1 of 3)
        total = -(-total // ROW_ALIGNMENT) * ROW_ALIGNMENT
        self.kernel_mask = torch.zeros(1, total, dtype=torch.bool, device=device)
        for key in kernels:
            start, stop = self.offsets[key]
            self.kernel_mask[0, start:stop] = True
        self._set_members(specs)
        self.flat = torch.zeros(len(specs), total, device=device)
        self._make_views()
        self.slots: list[torch.Tensor] = []
        self.step_count = torch.zeros((), dtype=torch.float32, device=device)  # the fused kernel's step
        self.training_inputs: torch.Tensor | None = None
        self.training_labels: torch.Tensor | None = None

    # -- members --------------------------------------------------------------------------------

    def _set_members(self, specs: Sequence[TrialSpec]) -> None:
        """Per-member hyperparameters as (K, 1) columns, dropout rates, generators."""

        def column(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=self.device).reshape(-1, 1)

        self.hyper = {name: column([spec.optimizer[name] for spec in specs]) for name in RULE_PARAMETERS[self.rule]}
        self.hyper_values = {
            name: [float(spec.optimizer[name]) for spec in specs] for name in RULE_PARAMETERS[self.rule]
        }
        self._share()
        decay = [effective_weight_decay(spec.optimizer, spec.regularizer) for spec in specs]
        self.decay = column([1.0 - spec.optimizer["lr"] * wd for spec, wd in zip(specs, decay)]) if any(decay) else None
        l1 = [spec.regularizer.l1 for spec in specs]
        l2 = [spec.regularizer.l2 for spec in specs]
        self.l1 = column(l1) if any(l1) else None
        self.l2 = column(l2) if any(l2) else None
        self.rates = {
            layer.index: [float(spec.model.layers[layer.index]["rate"]) for spec in specs]
            for layer in self.layers
            if isinstance(layer, _Dropout)
        }
        self.generators = []
        for spec in specs:
            # the same two draws as TorchAdapter.build: the second seeds the dropout masks
            _, dropout_seed = np.random.default_rng([spec.seed, FRAMEWORK_STREAM]).integers(0, SEED_LIMIT, size=2)
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(dropout_seed))
            self.generators.append(generator)

    def _share(self) -> None:
        """`rows_by_hyperparameters`: (hyperparameters, live member positions) for each distinct set."""
        names = list(self.hyper_values)
        sets: dict[tuple[float, ...], list[int]] = {}
        for row, values in enumerate(zip(*(self.hyper_values[name] for name in names))):
            sets.setdefault(tuple(values), []).append(row)
        self.rows_by_hyperparameters = [(dict(zip(names, key)), rows) for key, rows in sets.items()]

    def _make_views(self) -> None:
        members = self.flat.shape[0]
        self.tensors: dict[str, torch.Tensor] = {}
        self.values: dict[str, torch.Tensor] = {}  # the same views without requires_grad: _explicit_step's
        for key, shape in self.stored.items():  # (autograd's dispatch on grad-requiring inputs cost it ~10%)
            start, stop = self.offsets[key]
            self.values[key] = self.flat[:, start:stop].view(members, *shape)
            self.tensors[key] = self.flat[:, start:stop].view(members, *shape).requires_grad_(True)
        self.leaves = list(self.tensors.values())
        # _explicit_step's gradients: one flat buffer laid out as self.flat (its rows' padding stays zero)
        self.gradient = torch.zeros_like(self.flat) if self.explicit else None
        gradient = self.gradient
        self.gradient_views = (
            {}
            if gradient is None
            else {key: gradient[:, a:b].view(members, *self.stored[key]) for key, (a, b) in self.offsets.items()}
        )
        # the rows' padding: zero parameters with zero gradients, which every rule leaves at zero
        self.padding = torch.zeros(members, self.flat.shape[1] - self.num_values, device=self.device)
        self.adam_rows: list[tuple[list[torch.Tensor], ...]] | None = None  # built by _adam

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (positions among the live members, ascending)."""
        index = torch.tensor(list(members), dtype=torch.int64, device=self.device)
        self.flat = self.flat.index_select(0, index)
        self.slots = [slot.index_select(0, index) for slot in self.slots]
        self.hyper = {name: value.index_select(0, index) for name, value in self.hyper.items()}
        self.hyper_values = {name: [values[m] for m in members] for name, values in self.hyper_values.items()}
        self._share()
        for name in ("decay", "l1", "l2"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))
        self.rates = {layer: [rates[m] for m in members] for layer, rates in self.rates.items()}
        self.generators = [self.generators[m] for m in members]
        self._make_views()

    # -- the StackedModel interface -------------------------------------------------------------

    def set_weights(self, weights: Sequence[dict[str, np.ndarray]]) -> None:
        """Each member's canonical weights, in member order; resets optimizer state.

        Raises:
            ValueError: a member's keys or shapes do not match the model.
        """
        rows = []
        for member in weights:
            if set(member) != set(self.shapes):
                raise ValueError(f"weights: expected keys {sorted(self.shapes)}, got {sorted(member)}")
            parts = []
            for key, shape in self.shapes.items():
                array = np.asarray(member[key], dtype=np.float32)
                if array.shape != shape:
                    raise ValueError(f"weights[{key!r}]: expected shape {shape}, got {array.shape}")
                parts.append((array.T if key in self.kernels else array).reshape(-1))
            parts.append(np.zeros(self.flat.shape[1] - self.num_values, dtype=np.float32))  # the row's padding
            rows.append(np.concatenate(parts))
        with torch.no_grad():
            self.flat.copy_(torch.from_numpy(np.stack(rows)))
        slots = RULE_SLOTS[self.rule]
        self.slots = [torch.zeros_like(self.flat) for _ in range(slots)]
        if self.rule == "adagrad":
            self.slots[0] += self.hyper["initial_accumulator"]
        self.step_count.zero_()
        self.adam_rows = None

    def set_training_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.training_inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        self.training_labels = torch.tensor(np.asarray(y, dtype=np.int64), device=self.device)

    def _forward(
        self,
        h: torch.Tensor,
        training: bool,
        columns: int = 0,
        layers: Sequence[object] | None = None,
        saved: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None,
    ) -> torch.Tensor:
        """(K, features, rows) -> (K, outputs, rows) logits, features-first; or, in evaluation, shared
        (features, rows) inputs every member reads (broadcast to the members at the first dense layer).

        saved: if given, what `_explicit_step`'s backward pass reads, one (kept, activated) pair per layer: a
        dense layer's input and its output after an activation (None without one); dropout's mask (in training);
        another layer's output, twice. The weights are then read without requires_grad (`values`)."""
        tensors = self.tensors if saved is None else self.values
        for layer in self.layers if layers is None else layers:
            if isinstance(layer, _Dense):
                kernel = tensors[layer.kernel]  # (K, out, in)
                if h.dim() == 2:
                    h = h.expand(kernel.shape[0], *h.shape)
                given = h
                if layer.bias is not None:
                    h = torch.baddbmm(tensors[layer.bias].unsqueeze(2), kernel, h)
                else:
                    h = torch.bmm(kernel, h)
                if layer.activation is not None:
                    h = layer.activation(h)
                record = (given, h if layer.activation is not None else None)
            elif isinstance(layer, _Dropout):
                if training:
                    mask = self._masks(layer.index, h, columns)
                    h = h * mask
                record = (mask if training else h, None)
            else:
                h = layer(h)  # type: ignore[operator]
                record = (h, h)
            if saved is not None:
                saved.append(record)
        return h

    def _masks(self, index: int, h: torch.Tensor, columns: int) -> torch.Tensor:
        """(K, units, width) inverted-dropout masks: member m's first `columns` drawn as a lone trial's
        InvertedDropout draws its (columns, units) mask, then transposed; the padding columns' are ones."""
        shape = (columns, h.shape[1])
        masks = []
        for rate, generator in zip(self.rates[index], self.generators):
            if rate == 0:  # a lone trial has no dropout module then, and draws nothing
                masks.append(torch.ones(shape, device=h.device, dtype=h.dtype))
                continue
            keep = 1.0 - rate
            masks.append(
                torch.empty(shape, device=h.device, dtype=h.dtype).bernoulli_(keep, generator=generator).div_(keep)
            )
        stacked = torch.stack(masks).transpose(1, 2)
        return F.pad(stacked, (0, h.shape[2] - columns), value=1.0) if h.shape[2] > columns else stacked

    def train_epoch(self, batches: Sequence[list[np.ndarray]]) -> np.ndarray:
        """One step per batch for every live member (member m's batches are batches[m]; all members have
        the same batch sizes): float64 (steps, members) of each step's data loss."""
        x, y = self.training_inputs, self.training_labels
        if x is None or y is None:
            raise RuntimeError("call set_training_data before train_epoch")
        if len(batches) != self.flat.shape[0]:
            raise ValueError(f"train_epoch: {len(batches)} batch lists for {self.flat.shape[0]} members")
        if not batches or not batches[0]:
            return np.zeros((0, len(batches)), dtype=np.float64)
        members = len(batches)
        order = torch.from_numpy(np.stack([np.concatenate(member) for member in batches]).astype(np.int64))
        order = order.to(self.device)  # one host->device copy for the epoch's indices
        with threads_per_member(members):
            rows = self._steps(x, y, order, [len(batch) for batch in batches[0]])
        return torch.stack(rows).cpu().numpy().astype(np.float64)

    def _steps(self, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
        """One step per batch size (member m's batch: its next `size` indices in order[m]): each step's losses."""
        members = order.shape[0]
        rows = []
        start = 0
        for size in sizes:
            index = order[:, start : start + size]  # (K, B)
            start += size
            width = _aligned(size)
            padded = torch.cat([index, index[:, -1:].expand(members, width - size)], dim=1) if width > size else index
            inputs = x.index_select(0, padded.reshape(-1)).view(members, width, -1).transpose(1, 2)  # (K, in, width)
            labels = y.index_select(0, index.reshape(-1)).view(members, size)
            if self.gradient is not None:  # self.explicit: the backward pass written out
                rows.append(self._explicit_step(inputs, labels))
                self._update(self.gradient)
                continue
            logits = self._forward(inputs, training=True, columns=size)[:, :, :size]  # (K, classes, B)
            losses = F.cross_entropy(logits, labels, reduction="none").mean(dim=1)  # each member's mean loss
            grads = torch.autograd.grad(losses.sum(), self.leaves)
            rows.append(losses.detach())
            self._update(torch.cat([*(g.reshape(members, -1) for g in grads), self.padding], dim=1))
        return rows

    @torch.no_grad()
    def _explicit_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training forward pass and its backward pass written out, for stacks whose only nonlinearity is
        ReLU: fills self.gradient with the gradient of the sum of the members' mean losses (as autograd's, to
        float32 rounding) and returns each member's mean loss (autograd's path's, bit for bit).

        inputs: (K, features, width) features-first, its first labels.shape[1] columns real, the rest padding."""
        size = labels.shape[1]
        saved: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        h = self._forward(inputs, training=True, columns=size, saved=saved)
        log_p = torch.log_softmax(h[:, :, :size], dim=1)  # (K, classes, B): F.cross_entropy's log_softmax
        losses = F.nll_loss(log_p, labels, reduction="none").mean(dim=1)
        # d(sum of mean losses)/d logits = (softmax - one_hot) / B; the padding columns' gradient is zero
        grad = log_p.exp_()
        grad.scatter_add_(1, labels.unsqueeze(1), torch.full_like(labels, -1, dtype=grad.dtype).unsqueeze(1))
        grad.div_(size)
        if h.shape[2] > size:
            grad = F.pad(grad, (0, h.shape[2] - size))
        first_dense = next(i for i, layer in enumerate(self.layers) if isinstance(layer, _Dense))
        for position in range(len(self.layers) - 1, first_dense - 1, -1):
            layer, (kept, activated) = self.layers[position], saved[position]
            if activated is not None:  # ReLU, of a dense layer or of its own: d/dx = 1 where the output > 0
                grad = torch.ops.aten.threshold_backward(grad, activated, 0)
            if isinstance(layer, _Dense):
                # into a product of its own, then copied: bmm writing straight into the buffer's (strided)
                # view rounds differently by group size on several threads (measured: a 10-unit layer, 2 threads)
                self.gradient_views[layer.kernel].copy_(torch.bmm(grad, kept.transpose(1, 2)))
                if layer.bias is not None:
                    self.gradient_views[layer.bias].copy_(grad.sum(dim=2))
                if position > first_dense:  # the gradient of its input, for the layers below
                    grad = torch.bmm(self.values[layer.kernel].transpose(1, 2), grad)
            elif isinstance(layer, _Dropout):
                grad = grad * kept
        return losses

    @torch.no_grad()
    def _update(self, g: torch.Tensor) -> None:
        """The canonical step on the flat (K, P) buffer: penalty gradient, decoupled decay, the rule."""
        p, hyper = self.flat, self.hyper
        if self.l1 is not None:
            g = g + torch.where(self.kernel_mask, self.l1 * torch.sign(p), 0.0)
        if self.l2 is not None:
            g = g + torch.where(self.kernel_mask, self.l2 * p, 0.0)
        if self.decay is not None:
            p.mul_(torch.where(self.kernel_mask, self.decay, 1.0))
        lr, rule = hyper["lr"], self.rule
        if rule == "sgd":
            p.sub_(lr * g)
        elif rule in ("momentum", "nesterov"):
            velocity = self.slots[0]
            velocity.mul_(hyper["momentum"]).add_(g)
            p.sub_(lr * (g + hyper["momentum"] * velocity if rule == "nesterov" else velocity))
        elif rule == "adagrad":
            accumulator = self.slots[0]
            accumulator.addcmul_(g, g)
            p.sub_(lr * g / (accumulator.sqrt() + hyper["eps"]))
        elif rule == "rmsprop":
            square = self.slots[0]
            square.mul_(hyper["rho"]).add_((1.0 - hyper["rho"]) * g * g)
            p.sub_(lr * g / (square.sqrt() + hyper["eps"]))
        else:
            self._adam(g.contiguous())

    def _adam(self, g: torch.Tensor) -> None:
        """adam, adamw: torch's fused kernel, the one a lone trial's Adam(fused=True) runs, once per set of
        members sharing their hyperparameters, each member's row a tensor of its own: what a member gets
        does not depend on which members it is stacked with."""
        if self.adam_rows is None:  # the rows of the buffers, until keep or set_weights replaces them
            buffers = [self.flat.unbind(0), *(slot.unbind(0) for slot in self.slots)]  # parameters, m, v
            self.adam_rows = [
                tuple([buffer[row] for row in rows] for buffer in buffers) for _, rows in self.rows_by_hyperparameters
            ]
        self.step_count += 1
        gradients = g.unbind(0)
        for (values, rows), (parameters, first, second) in zip(
            self.rows_by_hyperparameters, self.adam_rows, strict=True
        ):
            torch._fused_adam_(
                parameters,
                [gradients[row] for row in rows],
                first,
                second,
                [],
                [self.step_count] * len(rows),
                amsgrad=False,
                lr=values["lr"],
                beta1=values["beta1"],
                beta2=values["beta2"],
                weight_decay=0.0,
                eps=values["eps"],
                maximize=False,
            )

    @staticmethod
    def _pad_rows(rows: torch.Tensor) -> torch.Tensor:
        """(N, in) rows with the last repeated up to whole 16-byte columns (COLUMN_ALIGNMENT)."""
        count = len(rows)
        if count == 0 or _aligned(count) == count:
            return rows
        return torch.cat([rows, rows[-1:].expand(_aligned(count) - count, *rows.shape[1:])])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Every live member's evaluation-mode outputs (dropout off), float32 (members, N, outputs)."""
        inputs = torch.tensor(np.asarray(x, dtype=np.float32))
        members = self.flat.shape[0]
        chunks = []
        with torch.no_grad(), threads_per_member(members):
            for start in range(0, max(len(inputs), 1), STACKED_CHUNK):
                rows = inputs[start : start + STACKED_CHUNK].to(self.device)
                outputs = self._forward(self._pad_rows(rows).t(), training=False)[
                    ..., : len(rows)
                ]  # (K, outputs, rows)
                if outputs.dim() == 2:  # no dense layer at all: every member's output is the same
                    outputs = outputs.unsqueeze(0).expand(members, *outputs.shape)
                chunks.append(outputs.cpu())
        return torch.cat(chunks, dim=2).transpose(1, 2).contiguous().numpy()

    # -- diagnostics (harness.diagnostics): what a lone model's probe reads, for every member at once ----------

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every live member's trainable tensors, float32 (members, *canonical shape) per canonical key."""
        return {
            key: (tensor.transpose(1, 2) if key in self.kernels else tensor).detach().cpu().numpy().copy()
            for key, tensor in self.tensors.items()
        }

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Evaluation-mode output of every layer in plan order, each float32 (members, N, units): a lone
        model's `layer_outputs` for every member (a dense layer's output is after its activation)."""
        inputs = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
        count, members = len(inputs), self.flat.shape[0]
        h = self._pad_rows(inputs).t()  # (in, width), features-first
        arrays = []
        with torch.no_grad(), threads_per_member(members):
            start = 0
            for end in self.plan_ends:
                h = self._forward(h, training=False, layers=self.layers[start:end])
                start = end
                value = h if h.dim() == 3 else h.unsqueeze(0).expand(members, *h.shape)  # before the first dense
                arrays.append(value[..., :count].transpose(1, 2).cpu().numpy().astype(np.float32, copy=True))
        return arrays

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of each member's objective (its mean data loss + its l1/l2 penalty, training mode) on one
        batch every member reads, float32 (members, *shape) per canonical key; as a lone model's
        `gradients`, it changes nothing: the members' dropout generators are restored afterwards."""
        states = [generator.get_state() for generator in self.generators]
        members = self.flat.shape[0]
        try:
            inputs = self._pad_rows(torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)).t()
            labels = torch.tensor(np.asarray(y, dtype=np.int64), device=self.device)
            size = len(labels)
            with threads_per_member(members):
                logits = self._forward(inputs.expand(members, *inputs.shape), training=True, columns=size)
                losses = F.cross_entropy(logits[:, :, :size], labels.expand(members, size), reduction="none")
                grads = torch.autograd.grad(losses.mean(dim=1).sum(), self.leaves)
        finally:
            for generator, state in zip(self.generators, states):
                generator.set_state(state)
        result = {}
        with torch.no_grad():
            for (key, tensor), grad in zip(self.tensors.items(), grads):
                if key in self.kernels:  # the penalty's gradient, l1*sign(kernel) + l2*kernel, as alone
                    shape = (-1,) + (1,) * (tensor.dim() - 1)
                    if self.l1 is not None:
                        grad = grad + self.l1.reshape(shape) * torch.sign(tensor)
                    if self.l2 is not None:
                        grad = grad + self.l2.reshape(shape) * tensor
                    grad = grad.transpose(1, 2)  # stored (K, out, in) -> canonical (K, in, out)
                result[key] = grad.detach().cpu().numpy().astype(np.float32, copy=True)
        return result


def build_stacked(specs: Sequence[TrialSpec], info: DatasetInfo, device: torch.device) -> StackedMLP:
    """The stacked model of eligible specs sharing one group_key (harness.adapters.stackable)."""
    return StackedMLP(specs, info, device)
