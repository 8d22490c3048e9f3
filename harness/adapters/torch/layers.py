"""torch modules realizing the canonical layers (harness.spec.layers*) exactly.

Layout inside the torch network: convolution, pooling and batch_norm run CHANNELS-FIRST
(N, C, L) / (N, C, H, W), torch's native layout; everything else runs channels-last like the
canonical tensors. harness.adapters.torch.realize inserts a `Permute` wherever the layout
changes (e.g. before conv1d on a (N, L, C) input, before flatten after a conv). Modules whose
tensors torch has no built-in for (attention, transformer block, embeddings) hold them in
canonical layout directly, e.g. a (in, out) kernel used as x @ kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.spec.components import ACTIVATIONS, Component
from harness.spec.layers_sequence import attention_tensors


class InvertedDropout(nn.Module):
    """Canonical dropout: in training, zero each element with probability `rate` and scale
    the survivors by 1/(1-rate); identity in evaluation mode.

    Same arithmetic as `nn.Dropout`, but the masks come from the model's own generator, so a
    trial's masks depend only on its seed (not on whatever else used torch's global RNG).
    """

    def __init__(self, rate: float, generator: torch.Generator) -> None:
        super().__init__()
        self.rate = rate
        self.keep = 1.0 - rate
        self.generator = generator

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return inputs
        # mask elements are 0 or 1/keep: one bernoulli draw per element, keep-probability `keep`
        mask = torch.empty_like(inputs).bernoulli_(self.keep, generator=self.generator).div_(self.keep)
        return inputs * mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


# Each canonical activation, configured to its canonical parameters (None: identity, no module).
# `channel_dim` only matters for softmax (over channels: dim 1 in a channels-first tensor).
ACTIVATION_MODULES: dict[str, Callable[[Component, int], nn.Module | None]] = {
    "linear": lambda component, dim: None,
    "relu": lambda component, dim: nn.ReLU(),
    "sigmoid": lambda component, dim: nn.Sigmoid(),
    "tanh": lambda component, dim: nn.Tanh(),
    "leaky_relu": lambda component, dim: nn.LeakyReLU(negative_slope=component["negative_slope"]),
    "elu": lambda component, dim: nn.ELU(alpha=component["alpha"]),
    "gelu": lambda component, dim: nn.GELU(approximate="none"),  # exact x*Phi(x), erf form
    "softmax": lambda component, dim: nn.Softmax(dim=dim),
}
assert set(ACTIVATION_MODULES) == set(ACTIVATIONS), "every canonical activation needs a torch realization"


def activation_module(activation: Component, channel_dim: int = -1) -> nn.Module | None:
    """The torch module realizing a canonical activation, or None for 'linear'."""
    return ACTIVATION_MODULES[activation.name](activation, channel_dim)


class Permute(nn.Module):
    """Reorder axes (a view): converts between channels-last and channels-first."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.permute(self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


