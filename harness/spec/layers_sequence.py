"""Canonical sequence layers: recurrent cells, embeddings, attention, the transformer encoder block.

Sequences are (time, channels), no batch axis. sigma = logistic sigmoid, * = element-wise.

Recurrent layers (input (T, C), h units, zero initial state, one direction runs t = 1..T):
    simple_rnn  h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
                kernel (C, h), recurrent_kernel (h, h), bias (h,)
    lstm        [i, f, c~, o] = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias, split in 4 blocks of h
                columns in the gate order i, f, c, o (input, forget, candidate, output);
                i, f, o = sigma(.), c~ = tanh(.); c_t = f*c_{t-1} + i*c~; h_t = o*tanh(c_t)
                kernel (C, 4h), recurrent_kernel (h, 4h), ONE bias (4h,); no forget-bias offset
    gru         the reset-after form (PyTorch's GRU, Keras' reset_after=True), gate order z, r, n
                (update, reset, candidate) in blocks of h columns:
                [xz, xr, xn] = x_t @ kernel + bias[0];  [hz, hr, hn] = h_{t-1} @ recurrent_kernel + bias[1]
                z = sigma(xz + hz); r = sigma(xr + hr); n = tanh(xn + r*hn); h_t = z*h_{t-1} + (1-z)*n
                kernel (C, 3h), recurrent_kernel (h, 3h), bias (2, 3h): row 0 input bias, row 1 recurrent bias
    return_sequences: output (T, h*D) holding h_t for every t, else (h*D,) holding the final state.
    bidirectional (D = 2): a second, independent set of tensors ('backward_' prefix; the first set is
    'forward_') runs over t = T..1; at each position the output is [forward h_t, backward h_t]
    (concatenated on channels); the final output is [forward h_T, backward h_1] (each direction's last state).
    Tensors drawn: kernel by the layer's kernel_initializer (default: the suite's initializer),
    recurrent_kernel by its recurrent_initializer (default orthogonal over the whole (h, G*h)
    matrix), biases 0 (under fan_in_uniform U(+-1/sqrt(h)), PyTorch's RNN rule). PyTorch's own
    default draws EVERY recurrent tensor U(+-1/sqrt(h)): fan_in_uniform with both kernel
    initializers {name: uniform, limit: 1/sqrt(h)}.

Attention (Vaswani et al. 2017), heads H, key_dim dk, value_dim dv:
    Q = query @ query_kernel + query_bias        (Tq, H*dk); head j is columns [j*dk, (j+1)*dk)
    K = context @ key_kernel + key_bias          (Tk, H*dk)
    V = context @ value_kernel + value_bias      (Tk, H*dv)
    head_j = softmax_over_keys(Q_j K_j^T / sqrt(dk)) V_j      (causal: key positions > query position masked)
    y = [head_0, ..., head_{H-1}] @ output_kernel + output_bias    (Tq, output_dim)
    kernels (Cq, H*dk), (Ck, H*dk), (Ck, H*dv), (H*dv, output_dim); context = query for self-attention.

transformer_encoder, input (T, d), FFN(z) = activation(z @ ffn1_kernel + ffn1_bias) @ ffn2_kernel + ffn2_bias,
LN = layer_norm over channels with eps, D = inverted dropout at `dropout` (training only):
    post (Vaswani et al.; PyTorch's default): h = LN1(x + D(MHA(x)));   y = LN2(h + D(FFN(h)))
    pre  (Xiong et al. 2020):                 h = x + D(MHA(LN1(x)));   y = h + D(FFN(LN2(h)))
    MHA is self-attention with key_dim = value_dim (default d / heads) and output_dim d.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import SpecError
from harness.spec.layer_types import LayerDef, LayerSpec, Shape, TensorSpec
from harness.spec.params import Parameter

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
EMBEDDING_INITIALIZER = {"name": "uniform", "limit": 0.05}  # Keras' Embedding default: small values, any vocabulary


def _expect_sequence(kind: str, shape: Shape, where: str, role: str = "input") -> None:
    if len(shape) != 2:
        hint = (
            " A vector input needs a channel axis: use the dataset's sequence shape (mnist1d: shape: sequence) "
            f"or put {{reshape: {{target_shape: [{shape[0]}, 1]}}}} before it."
            if len(shape) == 1
            else " Put a reshape layer before it to make it (time, channels)."
        )
        raise SpecError(f"{where}: {kind} expects a (time, channels) {role}, got shape {shape}.{hint}")


def recurrent_tensors(kind: str, channels: int, p: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """The canonical tensors of a recurrent layer, in draw order (forward set, then backward set)."""
    units, gates = p["units"], GATES[kind]
    bias_shape = (2, gates * units) if kind == "gru" else (gates * units,)
    prefixes = ("forward_", "backward_") if p["bidirectional"] else ("",)
    tensors = []
    for prefix in prefixes:
        tensors += [
            TensorSpec(f"{prefix}kernel", (channels, gates * units), "kernel", initializer=p["kernel_initializer"]),
            TensorSpec(
                f"{prefix}recurrent_kernel",
                (units, gates * units),
                "recurrent_kernel",
                initializer=p["recurrent_initializer"],
            ),
            TensorSpec(f"{prefix}bias", bias_shape, "bias", fan_in=units),
        ]
    return tuple(tensors)


def _recurrent_infer(kind: str):
    def infer(shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str) -> tuple[Shape, tuple[TensorSpec, ...]]:
        (shape,) = shapes
        _expect_sequence(kind, shape, where)
        width = p["units"] * (2 if p["bidirectional"] else 1)
        output = (shape[0], width) if p["return_sequences"] else (width,)
        return output, recurrent_tensors(kind, shape[1], p)

    return infer


def _recurrent_def(kind: str, meaning: str) -> LayerDef:
    return LayerDef(
        kind,
        meaning,
        {
            "units": Parameter("integer", None, "> 0"),
            "return_sequences": Parameter("bool", False),
            "bidirectional": Parameter("bool", False),
            "recurrent_initializer": Parameter("initializer", "orthogonal"),
            "kernel_initializer": Parameter("initializer"),  # None: the suite's initializer
        },
        _recurrent_infer(kind),
        required=("units",),
    )


def _infer_embedding(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    table = TensorSpec("embeddings", (p["vocabulary"], p["dim"]), "embedding", initializer=p["initializer"])
    return (*shape, p["dim"]), (table,)


def _infer_position(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    if len(shape) < 2:
        raise SpecError(f"{where}: position_embedding expects a (positions..., channels) input, got shape {shape}.")
    return shape, (TensorSpec("embeddings", shape, "embedding", initializer=p["initializer"]),)


def attention_tensors(
    query_channels: int,
    context_channels: int,
    heads: int,
    key_dim: int,
    value_dim: int,
    output_dim: int,
    use_bias: bool,
) -> list[TensorSpec]:
    """query/key/value/output kernels (and biases) of multi-head attention, in draw order."""
    tensors = []
    for name, fan_in, width in (
        ("query", query_channels, heads * key_dim),
        ("key", context_channels, heads * key_dim),
        ("value", context_channels, heads * value_dim),
        ("output", heads * value_dim, output_dim),
    ):
        tensors.append(TensorSpec(f"{name}_kernel", (fan_in, width), "kernel"))
        if use_bias:
            tensors.append(TensorSpec(f"{name}_bias", (width,), "bias", fan_in=fan_in))
    return tensors


def attention_widths(query_channels: int, p: Mapping[str, Any] | LayerSpec) -> tuple[int, int]:
    """(value_dim, output_dim) of a multi_head_attention layer: given, or key_dim and the query's channels;
    `p`: the layer's parameters (a mapping while planning, the resolved LayerSpec in the adapters)."""
    return p["value_dim"] or p["key_dim"], p["output_dim"] or query_channels


