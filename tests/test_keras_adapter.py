"""What only the Keras adapter has to get right: its own Adam (Keras' built-in one is another rule), the
Keras backend it runs on, one per process, and the other Keras backends in their own processes. The
canonical optimizers, losses, regularizers, activations, weights, dropout, native initializers, devices
and the loop end to end are checked for every adapter in tests/test_adapters.py; agreement with PyTorch
in tests/test_parity.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers.dense_reference import RTOL, parameter_atol, train_side_by_side
from helpers.specs import trial_spec

from harness.adapters import get_adapter
from harness.errors import BackendError

pytestmark = pytest.mark.keras


def test_keras_builtin_adam_would_not_match(keras_adapter, monkeypatch) -> None:
    """The reference is sharp enough to see Keras' epsilon-hat Adam (why the adapter has its own rule)."""
    import keras

    import harness.adapters.keras.adapter as adapter_module

    monkeypatch.setattr(
        adapter_module,
        "make_optimizer",
        lambda optimizer, regularizer, biases: keras.optimizers.Adam(
            learning_rate=optimizer["lr"], epsilon=optimizer["eps"]
        ),
    )
    spec = trial_spec(
        optimizer={"name": "adam", "lr": 0.05, "eps": 1e-3}, initializer="xavier_uniform", backend="keras"
    )
    losses, reference_losses, ours, theirs, _ = train_side_by_side(keras_adapter, spec)
    np.testing.assert_allclose(losses[0], reference_losses[0], rtol=RTOL)  # the first loss precedes any update
    deviation = max(np.abs(ours[-1][key] - value).max() for key, value in theirs[-1].items())
    assert deviation > 100 * parameter_atol(spec)


# --- backend selection and versions -----------------------------------------------------------------


def test_backend_names_and_versions(keras_adapter) -> None:
    import keras
    import tensorflow as tf

    assert keras_adapter.name == "keras" and keras_adapter.keras_backend == "tensorflow"
    assert get_adapter("keras-tensorflow").name == "keras-tensorflow"
    assert keras_adapter.versions() == {
        "keras": keras.__version__,
        "keras_backend": "tensorflow",
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
    }


def test_a_second_keras_backend_in_one_process_is_refused(keras_adapter) -> None:
    with pytest.raises(BackendError, match=r"already imported in this process on 'tensorflow'.*own worker process"):
        get_adapter("keras-torch")
    from harness.adapters.keras import make_adapter

    with pytest.raises(BackendError, match="not a Keras backend"):
        make_adapter("torch")


OTHER_BACKEND_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import numpy as np
    from harness.adapters import get_adapter
    from harness.adapters.loop import train_trial
    from harness.data import load_dataset, resolve_dataset
    from harness.parity import parity_check
    from harness.spec import RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model
    name = sys.argv[1]
    adapter = get_adapter(name)
    adapter.configure(1)
    import keras
    dataset = resolve_dataset("iris")
    data = load_dataset(dataset)
    report = {"backend": keras.backend.backend(), "parity": {}}
    for optimizer in ("sgd", "adam"):
        spec = TrialSpec(
            dataset=dataset, model=resolve_model({"mlp": {"hidden": [8], "activation": "gelu"}}, 3),
            loss=resolve_component("loss", "cross_entropy", "l"), optimizer=resolve_component("optimizer", optimizer, "o"),
            initializer=resolve_component("initializer", "he_normal", "i"),
            regularizer=RegularizerSpec(l2=1e-3, clip_norm=1.0, weight_decay=0.01),
            training=TrainingSpec(epochs=3, batch_size=16), seed=2, backend=name,
        )
        report["parity"][optimizer] = parity_check(spec, ["torch", name], data, steps=10).message()
    result = train_trial(spec, adapter, data)
    report["status"], report["accuracy"] = result.status, result.final()["test_accuracy"]
    # the next trials of this form reuse the model and its compiled step (harness.adapters.keras.reuse)
    other = dataclasses.replace(spec, seed=3, training=TrainingSpec(epochs=2, batch_size=20))
    other_after, again = train_trial(other, adapter, data), train_trial(spec, adapter, data)
    other_alone = train_trial(other, type(adapter)(name), data)
    report["reuse_exact"] = again.metrics == result.metrics and other_after.metrics == other_alone.metrics
    report["compile_seconds"] = [result.compile_seconds, again.compile_seconds]
    print(json.dumps(report))
""")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keras-torch", "keras-jax"], ids=["keras-torch", "keras-jax"])
def test_other_keras_backends_in_their_own_process(name) -> None:
    """make_adapter sets KERAS_BACKEND before Keras is imported; the same code trains and matches torch."""
    needed = {"keras-torch": "torch", "keras-jax": "jax"}[name]
    if importlib.util.find_spec(needed) is None or importlib.util.find_spec("torch") is None:
        pytest.skip(f"{name} needs {needed} and torch installed")
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    completed = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT, name],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["backend"] == needed
    for message in report["parity"].values():
        assert message.startswith("parity OK"), message
    assert report["status"] == "ok" and report["accuracy"] > 0.6
    assert report["reuse_exact"]
    first, again = report["compile_seconds"]  # jax compiles the step once; Keras on torch runs eager
    assert again == 0.0 and (first > 0 if name == "keras-jax" else first == 0.0)
