"""Speed benchmarks, one home: scripts that print measured ratios (`bench_*.py`, run from the
repository root as `python -m benchmarks.bench_torch_loop`) and pytest-benchmark tests
(`test_bench_*.py`, run with `pytest benchmarks`; the default test run leaves them out through
pyproject's addopts). Both share their workloads through `benchmarks.common`, and made-up stored
results through `tests.helpers.synthetic`: the repository root is the import root of both, as
`python -m` and pytest (this folder being a package) make it.
"""