def _infer_attention(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    query = shapes[0]
    context = shapes[1] if len(shapes) > 1 else query
    _expect_sequence("multi_head_attention", query, where, "query")
    _expect_sequence("multi_head_attention", context, where, "context (key and value)")
    value_dim, output_dim = attention_widths(query[1], p)
    tensors = attention_tensors(query[1], context[1], p["heads"], p["key_dim"], value_dim, output_dim, p["use_bias"])
    return (query[0], output_dim), tuple(tensors)


def transformer_key_dim(width: int, p: Mapping[str, Any] | LayerSpec, where: str) -> int:
    """key_dim of a transformer_encoder block on channels `width` (given, or width / heads); `p`: the
    layer's parameters (a mapping while planning, the resolved LayerSpec in the adapters)."""
    if p["key_dim"] is not None:
        return p["key_dim"]
    if width % p["heads"]:
        raise SpecError(
            f"{where}: the input has {width} channels, not divisible by heads={p['heads']}, so key_dim cannot "
            "default to channels / heads. Set key_dim, or change heads or the width."
        )
    return width // p["heads"]


def _infer_transformer(
    shapes: tuple[Shape, ...], p: Mapping[str, Any], where: str
) -> tuple[Shape, tuple[TensorSpec, ...]]:
    (shape,) = shapes
    _expect_sequence("transformer_encoder", shape, where)
    width = shape[1]
    key_dim = transformer_key_dim(width, p, where)
    tensors = attention_tensors(width, width, p["heads"], key_dim, key_dim, width, True)
    tensors += [TensorSpec("norm1_gamma", (width,), "gamma"), TensorSpec("norm1_beta", (width,), "beta")]
    tensors += [
        TensorSpec("ffn1_kernel", (width, p["ffn_units"]), "kernel"),
        TensorSpec("ffn1_bias", (p["ffn_units"],), "bias", fan_in=width),
        TensorSpec("ffn2_kernel", (p["ffn_units"], width), "kernel"),
        TensorSpec("ffn2_bias", (width,), "bias", fan_in=p["ffn_units"]),
    ]
    tensors += [TensorSpec("norm2_gamma", (width,), "gamma"), TensorSpec("norm2_beta", (width,), "beta")]
    return shape, tuple(tensors)


SEQUENCE_LAYERS: dict[str, LayerDef] = {
    "simple_rnn": _recurrent_def(
        "simple_rnn", "h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias); (T, C) input"
    ),
    "lstm": _recurrent_def(
        "lstm", "LSTM, gate order i, f, c, o; kernel (C, 4h), recurrent_kernel (h, 4h), ONE bias (4h,)"
    ),
    "gru": _recurrent_def(
        "gru", "GRU, reset-after form, gate order z, r, n; kernel (C, 3h), recurrent_kernel (h, 3h), bias (2, 3h)"
    ),
    "embedding": LayerDef(
        "embedding",
        "integer token ids (any shape) -> rows of embeddings (vocabulary, dim); output (..., dim)",
        {
            "vocabulary": Parameter("integer", None, "> 0"),
            "dim": Parameter("integer", None, "> 0"),
            "initializer": Parameter("initializer", EMBEDDING_INITIALIZER),
        },
        _infer_embedding,
        required=("vocabulary", "dim"),
    ),
    "position_embedding": LayerDef(
        "position_embedding",
        "y = x + embeddings, a learned tensor of the input's shape (positions..., channels)",
        {"initializer": Parameter("initializer", EMBEDDING_INITIALIZER)},
        _infer_position,
    ),
    "multi_head_attention": LayerDef(
        "multi_head_attention",
        "scaled dot-product attention over heads; one input: self-attention; two: [query, context]",
        {
            "heads": Parameter("integer", None, "> 0"),
            "key_dim": Parameter("integer", None, "> 0"),
            "value_dim": Parameter("integer", None, "> 0", nullable=True),
            "output_dim": Parameter("integer", None, "> 0", nullable=True),
            "use_bias": Parameter("bool", True),
            "causal": Parameter("bool", False),
        },
        _infer_attention,
        required=("heads", "key_dim"),
        arity=(1, 2),
    ),
    "transformer_encoder": LayerDef(
        "transformer_encoder",
        "self-attention + feed-forward block with residuals and layer norms (norm post | pre) on (T, d)",
        {
            "heads": Parameter("integer", None, "> 0"),
            "ffn_units": Parameter("integer", None, "> 0"),
            "key_dim": Parameter("integer", None, "> 0", nullable=True),
            "activation": Parameter("activation", "relu"),
            "dropout": Parameter("number", 0.0, "[0, 1)"),
            "norm": Parameter("choice", "post", choices=("post", "pre")),
            "eps": Parameter("number", 1e-5, "> 0"),
        },
        _infer_transformer,
        required=("heads", "ffn_units"),
    ),
}
