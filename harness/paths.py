"""Default folders, relative to the working directory: the library and the CLI read them here."""

from __future__ import annotations

from pathlib import Path

DEFAULT_STORE = Path("results")  # the SQLite store `harness.sqlite` and one table folder per suite
DEFAULT_REPORTS = Path("reports")  # `run --report`, `report` and `compare` write under it
WEIGHTS_FOLDER = "weights"  # under the store: <hash>.safetensors per trial that saves weights (harness.weights)
CHECKPOINTS_FOLDER = "checkpoints"  # under the store: <hash>.ckpt per running trial (harness.adapters.checkpoints)
