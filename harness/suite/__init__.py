"""Suites: a YAML file describing an experiment once, plus an ablation grid, expanded into trials.

    from harness.suite import load_suite
    suite = load_suite("suites/smoke.yaml")
    len(suite.trials)   # cells x backends x seeds

Modules: yaml_source (YAML with line numbers, located errors), schema (fixed-shape blocks,
seeds, backends), grid (axes, labels, exclude, applying a cell), load (Suite, load_suite).
"""

from __future__ import annotations

from harness.suite.load import Suite, load_suite

__all__ = ["Suite", "load_suite"]