def torch_pad(paddings: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """F.pad's argument for per-axis (before, after) pads: the LAST axis comes first."""
    return tuple(value for before, after in reversed(paddings) for value in (before, after))


class Convolution(nn.Module):
    """conv1d/conv2d on channels-first input; weight (out, in, k...) is torch's layout.

    Symmetric padding goes to the convolution itself; asymmetric ('same' with an odd total)
    is an explicit F.pad first, zeros before/after per the canonical rule.
    """

    def __init__(
        self,
        rank: int,
        in_channels: int,
        filters: int,
        kernel_size: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        paddings: tuple[tuple[int, int], ...],
        use_bias: bool,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(filters, in_channels, *kernel_size))
        self.bias = nn.Parameter(torch.empty(filters)) if use_bias else None
        self.function = F.conv1d if rank == 1 else F.conv2d
        self.stride, self.dilation = strides, dilation
        symmetric = all(before == after for before, after in paddings)
        self.padding = tuple(before for before, _ in paddings) if symmetric else 0
        self.pad = None if symmetric else torch_pad(paddings)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            inputs = F.pad(inputs, self.pad)
        return self.function(inputs, self.weight, self.bias, self.stride, self.padding, self.dilation)


POOLS: dict[tuple[str, int], Callable[..., torch.Tensor]] = {
    ("max", 1): F.max_pool1d,
    ("max", 2): F.max_pool2d,
    ("avg", 1): F.avg_pool1d,
    ("avg", 2): F.avg_pool2d,
}


class Pool(nn.Module):
    """max/avg pooling on channels-first input with the canonical padding.

    Padded max: pad with -inf (a padded cell never wins). Padded avg: pad with zeros, average
    over the full window, then multiply by window_size / real_cells (a constant per output
    position computed once), which is the mean over the real cells only.
    """

    def __init__(
        self,
        mode: str,
        rank: int,
        pool_size: tuple[int, ...],
        strides: tuple[int, ...],
        paddings: tuple[tuple[int, int], ...],
        spatial: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.function = POOLS[(mode, rank)]
        self.mode, self.pool_size, self.stride = mode, pool_size, strides
        padded = any(before or after for before, after in paddings)
        pad = torch_pad(paddings)
        self.pad = pad if padded else None
        self.scale: torch.Tensor | None
        if mode == "avg" and padded:
            real = F.pad(torch.ones(1, 1, *spatial, dtype=torch.float64), pad)
            fraction = self.function(real, pool_size, strides)  # real cells / window size, per output position
            self.register_buffer("scale", (1.0 / fraction).to(torch.float32))
        else:
            self.scale = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            inputs = F.pad(inputs, self.pad, value=float("-inf") if self.mode == "max" else 0.0)
        outputs = self.function(inputs, self.pool_size, self.stride)
        return outputs * self.scale if self.scale is not None else outputs


class GlobalPool(nn.Module):
    """Mean or max over the position axes `dims` -> (N, C)."""

    def __init__(self, mode: str, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.mode, self.dims = mode, dims

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.mean(dim=self.dims) if self.mode == "avg" else inputs.amax(dim=self.dims)


class Reshape(nn.Module):
    """Row-major reshape of a channels-last tensor; target () means flatten."""

    def __init__(self, target: tuple[int, ...]) -> None:
        super().__init__()
        self.target = target

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.reshape(inputs.shape[0], *(self.target or (-1,)))


class BatchNorm(nn.Module):
    """Canonical batch_norm on (N, C) or channels-first (N, C, ...) input.

    F.batch_norm normalizes with the biased batch variance and updates running_var with the
    unbiased one, as the canonical definition says; its momentum is the weight of the NEW
    batch statistic, i.e. 1 - canonical momentum.
    """

    def __init__(self, channels: int, momentum: float, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        # running statistics are state, not trained: Parameters with requires_grad False rather than
        # buffers, so module.to(device) moves them in place and the canonical slots keep pointing at them
        self.running_mean = nn.Parameter(torch.zeros(channels), requires_grad=False)
        self.running_var = nn.Parameter(torch.ones(channels), requires_grad=False)
        self.torch_momentum = 1.0 - momentum
        self.eps = eps

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            inputs,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.torch_momentum,
            self.eps,
        )


class LayerNorm(nn.Module):
    """Canonical layer_norm over the last axis (biased variance)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.shape, self.eps = (channels,), eps

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(inputs, self.shape, self.weight, self.bias, self.eps)


RECURRENT_MODULES = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Recurrent(nn.Module):
    """simple_rnn / lstm / gru over (N, T, C) via torch's fused nn.RNN / nn.LSTM / nn.GRU (one layer).

    Canonical simple_rnn and lstm have ONE bias: it is loaded into bias_ih, and bias_hh is held
    at zero and frozen (requires_grad False), so the effective bias gets one gradient, not two.
    """

    def __init__(self, kind: str, input_size: int, units: int, bidirectional: bool, return_sequences: bool) -> None:
        super().__init__()
        extra = {"nonlinearity": "tanh"} if kind == "simple_rnn" else {}
        self.rnn = RECURRENT_MODULES[kind](input_size, units, batch_first=True, bidirectional=bidirectional, **extra)
        self.kind, self.bidirectional, self.return_sequences = kind, bidirectional, return_sequences
        if kind != "gru":
            with torch.no_grad():
                for name, parameter in self.rnn.named_parameters():
                    if name.startswith("bias_hh"):
                        parameter.zero_()
                        parameter.requires_grad_(False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, state = self.rnn(inputs)
        if self.return_sequences:
            return outputs  # (N, T, D*h): [forward, backward] per step
        final = state[0] if self.kind == "lstm" else state  # (D, N, h): each direction's last state
        return torch.cat((final[0], final[1]), dim=-1) if self.bidirectional else final[0]


class Embedding(nn.Module):
    """Rows of a (vocabulary, dim) table picked by integer ids (given as floats by the data pipeline)."""

    def __init__(self, vocabulary: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocabulary, dim))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.embedding(inputs.long(), self.weight)


class PositionEmbedding(nn.Module):
    """y = x + embeddings, a learned tensor of one sample's (channels-last) shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*shape))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs + self.weight


def _project(inputs: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """inputs @ kernel + bias with a canonical (in, out) kernel."""
    return F.linear(inputs, kernel.t(), bias)


class MultiHeadAttention(nn.Module):
    """Canonical multi-head attention; kernels (in, heads*dim) in canonical layout, head j = columns j*dim..

    torch's nn.MultiheadAttention ties the head width to embed_dim/heads and packs q/k/v;
    the canonical layer allows any key_dim, so this module projects itself and calls
    F.scaled_dot_product_attention (scale 1/sqrt(key_dim); is_causal masks keys after the query).
    """

    def __init__(
        self,
        query_channels: int,
        context_channels: int,
        heads: int,
        key_dim: int,
        value_dim: int,
        output_dim: int,
        use_bias: bool,
        causal: bool,
    ) -> None:
        super().__init__()
        self.heads, self.key_dim, self.value_dim, self.causal = heads, key_dim, value_dim, causal
        # the tensors the spec declares (harness.spec.layers_sequence), in its order; bias attributes stay None
        # without use_bias, so forward passes them to _project either way
        for tensor in attention_tensors(query_channels, context_channels, heads, key_dim, value_dim, output_dim, True):
            if tensor.role == "kernel":
                setattr(self, tensor.name, nn.Parameter(torch.empty(tensor.shape)))
            else:
                setattr(self, tensor.name, nn.Parameter(torch.zeros(tensor.shape)) if use_bias else None)

    def _tensor(self, name: str) -> torch.Tensor | None:
        """A projection tensor by the spec's name (set with setattr above; None: a bias without use_bias)."""
        tensor = getattr(self, name)
        assert tensor is None or isinstance(tensor, torch.Tensor)
        return tensor

    def _kernel(self, name: str) -> torch.Tensor:
        kernel = self._tensor(name)
        assert kernel is not None
        return kernel

    def _heads(self, inputs: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, dim: int) -> torch.Tensor:
        batch, steps, _ = inputs.shape
        return _project(inputs, kernel, bias).view(batch, steps, self.heads, dim).transpose(1, 2)  # (N, H, T, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = query if context is None else context
        q = self._heads(query, self._kernel("query_kernel"), self._tensor("query_bias"), self.key_dim)
        k = self._heads(context, self._kernel("key_kernel"), self._tensor("key_bias"), self.key_dim)
        v = self._heads(context, self._kernel("value_kernel"), self._tensor("value_bias"), self.value_dim)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (N, H, Tq, dv)
        batch, steps = query.shape[0], query.shape[1]
        merged = attended.transpose(1, 2).reshape(batch, steps, self.heads * self.value_dim)
        return _project(merged, self._kernel("output_kernel"), self._tensor("output_bias"))


class TransformerEncoder(nn.Module):
    """Canonical transformer_encoder block (post- or pre-norm) on (N, T, d); see harness.spec.layers_sequence."""

    def __init__(
        self,
        width: int,
        heads: int,
        key_dim: int,
        ffn_units: int,
        activation: Component,
        dropout: float,
        norm: str,
        eps: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(width, width, heads, key_dim, key_dim, width, True, False)
        self.norm1, self.norm2 = LayerNorm(width, eps), LayerNorm(width, eps)
        self.ffn1_kernel = nn.Parameter(torch.empty(width, ffn_units))
        self.ffn1_bias = nn.Parameter(torch.zeros(ffn_units))
        self.ffn2_kernel = nn.Parameter(torch.empty(ffn_units, width))
        self.ffn2_bias = nn.Parameter(torch.zeros(width))
        self.activation = activation_module(activation) or nn.Identity()
        self.dropout = InvertedDropout(dropout, generator)
        self.pre = norm == "pre"

    def feed_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(_project(inputs, self.ffn1_kernel, self.ffn1_bias))
        return _project(hidden, self.ffn2_kernel, self.ffn2_bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.pre:
            hidden = inputs + self.dropout(self.attention(self.norm1(inputs)))
            return hidden + self.dropout(self.feed_forward(self.norm2(hidden)))
        hidden = self.norm1(inputs + self.dropout(self.attention(inputs)))
        return self.norm2(hidden + self.dropout(self.feed_forward(hidden)))


class Add(nn.Module):
    """Element-wise sum of the inputs."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = inputs[0]
        for tensor in inputs[1:]:
            total = total + tensor
        return total


class Concatenate(nn.Module):
    """Join the inputs along the channel axis (`dim`: -1 channels-last, 1 channels-first)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)


class MultiInput(nn.Module):
    """Bring each input to the layout a multi-input module needs (a permutation or None), then apply it."""

    def __init__(self, module: nn.Module, permutations: Sequence[tuple[int, ...] | None]) -> None:
        super().__init__()
        self.module = module
        self.permutations = list(permutations)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*[x if p is None else x.permute(p) for x, p in zip(inputs, self.permutations)])


class Graph(nn.Module):
    """A DAG of modules: node i reads `sources[i]` (-1: the model input) and the model returns `outputs`.

    One output: a tensor; several: a tuple in output order.
    """

    def __init__(self, nodes: Sequence[nn.Module], sources: Sequence[tuple[int, ...]], outputs: Sequence[int]) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(nodes)
        self.sources = [tuple(s + 1 for s in node_sources) for node_sources in sources]  # value 0 is the input
        self.outputs = [index + 1 for index in outputs]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = [inputs]
        for node, sources in zip(self.nodes, self.sources):
            values.append(node(*[values[s] for s in sources]))
        if len(self.outputs) == 1:
            return values[self.outputs[0]]
        return tuple(values[i] for i in self.outputs)
