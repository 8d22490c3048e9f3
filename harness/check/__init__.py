"""Regression checks for CI: baselines, tolerances with seeds, executable claims, speed benchmarks.

A team keeps a small suite and its baseline in the repository; CI reruns the suite and fails
when a change makes results worse or training slower, with seeds taken into account:

    harness run suites/smoke.yaml
    harness baseline save suites/smoke.yaml -o baselines/smoke.json     # once; commit the file
    harness check suites/smoke.yaml --baseline baselines/smoke.json     # in CI: exit 1 on a regression

Modules (each one job):
    options   tolerances (`0.01` absolute, `1%` relative) from the suite's `check:` block and
              --fail-on, the default metrics, the minimum-seeds rule
    baseline  the baseline JSON: build, write, read and validate (format, version, suite)
    equivalence  the tolerance as a region of practical equivalence: one-sided tests (TOST),
              Holm over the rows that can fail, WITHIN / REGRESSED / IMPROVED / INCONCLUSIVE
    gate      current results vs baseline: pairing, the outcome of every row, MISSING / NEW,
              environment-sensitive speed rows
    claims    the `expect:` expression language (tokenizer + recursive descent, no eval)
    evidence  claims evaluated on results: 95% CI over seeds, per backend
    render    exit code, text table, --json document

The click commands `harness baseline save` and `harness check` are in harness.cli.baseline and
harness.cli.check; nothing here imports click.

For the suite loader (no pandas, no framework imported): `parse_claim`, `validate_claims` and
`parse_check_block` check a suite's `expect:` and `check:` blocks before anything runs.

Speed benchmarks (pytest-benchmark, in benchmarks/, not part of the default test run):

    pytest benchmarks                                           # run them, print the table
    pytest benchmarks --benchmark-autosave                      # also save .benchmarks/<machine>/0001_*.json
    pytest benchmarks --benchmark-compare                       # compare with the latest saved run
    pytest benchmarks --benchmark-compare=0001 --benchmark-compare-fail=median:15%
                                                                # exit non-zero when a benchmark's median
                                                                # is more than 15% slower than in run 0001
    pytest benchmarks --benchmark-compare-fail=min:0.005        # or more than 5 ms slower (absolute, seconds)

`--benchmark-compare-fail` takes FIELD:THRESHOLD (field: min, max, mean, median, stddev, iqr...;
threshold a percentage or seconds) and may be repeated. Compare only runs saved on the same
machine type: the saved JSON carries `machine_info`, and a laptop baseline says little about a
CI runner. The benchmarks: one training epoch of the reference MLP per adapter (torch; keras when
installed), trials per second through `harness.runner.run_trials` for tiny trials, store insert
and query, and report generation.
"""

from __future__ import annotations

from harness.check.claims import Claim, ClaimError, parse_claim, validate_claims
from harness.check.options import CheckOptions, Tolerance, parse_check_block, parse_tolerance

__all__ = [
    "CheckOptions",
    "Claim",
    "ClaimError",
    "Tolerance",
    "parse_check_block",
    "parse_claim",
    "parse_tolerance",
    "validate_claims",
]
