"""A Python plug-in model whose torch parameters are paired with its Keras twin's variables (model.names):
shared init loads the same weights into both, `harness parity` checks it like a built-in model, a twin that
computes something else fails parity, and by_shape pairing refuses tensors that share a shape."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("torch")

from harness.adapters.loop import shared_weights
from harness.data import load_dataset
from harness.errors import SpecError
from harness.parity import parity_for_suite
from harness.suite import load_suite

pytestmark = pytest.mark.keras

# A residual MLP in both frameworks; `block` is square (8, 8), so only the layout rule (by module type, not by
# shape) can tell that torch's (out, in) weight must be transposed. make_keras_tanh is a twin that is not one.
NETS = """
import keras
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        self.stem = nn.Linear(inputs, hidden)
        self.block = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(h + torch.relu(self.block(h)))


def make_torch(input_shape, output_units, hidden=8):
    return Residual(input_shape[0], hidden, output_units)


def make_keras(input_shape, output_units, hidden=8, activation="relu"):
    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Dense(hidden, activation="relu", name="stem")(inputs)
    h = keras.layers.Add()([h, keras.layers.Dense(hidden, activation=activation, name="block")(h)])
    return keras.Model(inputs, keras.layers.Dense(output_units, name="head")(h))


def make_keras_tanh(input_shape, output_units, hidden=8):
    return make_keras(input_shape, output_units, hidden, activation="tanh")


def make_torch_small(input_shape, output_units):
    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, output_units))


def make_keras_small(input_shape, output_units):
    inputs = keras.Input(shape=input_shape)
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(output_units, name="out")(h))
"""

NAMES = (
    "{stem.weight: stem/kernel, stem.bias: stem/bias, block.weight: block/kernel, block.bias: block/bias, "
    "head.weight: head/kernel, head.bias: head/bias}"
)

SUITE = """
name: paired_python_model
dataset: {{name: iris, validation: 0.2}}
model: {{mlp: {{hidden: [8]}}}}
loss: cross_entropy
optimizer: {{name: sgd, lr: 0.1}}
initializer: he_normal
training: {{epochs: 1, batch_size: 16}}
backends: [torch, keras]
grid:
  model:
    mine: {{python: {{torch: "paired_nets:{torch}", keras: "paired_nets:{keras}"}}, names: {names}}}
"""


def write(folder: Path, names: str = NAMES, torch: str = "make_torch", keras: str = "make_keras") -> Path:
    (folder / "paired_nets.py").write_text(textwrap.dedent(NETS))
    suite = folder / "suite.yaml"
    suite.write_text(SUITE.format(names=names, torch=torch, keras=keras))
    return suite


@pytest.fixture(autouse=True)
def forget_module() -> Iterator[None]:
    yield
    sys.modules.pop("paired_nets", None)


def test_a_paired_python_model_starts_from_shared_weights_and_passes_parity(
    tmp_path: Path, torch_adapter: object, keras_adapter: object
) -> None:
    suite = load_suite(write(tmp_path))
    spec = suite.trials[0].spec
    assert spec.init_mode == "shared" and spec.model.paired  # shared is the default once paired
    data = load_dataset(spec.dataset)
    loaded = {}
    for name, adapter in (("torch", torch_adapter), ("keras", keras_adapter)):
        model = adapter.build(spec, data.info)  # type: ignore[attr-defined]
        model.set_weights(shared_weights(spec, model, data))
        loaded[name] = model.get_weights()
    assert list(loaded["torch"]) == [torch_name for torch_name, _ in spec.model.names]
    for key, value in loaded["torch"].items():
        np.testing.assert_array_equal(value, loaded["keras"][key], err_msg=key)
    assert loaded["keras"]["block.weight"].shape == (8, 8) and np.abs(loaded["keras"]["block.weight"]).sum() > 0
    [result] = parity_for_suite(suite, steps=5)
    assert result.passed, result.message()


def test_a_twin_that_computes_something_else_fails_parity_saying_where(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, keras="make_keras_tanh"))
    [result] = parity_for_suite(suite, steps=5)
    assert not result.passed
    assert "before training, the outputs on the first batch differ" in result.message()


@pytest.mark.parametrize(
    ("names", "torch", "keras", "pattern"),
    [
        (
            "by_shape",
            "make_torch",
            "make_keras",
            r"by_shape cannot pair these tensors.*\(8,\): torch stem\.bias, block\.bias / keras stem/bias, block/bias",
        ),
        (
            "{stem.weight: block/kernel}",
            "make_torch",
            "make_keras",
            r"torch stem\.weight has shape \(4, 8\).*Keras block/kernel has \(8, 8\)",
        ),
        (
            "{0.weight: hidden/kernel, 0.bias: hidden/bias}",
            "make_torch_small",
            "make_keras_small",
            r"2\.weight.*not paired",
        ),
    ],
    ids=["ambiguous-by-shape", "wrong-shape", "unpaired"],
)
def test_a_pairing_that_cannot_hold_is_refused(
    tmp_path: Path, names: str, torch: str, keras: str, pattern: str
) -> None:
    with pytest.raises(SpecError, match=pattern) as caught:
        load_suite(write(tmp_path, names=names, torch=torch, keras=keras))
    assert caught.value.exit_code == 2


def test_by_shape_pairs_tensors_of_distinct_shapes(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, names="by_shape", torch="make_torch_small", keras="make_keras_small"))
    assert suite.trials[0].spec.model.names == (
        ("0.weight", "hidden/kernel"),
        ("0.bias", "hidden/bias"),
        ("2.weight", "out/kernel"),
        ("2.bias", "out/bias"),
    )
