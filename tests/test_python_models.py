"""Models from the user's Python code (model.python): the spec and its hash, the suite checks (a backend
without a factory, an output that does not fit the loss, init_mode), training through the harness loop
with the suite's loss and optimizer, and the "parity not checked" label. Torch only: Keras' import alone
costs more than these tests together (examples/my_model_vs_mlp.yaml runs both backends in CI)."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.adapters import get_adapter
from harness.adapters.loop import train_trial
from harness.adapters.python_models import PARITY_NOT_CHECKED
from harness.analysis import Results
from harness.analysis.text import summary_rows
from harness.data import load_dataset
from harness.errors import SpecError
from harness.store import Store
from harness.suite import load_suite

NETS = """
import torch
from torch import nn

def make_torch(input_shape, output_units, hidden=8, extra=0):
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, output_units + extra))
"""

SUITE = """
name: python_model
dataset: {{name: iris, validation: 0.2}}
model: {{mlp: {{hidden: [8]}}}}
loss: cross_entropy
optimizer: {{name: adam, lr: 0.01}}
initializer: he_normal
training: {{epochs: 2, batch_size: 16}}
backends: [torch]
{extra}
grid:
  model:
    mine: {{python: {{torch: "user_nets:make_torch"}}, args: {args}}}
    mlp: {{mlp: {{hidden: [8]}}}}
"""


def write(folder: Path, extra: str = "", args: str = "{hidden: 8}", nets: str = NETS) -> Path:
    (folder / "user_nets.py").write_text(textwrap.dedent(nets))
    suite = folder / "suite.yaml"
    suite.write_text(SUITE.format(extra=extra, args=args))
    return suite


@pytest.fixture(autouse=True)
def forget_module() -> None:
    yield
    sys.modules.pop("user_nets", None)


def test_a_python_model_trains_with_the_suites_loss_and_optimizer_and_is_labelled(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path))
    mine = next(trial for trial in suite.trials if trial.arm == "mine")
    assert mine.spec.init_mode == "native" and dict(mine.spec.model.python) == {"torch": "user_nets:make_torch"}
    adapter = get_adapter("torch")
    data = load_dataset(mine.spec.dataset)
    model = adapter.build(mine.spec, data.info)
    assert sorted(model.get_weights()) == ["0.bias", "0.weight", "2.bias", "2.weight"]  # named parameters
    again = adapter.build(mine.spec, data.info).get_weights()
    for key, value in model.get_weights().items():  # the trial seed fixes the framework's own initial weights
        np.testing.assert_array_equal(value, again[key])
    with Store(tmp_path / "store") as store:
        for trial in suite.trials:
            result = train_trial(trial.spec, adapter, data)
            assert result.status == "ok" and result.final()["train_loss"] < result.metrics[0][2] * 2
            store.record(trial, result)
        results = Results(store.trials_frame(), store.metrics_frame(), arms=suite.arms, axes=(), name="python_model")
    rows = summary_rows(results).set_index("arm")
    assert rows.loc["mine", "parity"] == PARITY_NOT_CHECKED and rows.loc["mlp", "parity"] == ""


def test_the_hash_follows_the_models_source_not_its_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, moved = load_suite(write(tmp_path / "a")), load_suite(write(tmp_path / "b"))
    assert [t.hash for t in first.trials] == [t.hash for t in moved.trials]
    sys.modules.pop("user_nets", None)
    edited = load_suite(write(tmp_path / "a", nets=NETS + "\n# tuned\n"))
    changed = {t.arm for t, e in zip(first.trials, edited.trials) if t.hash != e.hash}
    assert changed == {"mine"}


@pytest.mark.parametrize(
    ("extra", "args", "pattern"),
    [
        ("", "{hidden: 8, extra: 2}", r"output shape is \(5,\).*needs \(3,\).*output_units=3"),
        (
            "init_mode: shared",
            "{}",
            r"init_mode: 'shared': a Python model .* without `names`.*Pair the torch and Keras parameters.*init_mode: native",
        ),
        ("", "{width: 3}", r"make_torch\(\(4,\), 3, \*\*args\) raised TypeError"),
    ],
    ids=["output-shape", "shared-init", "bad-args"],
)
def test_bad_python_models_are_refused_before_anything_runs(
    tmp_path: Path, extra: str, args: str, pattern: str
) -> None:
    with pytest.raises(SpecError, match=pattern) as caught:
        load_suite(write(tmp_path, extra=extra, args=args))
    assert caught.value.exit_code == 2


def test_a_backend_without_a_factory_is_refused(tmp_path: Path) -> None:
    suite = write(tmp_path)
    suite.write_text(suite.read_text().replace("backends: [torch]", "backends: [torch, keras]"))
    with pytest.raises(SpecError, match=r"backend 'keras' needs a 'keras' factory.*run only backends \['torch'\]"):
        load_suite(suite)


def test_a_module_that_cannot_be_found_is_refused(tmp_path: Path) -> None:
    suite = write(tmp_path)
    suite.write_text(suite.read_text().replace("user_nets:make_torch", "missing_nets:make_torch"))
    with pytest.raises(SpecError, match=r"cannot find module 'missing_nets'"):
        load_suite(suite)


def test_the_spec_round_trips_through_json(tmp_path: Path) -> None:
    from harness.spec.types import TrialSpec

    mine = next(trial for trial in load_suite(write(tmp_path)).trials if trial.arm == "mine")
    again = TrialSpec.from_dict(mine.spec.to_dict())
    assert again == mine.spec and again.hash == mine.spec.hash
    assert dataclasses.replace(mine.spec.model, import_path="/elsewhere") != mine.spec.model
