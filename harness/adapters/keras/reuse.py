"""Reusing a built KerasModel - and so its traced and compiled functions - for a later trial of the same form.

A worker runs many trials of one architecture (seeds, learning rates, grid cells that change only
the data order). Building a KerasModel is cheap; tracing its epoch function is not (tensorflow: the
tf.function trace and graph instantiation, ~0.25 s for the reference MLP here; jax: the XLA compile
of the step, ~0.3 s), and Keras traces per model, because the functions capture the model's
variables. So the adapter keeps the models of finished trials (`KerasAdapter.release`, called by
the loop at a trial's end) and hands one back from `build` when the next trial has the same
`reuse_key`, after putting every variable where a newly built model would start.

What a trace depends on, and what the key therefore holds:
    captured variables   the model's (weights, batch_norm statistics, dropout seed states) and the
                         optimizer's (iteration count, slots, learning rate): the SAME objects are
                         reused, their VALUES restarted (network.restart_network, KerasModel.restart_optimizer)
    Python constants     the layers and their parameters (dropout rate, activations, batch_norm
                         momentum and eps), the losses, the l1/l2 penalties, the optimizer rule with
                         every hyperparameter except lr (momentum, betas, eps, clip thresholds, weight
                         decay), the input shape, the outputs: all in the key (spec.model, spec.loss,
                         spec.optimizer without lr, spec.regularizer, the dataset's input shape and outputs)
    the device           in the key (variables live there)
    learning rate        a variable read by the trace: NOT in the key, so a learning-rate sweep reuses
    batch size, steps    arguments of unfixed size (tensorflow's signature leaves them open; jax keeps
                         one executable per step shape): not in the key
    seed, initializer,   only where the variables start: restarted, not in the key
    init_mode, training

The optimizer's other hyperparameters stay constants (a key part) rather than becoming variables:
`1 - beta1` folded in float64 and rounded once is not always the float32 subtraction a variable would
give, and the float32 parity with torch (tests/test_parity*.py) rests on the folded form.

Never reused (key None, a fresh build every trial): a Python model (the user's code draws its initial
weights; nothing replays that), and a network with a variable that is neither a canonical tensor nor
a seed state started at its layer's seed (`Network.restart_problem`): restarting it could not be exact.

Exactness: a restarted model holds, variable for variable, what a new build holds (tested bit for
bit), and its trial's metrics equal those of the same trial in a fresh process (tests/test_keras_reuse.py).
Global RNGs: `build` seeds Python's and NumPy's global generators either way (TensorFlow's only for a
Python model: KerasAdapter.seed_globals); a new build may then draw from Python's (Keras initializers
created without a seed), a reused one does not, and nothing a trial runs reads them (batch order and
init are the harness's own generators, dropout reads its seed state).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import keras

from harness.data.types import DatasetInfo
from harness.spec.types import TrialSpec, canonical_json

if TYPE_CHECKING:
    from harness.adapters.keras.model import KerasModel

REUSE_LIMIT = 4  # models kept per worker process (least recently released dropped first)


def reuse_key(spec: TrialSpec, info: DatasetInfo, device: str) -> str | None:
    """Everything a KerasModel's traced functions depend on (module docstring), as one string; None when
    the trial's model must be built anew every time (a Python model)."""
    if spec.model.python:
        return None
    optimizer = {key: value for key, value in spec.optimizer.to_dict().items() if key != "lr"}
    return canonical_json(
        {
            "keras_backend": keras.backend.backend(),
            "device": device,
            "model": spec.model.to_dict(),
            "loss": spec.loss.to_dict(),
            "optimizer": optimizer,
            "regularizer": spec.regularizer.to_dict(),
            "input_shape": list(info.input_shape),
            "num_outputs": info.num_outputs,
        }
    )


class ReusableModels:
    """Released models by reuse key, at most `limit` of them (least recently released dropped first).

    A model is either held here or in use by one trial, never both: `take` removes it.
    """

    def __init__(self, limit: int = REUSE_LIMIT) -> None:
        self.limit = limit
        self._models: OrderedDict[str, KerasModel] = OrderedDict()

    def take(self, key: str) -> KerasModel | None:
        return self._models.pop(key, None)

    def keep(self, key: str, model: KerasModel) -> None:
        self._models.pop(key, None)
        self._models[key] = model
        while len(self._models) > self.limit:
            self._models.popitem(last=False)

    def __len__(self) -> int:
        return len(self._models)
