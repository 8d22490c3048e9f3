"""Adapters by name, in ONE place, imported lazily (only adapters import a framework).

Backend names: 'torch'; 'keras' (Keras 3 on its configured backend, TensorFlow by default),
'keras-tensorflow', 'keras-jax', 'keras-torch' (one Keras backend per worker process,
since Keras reads KERAS_BACKEND once at import).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from harness.errors import BackendError, unknown_name


@dataclass(frozen=True)
class BackendEntry:
    module: str  # adapter package, imported only when a trial runs
    requires: tuple[str, ...]  # importable top-level packages the backend needs
    extra: str  # the pip extra that installs them
    keras_backend: str | None = None  # KERAS_BACKEND value for the worker process


BACKENDS: dict[str, BackendEntry] = {
    "torch": BackendEntry("harness.adapters.torch", ("torch",), "torch"),
    "keras": BackendEntry("harness.adapters.keras", ("keras", "tensorflow"), "keras", "tensorflow"),
    "keras-tensorflow": BackendEntry("harness.adapters.keras", ("keras", "tensorflow"), "keras", "tensorflow"),
    "keras-jax": BackendEntry("harness.adapters.keras", ("keras", "jax"), "keras,jax", "jax"),
    "keras-torch": BackendEntry("harness.adapters.keras", ("keras", "torch"), "keras,torch", "torch"),
}


def check_backend(name: str, where: str = "backends") -> BackendEntry:
    """Validate a backend name and that its packages are installed, WITHOUT importing them.

    Raises:
        SpecError: unknown name (did-you-mean). BackendError: a package is missing (names the extra).
    """
    if name not in BACKENDS:
        raise unknown_name("backend", name, BACKENDS, where)
    entry = BACKENDS[name]
    missing = [package for package in entry.requires if importlib.util.find_spec(package) is None]
    if missing:
        hint = f'pip install "harness[{entry.extra}]"'
        if "torch" in missing:
            hint += "  (torch==2.13.0 is the CPU build; an unpinned torch pulls several GB of CUDA packages)"
        raise BackendError(
            f"{where}: backend {name!r} needs {', '.join(missing)}, which is not installed. Install it with: {hint}"
        )
    return entry


def get_adapter(name: str):  # -> Adapter (typed loosely to keep this module import-free)
    """Import and return the adapter for a backend name (imports the framework)."""
    entry = check_backend(name)
    module = importlib.import_module(entry.module)
    return module.make_adapter(name)
