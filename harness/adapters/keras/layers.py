"""Canonical layers as Keras layers written with `keras.ops`, where Keras' built-ins differ from the spec.

Keras is channels-last like the canonical layout, and its kernels are (k..., in, out) like the
canonical ones, so no tensor here is transposed. What the built-ins would get wrong:
    conv        integer padding (zeros on both sides) has no Keras padding mode: pad, then 'valid'
    batch_norm  Keras' moving variance uses the BIASED batch variance, momentum 0.99, eps 1e-3;
                canonical: UNBIASED (n/(n-1)) for the moving update, momentum 0.9, eps 1e-5
    layer_norm  Keras' default eps is 1e-3 (canonical 1e-5); written out to fix the formula
    attention   Keras' MultiHeadAttention keeps (C, H, dk) kernels; canonical (C, H*dk), head j = columns j*dk..
Every layer creates its tensors with zeros (or ones): the harness loads the shared initial
weights, or `network.initialize_native` draws them with Keras initializers afterwards.
Recurrent layers are Keras' own SimpleRNN / LSTM / GRU (configured in realize.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

from harness.spec.layer_types import TensorSpec
from harness.spec.layers_sequence import attention_tensors


class Convolution(keras.layers.Layer):
    """conv1d / conv2d on channels-last input: explicit zero padding (before, after) per axis, then a valid
    cross-correlation; kernel (k..., in, filters), bias (filters,), then the activation."""

    def __init__(
        self,
        filters: int,
        kernel_size: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        paddings: tuple[tuple[int, int], ...],
        use_bias: bool,
        activation: Callable | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.dilation = filters, kernel_size, strides, dilation
        self.paddings, self.use_bias, self.activation = paddings, use_bias, activation

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, input_shape[-1], self.filters), initializer="zeros", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias") if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        if any(before or after for before, after in self.paddings):
            inputs = ops.pad(inputs, [(0, 0), *self.paddings, (0, 0)])
        outputs = ops.conv(inputs, self.kernel, strides=self.strides, padding="valid", dilation_rate=self.dilation)
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        lengths = []
        for length, k, s, d, (before, after) in zip(
            input_shape[1:-1], self.kernel_size, self.strides, self.dilation, self.paddings
        ):
            lengths.append(None if length is None else (length + before + after - ((k - 1) * d + 1)) // s + 1)
        return (input_shape[0], *lengths, self.filters)


class Pool(keras.layers.Layer):
    """max / avg pooling, padding 'valid' or 'same'. TensorFlow's 'SAME' pooling is the canonical rule:
    the extra cell goes at the end, max never picks padding, avg divides by the count of REAL cells."""

    def __init__(
        self, mode: str, pool_size: tuple[int, ...], strides: tuple[int, ...], padding: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mode, self.pool_size, self.strides, self.padding = mode, pool_size, strides, padding

    def call(self, inputs: Any) -> Any:
        function = ops.max_pool if self.mode == "max" else ops.average_pool
        return function(inputs, self.pool_size, strides=self.strides, padding=self.padding)


class GlobalPool(keras.layers.Layer):
    """Mean or maximum over every position axis: (N, positions..., C) -> (N, C)."""

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        axes = tuple(range(1, len(inputs.shape) - 1))
        return ops.mean(inputs, axis=axes) if self.mode == "avg" else ops.max(inputs, axis=axes)


class BatchNorm(keras.layers.Layer):
    """Canonical batch_norm over every axis but the last (harness.spec.layers.BATCH_NORM_DOC).

    Training: normalize with the batch mean and BIASED variance; moving_mean = m*moving_mean +
    (1-m)*mean, moving_variance = m*moving_variance + (1-m)*var*n/(n-1) (UNBIASED, n values per
    channel). Evaluation: normalize with the moving statistics. The moving statistics are
    non-trainable Keras variables (state), written with assign in training mode.
    """

    def __init__(self, momentum: float, eps: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum, self.eps = momentum, eps

    def build(self, input_shape: tuple) -> None:
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=channels, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(
            shape=channels, initializer="ones", name="moving_variance", trainable=False
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return self.gamma * (inputs - self.moving_mean) * ops.rsqrt(self.moving_variance + self.eps) + self.beta
        axes = tuple(range(len(inputs.shape) - 1))
        mean = ops.mean(inputs, axis=axes)
        variance = ops.mean(ops.square(inputs - mean), axis=axes)  # biased: what the batch is normalized with
        count = ops.cast(ops.size(inputs), inputs.dtype) / inputs.shape[-1]  # n values per channel
        unbiased = ops.stop_gradient(variance * count / (count - 1.0))
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * ops.stop_gradient(mean))
        self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * unbiased)
        return self.gamma * (inputs - mean) * ops.rsqrt(variance + self.eps) + self.beta


def normalize_last_axis(inputs: Any, gamma: Any, beta: Any, eps: float) -> Any:
    """gamma*(x - mean)/sqrt(var + eps) + beta per sample over the last axis, biased variance."""
    mean = ops.mean(inputs, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(inputs - mean), axis=-1, keepdims=True)
    return gamma * (inputs - mean) * ops.rsqrt(variance + eps) + beta


class LayerNorm(keras.layers.Layer):
    """Canonical layer_norm over the last axis (biased variance, eps as given: canonical 1e-5)."""

    def __init__(self, eps: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = eps

    def build(self, input_shape: tuple) -> None:
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

    def call(self, inputs: Any) -> Any:
        return normalize_last_axis(inputs, self.gamma, self.beta, self.eps)


class Embedding(keras.layers.Layer):
    """Rows of a (vocabulary, dim) table picked by integer ids (the data pipeline gives them as floats)."""

    def __init__(self, vocabulary: int, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocabulary, self.dim = vocabulary, dim

    def build(self, input_shape: tuple) -> None:
        self.embeddings = self.add_weight(shape=(self.vocabulary, self.dim), initializer="zeros", name="embeddings")

    def call(self, inputs: Any) -> Any:
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.dim)


class PositionEmbedding(keras.layers.Layer):
    """y = x + embeddings, a learned tensor of one sample's (channels-last) shape."""

    def build(self, input_shape: tuple) -> None:
        self.embeddings = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", name="embeddings")

    def call(self, inputs: Any) -> Any:
        return inputs + self.embeddings


