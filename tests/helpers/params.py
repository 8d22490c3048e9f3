"""Parametrizing tests over the adapters: each framework as a pytest param (ids 'torch' and 'keras', the
Keras one carrying the `keras` marker), and per-framework case lists for the few tests whose cases differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

ADAPTER_PARAMS = {
    "torch": pytest.param("torch", id="torch"),
    "keras": pytest.param("keras", id="keras", marks=pytest.mark.keras),
}


def cases_per_adapter(argnames: str, cases: Mapping[str, Sequence[Any]], ids: Any = str) -> pytest.MarkDecorator:
    """`parametrize("adapter, <argnames>")` with each adapter's own cases (the conftest `adapter` fixture,
    indirectly), for a test where one framework runs fewer cases than the other, e.g. to keep the suite's
    time where the other framework's run would add seconds and no coverage.

    Args:
        argnames: the test's other parameters, comma-separated.
        cases: backend name -> its cases (one value, or a tuple when argnames names several).
        ids: the id of a case, as `ids` of pytest.mark.parametrize takes one.
    """
    names = [name.strip() for name in argnames.split(",")]
    params = []
    for backend, backend_cases in cases.items():
        adapter = ADAPTER_PARAMS[backend]
        for case in backend_cases:
            values = case if len(names) > 1 else (case,)
            case_id = ids(case) if callable(ids) else str(case)
            params.append(pytest.param(*adapter.values, *values, id=f"{backend}-{case_id}", marks=adapter.marks))
    return pytest.mark.parametrize(["adapter", *names], params, indirect=["adapter"])
