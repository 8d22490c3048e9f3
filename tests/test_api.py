"""The Python API (`harness.run`, `harness.load`, `harness.figures`): the notebook example in examples/ runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_notebook_example_runs_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    environment = {**os.environ, "HARNESS_EXAMPLE_STORE": str(tmp_path / "store"), "PYTHONPATH": str(REPOSITORY)}
    done = subprocess.run(
        # as a notebook kernel runs cells: __main__ has no file for spawned workers to import again
        [sys.executable, "-c", "exec(open('examples/notebook.py').read())"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "adam" in done.stdout and "curves_accuracy" in done.stdout
    # the run was recorded for `harness history`, and its trials are the store's
    from harness.store import Store

    with Store(tmp_path / "store") as store:
        assert len(store.runs_frame("smoke")) == 1
        assert len(store.trials_frame()) == 4  # 2 arms x 2 seeds, torch only


def test_run_refuses_a_bad_suite_with_its_location(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ndataset: no_such_dataset\n")
    with pytest.raises(harness.HarnessError, match=r"broken\.yaml"):
        harness.run(broken, store=tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()  # nothing written