def attend(
    layer: keras.layers.Layer,
    query: Any,
    context: Any,
    heads: int,
    key_dim: int,
    value_dim: int,
    causal: bool,
    prefix: str = "",
) -> Any:
    """Canonical multi-head attention with `layer`'s {prefix}{query,key,value,output}_{kernel,bias} attributes.

    query (N, Tq, Cq), context (N, Tk, Ck) -> (N, Tq, output_dim); head j uses columns [j*dk, (j+1)*dk).
    """

    def project(inputs: Any, name: str) -> Any:
        bias = getattr(layer, f"{prefix}{name}_bias")
        outputs = ops.matmul(inputs, getattr(layer, f"{prefix}{name}_kernel"))
        return outputs + bias if bias is not None else outputs

    def split(inputs: Any, dim: int) -> Any:
        steps = inputs.shape[1]
        return ops.transpose(ops.reshape(inputs, (-1, steps, heads, dim)), (0, 2, 1, 3))  # (N, H, T, dim)

    q = split(project(query, "query"), key_dim)
    k = split(project(context, "key"), key_dim)
    v = split(project(context, "value"), value_dim)
    scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(key_dim)  # (N, H, Tq, Tk)
    if causal:
        query_steps, key_steps = q.shape[2], k.shape[2]
        allowed = ops.expand_dims(ops.arange(query_steps), 1) >= ops.expand_dims(
            ops.arange(key_steps), 0
        )  # key j <= query i
        scores = ops.where(allowed, scores, ops.full_like(scores, -math.inf))
    weights = ops.softmax(scores, axis=-1)
    attended = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # (N, Tq, H, dv)
    merged = ops.reshape(attended, (-1, query.shape[1], heads * value_dim))
    return project(merged, "output")


def _add_projections(layer: keras.layers.Layer, tensors: Sequence[TensorSpec], use_bias: bool) -> None:
    """Add an attention block's projection weights (harness.spec.layers_sequence.attention_tensors, declared
    with biases) to `layer` as attributes; bias attributes stay None without use_bias, so call passes them
    to the projection either way."""
    for tensor in tensors:
        if tensor.role == "kernel" or use_bias:
            weight = layer.add_weight(shape=tensor.shape, initializer="zeros", name=tensor.name)
            setattr(layer, tensor.name, weight)
        else:
            setattr(layer, tensor.name, None)


