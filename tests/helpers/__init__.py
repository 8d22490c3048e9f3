"""Shared test code (not tests): spec and data builders, the float64 numpy references of the
canonical formulas, and suite texts. Imported by the test modules as `helpers.<module>`; pytest
puts tests/ on sys.path (rootdir-relative, no __init__.py in tests/), and tests/conftest.py turns
on assertion rewriting for this package."""
