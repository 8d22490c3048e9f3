"""A user's own model, in PyTorch and its Keras twin, for examples/my_model_vs_mlp.yaml.

The harness calls factory(input_shape, output_units, **args): the input shape of one sample without
the batch axis, and the output width the loss needs. Each returns a model that outputs logits (here:
regression outputs); the suite's loss, optimizer, regularizer, seeds and batches apply to it.

A residual MLP: x -> dense(h) -> relu -> [dense(h) -> relu, plus its input] -> dense(outputs).

The two are twins: the same layers under the same names (torch `stem.weight` is Keras `stem/kernel`), so
examples/my_model_vs_mlp.yaml pairs them with `names:` and the harness starts both from the same weights
and checks them with `harness parity`.
"""

from __future__ import annotations

from typing import Any


def make_torch(input_shape: tuple[int, ...], output_units: int, hidden: int = 32) -> Any:
    import torch
    from torch import nn

    class ResidualMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(input_shape[0], hidden)
            self.block = nn.Linear(hidden, hidden)
            self.head = nn.Linear(hidden, output_units)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.stem(x))
            h = h + torch.relu(self.block(h))
            return self.head(h)

    return ResidualMLP()


def make_keras(input_shape: tuple[int, ...], output_units: int, hidden: int = 32) -> Any:
    import keras

    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Dense(hidden, activation="relu", name="stem")(inputs)
    h = keras.layers.Add()([h, keras.layers.Dense(hidden, activation="relu", name="block")(h)])
    return keras.Model(inputs, keras.layers.Dense(output_units, name="head")(h))
