"""Fixtures shared by the test modules: the configured adapters, one per framework, and `adapter`,
which runs a test once per framework (ids 'torch' and 'keras'; the Keras runs carry the `keras` marker).

Shared non-fixture code lives in tests/helpers/ (spec builders, numpy references, suite texts).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

# A shell without job control starts background commands with SIGINT ignored, and an ignored
# signal stays ignored across exec: Python then installs no KeyboardInterrupt handler, and the
# Ctrl-C tests (and every `harness run` they start) would see a SIGINT that does nothing. Give
# the test process, and so its children, the ordinary handler whatever started pytest.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest.register_assert_rewrite("helpers")  # plain asserts in helpers report their operands, as in tests

from helpers.params import ADAPTER_PARAMS  # noqa: E402 - after the rewrite hook, so helpers get it


@pytest.fixture(scope="module")
def torch_adapter() -> Iterator[object]:
    """The torch adapter with one intra-op thread and deterministic algorithms (every op a test runs,
    forward and backward, must support them); the process' previous settings come back afterwards."""
    torch = pytest.importorskip("torch")
    from harness.adapters import get_adapter

    adapter = get_adapter("torch")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    adapter.configure(1)
    yield adapter
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def keras_adapter() -> object:
    """The Keras adapter on TensorFlow, one thread per pool (kept if TensorFlow already started), deterministic kernels."""
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    from harness.adapters import get_adapter

    adapter = get_adapter("keras")
    adapter.configure(1)
    return adapter


@pytest.fixture(scope="module", params=list(ADAPTER_PARAMS.values()))
def adapter(request: pytest.FixtureRequest) -> object:
    """Each framework's adapter in turn (tests using it run per framework; helpers.params.cases_per_adapter
    gives a test its own cases per framework instead)."""
    return request.getfixturevalue(f"{request.param}_adapter")
