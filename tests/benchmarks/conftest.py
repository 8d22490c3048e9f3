"""The pytest benchmarks share their workloads with the benchmark scripts: benchmarks/common.py, imported
as `common` (the scripts' own folder is their sys.path[0]; here it is put first on sys.path)."""
from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
