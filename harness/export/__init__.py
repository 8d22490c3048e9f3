"""Exports of a suite's stored results to the tools users already have: MLflow and TensorBoard.

Readers of the store, like the report and `check`: each takes a `Results` and writes elsewhere,
never to the store. `common` derives what every export sends (trial records, arm summaries);
`mlflow` and `tensorboard` write it. Each imports its library only when called (extras `mlflow`,
`tensorboard`), so neither is needed to run a suite.
"""

from __future__ import annotations

EXPORT_TARGETS = ("mlflow", "tensorboard")

__all__ = ["EXPORT_TARGETS"]