class MultiHeadAttention(keras.layers.Layer):
    """Canonical multi-head attention; one input (self-attention) or [query, context]."""

    def __init__(
        self, heads: int, key_dim: int, value_dim: int, output_dim: int, use_bias: bool, causal: bool, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.value_dim, self.output_dim = heads, key_dim, value_dim, output_dim
        self.use_bias, self.causal = use_bias, causal

    def build(self, input_shape: Any) -> None:
        query, context = (
            (input_shape[0], input_shape[-1]) if isinstance(input_shape, list) else (input_shape, input_shape)
        )
        widths = (self.heads, self.key_dim, self.value_dim, self.output_dim)
        _add_projections(self, attention_tensors(query[-1], context[-1], *widths, True), self.use_bias)

    def call(self, inputs: Any) -> Any:
        query, context = (inputs[0], inputs[-1]) if isinstance(inputs, (list, tuple)) else (inputs, inputs)
        return attend(self, query, context, self.heads, self.key_dim, self.value_dim, self.causal)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        query = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (*query[:-1], self.output_dim)


class TransformerEncoder(keras.layers.Layer):
    """Canonical transformer_encoder block on (N, T, d) (harness.spec.layers_sequence):
    post: h = LN1(x + D(MHA x)); y = LN2(h + D(FFN h))   pre: h = x + D(MHA(LN1 x)); y = h + D(FFN(LN2 h)).
    D is inverted dropout (Keras' Dropout, seeded), active in training only."""

    def __init__(
        self,
        heads: int,
        key_dim: int,
        ffn_units: int,
        activation: Callable | None,
        dropout: float,
        norm: str,
        eps: float,
        seed: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.ffn_units, self.activation = heads, key_dim, ffn_units, activation
        self.pre, self.eps = norm == "pre", eps
        self.dropout = keras.layers.Dropout(dropout, seed=seed) if dropout > 0 else None

    def build(self, input_shape: tuple) -> None:
        width = input_shape[-1]
        _add_projections(
            self, attention_tensors(width, width, self.heads, self.key_dim, self.key_dim, width, True), True
        )
        for i in (1, 2):
            setattr(self, f"norm{i}_gamma", self.add_weight(shape=(width,), initializer="ones", name=f"norm{i}_gamma"))
            setattr(self, f"norm{i}_beta", self.add_weight(shape=(width,), initializer="zeros", name=f"norm{i}_beta"))
        self.ffn1_kernel = self.add_weight(shape=(width, self.ffn_units), initializer="zeros", name="ffn1_kernel")
        self.ffn1_bias = self.add_weight(shape=(self.ffn_units,), initializer="zeros", name="ffn1_bias")
        self.ffn2_kernel = self.add_weight(shape=(self.ffn_units, width), initializer="zeros", name="ffn2_kernel")
        self.ffn2_bias = self.add_weight(shape=(width,), initializer="zeros", name="ffn2_bias")

    def _drop(self, inputs: Any, training: bool | None) -> Any:
        return self.dropout(inputs, training=training) if self.dropout is not None else inputs

    def _norm(self, inputs: Any, index: int) -> Any:
        return normalize_last_axis(
            inputs, getattr(self, f"norm{index}_gamma"), getattr(self, f"norm{index}_beta"), self.eps
        )

    def _feed_forward(self, inputs: Any) -> Any:
        hidden = ops.matmul(inputs, self.ffn1_kernel) + self.ffn1_bias
        hidden = self.activation(hidden) if self.activation is not None else hidden
        return ops.matmul(hidden, self.ffn2_kernel) + self.ffn2_bias

    def _attention(self, inputs: Any) -> Any:
        return attend(self, inputs, inputs, self.heads, self.key_dim, self.key_dim, False)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if self.pre:
            hidden = inputs + self._drop(self._attention(self._norm(inputs, 1)), training)
            return hidden + self._drop(self._feed_forward(self._norm(hidden, 2)), training)
        hidden = self._norm(inputs + self._drop(self._attention(inputs), training), 1)
        return self._norm(hidden + self._drop(self._feed_forward(hidden), training), 2)


class Reshape(keras.layers.Layer):
    """Row-major reshape of each sample to `target` (fully resolved, no -1): channels-last, like the spec."""

    def __init__(self, target: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = tuple(target)

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, *self.target))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self.target)
