#!/usr/bin/env bash
# The checks that need a real CUDA GPU, as one script (none runs in CI: no GPU there).
#   1. the gpu-marked tests: a trial on 'auto', 'cuda' and 'cuda:0' records the GPU; stacked members equal
#      their lone trials on the GPU;
#   2. bench_vectorized on the GPU: K seeds of the reference MLP stacked vs one after another;
#   3. the whole command: `harness run` of the smoke suite's torch trials with --device cuda, stacked, and
#      what the store recorded as each trial's device.
# Run from the repository root on a machine with a GPU and the harness's dependencies (a plain
# `pip install -e .[torch]`, or PYTHONPATH pointing at them). Logs go to $OUT (default: a new temporary folder).
set -uo pipefail
out=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
nvidia-smi -L

echo "== 1. gpu tests"
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_devices.py tests/test_vectorize.py 2>&1 | tee "$out/gpu_tests.txt" | tail -25

echo "== 2. bench_vectorized on the GPU"
python3 -m benchmarks.bench_vectorized --device cuda --threads 1 --sizes 1 2 4 8 16 32 64 2>&1 | tee "$out/bench_vectorized_cuda.txt"

echo "== 3. harness run --device cuda (smoke, torch only)"
store=$(mktemp -d)
start=$(date +%s.%N)
python3 -c 'import sys; from harness.cli import main; sys.argv[0] = "harness"; main()' \
  run suites/smoke.yaml --backend torch --device cuda --store "$store" --quiet 2>&1 | tail -15
echo "harness run: $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
python3 - "$store" <<'EOF' 2>&1 | tee "$out/store_devices.txt"
import collections, json, sqlite3, sys
rows = sqlite3.connect(f"{sys.argv[1]}/harness.sqlite").execute("SELECT status, device FROM trials").fetchall()
seen = collections.Counter((status, json.loads(d).get("device"), json.loads(d).get("vectorized"), json.loads(d).get("name")) for status, d in rows)
for key, count in sorted(seen.items()):
    print(count, "trials:", key)
EOF
