"""The Keras 3 adapter. Imported only through harness.adapters.get_adapter (it imports keras).

Modules (mirroring harness/adapters/torch/ name for name): adapter (setup, devices, build),
layers (canonical layers written with keras.ops where Keras' built-ins differ), realize (each
canonical layer as a Keras layer and where its tensors live), network (the functional model of
a stack or graph, canonical activations, weight keys, native init), optimizers (canonical
rules, clipping, decoupled decay; make_optimizer), losses (LOSS_FUNCTIONS, loss_function,
kernel_penalty; every loss takes (outputs, targets)), model (KerasModel), training (an epoch of
steps and a batch's gradients on each Keras backend). What both adapters share is in
harness.adapters.common. Importing this package does NOT import keras: `make_adapter` first
sets KERAS_BACKEND, which Keras reads once, at its first import.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from harness.errors import BackendError

if TYPE_CHECKING:
    from harness.adapters.keras.adapter import KerasAdapter


def make_adapter(name: str) -> KerasAdapter:
    """The adapter for a Keras backend name ('keras', 'keras-tensorflow', 'keras-jax', 'keras-torch').

    Raises:
        BackendError: Keras is already imported in this process with another backend (each
            Keras backend runs in its own worker process), or the backend is not installed.
    """
    from harness.adapters import check_backend

    wanted = check_backend(name).keras_backend
    if wanted is None:
        raise BackendError(f"backend {name!r} is not a Keras backend; the Keras adapter serves keras-* backends.")
    if "keras" in sys.modules:
        import keras

        active = keras.backend.backend()
        if active != wanted:
            raise BackendError(
                f"backend {name!r} needs Keras on {wanted!r}, but Keras is already imported in this process "
                f"on {active!r}. Keras reads KERAS_BACKEND once, at import, so each Keras backend runs in its "
                "own worker process: run these backends in separate processes (the runner does this), "
                "or start a fresh process for this one."
            )
    else:
        os.environ["KERAS_BACKEND"] = wanted
        # TensorFlow's C++ start-up banners (oneDNN, CPU features) are noise in a harness's output;
        # a user who sets the variable keeps their own level.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from harness.adapters.keras.adapter import KerasAdapter

    return KerasAdapter(name)


__all__ = ["make_adapter"]
