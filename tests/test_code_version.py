"""A worker whose harness code differs from the driver's refuses to run; the run stops and a rerun finishes.

The end-to-end test runs for real: a copy of the package in a temporary folder, a driver process
importing it, a file of the copy edited while the run goes on, and a fresh worker (the first one
is killed mid-trial by the crash hook, so the trial is retried on a new process) that imports the
edited copy and refuses. What must follow: nothing more is dispatched, the refused trial and the
ones after it are not recorded, the summary says why; a second run from the edited copy finishes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.suites import optimizer_grid_suite, write_suite

from harness.cli import cli
from harness.cli.common import EXIT_CODE_CHANGED
from harness.runner import code_version
from harness.runner.code_version import PROCESS_CODE_VERSION, CodeVersion, code_mismatch, read_code_version

REPOSITORY = Path(__file__).resolve().parent.parent


def test_the_same_code_matches_and_other_code_names_its_files() -> None:
    assert code_mismatch(None) is None and code_mismatch(PROCESS_CODE_VERSION) is None
    files = dict(PROCESS_CODE_VERSION.files)
    files["harness/errors.py"] = "0" * 16
    files.pop("harness/measures.py")
    files["harness/new_module.py"] = "1" * 16
    driver = CodeVersion("f" * 16, files)
    reason = code_mismatch(driver)
    assert reason is not None and "f" * 16 in reason and PROCESS_CODE_VERSION.digest in reason
    assert "harness/errors.py (changed)" in reason and "harness/measures.py (added)" in reason
    assert "harness/new_module.py (removed)" in reason  # present for the driver, gone from this process's files


def test_the_fingerprint_follows_the_files_contents(tmp_path: Path) -> None:
    package = tmp_path / "harness"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("A = 1\n")
    (package / "sub" / "__pycache__").mkdir()
    (package / "sub" / "__pycache__" / "a.cpython-311.py").write_text("ignored")
    before = read_code_version(package)
    assert set(before.files) == {"harness/__init__.py", "harness/sub/a.py"}
    assert read_code_version(package) == before  # stable
    (package / "notes.txt").write_text("not code")
    assert read_code_version(package) == before
    (package / "sub" / "a.py").write_text("A = 2\n")
    after = read_code_version(package)
    assert after.digest != before.digest and after.changes_from(before) == ["harness/sub/a.py (changed)"]


def test_a_ray_actor_with_other_code_runs_nothing() -> None:
    pytest.importorskip("ray")
    from harness.runner.ray_pool import TrialActor

    other = dataclasses.replace(PROCESS_CODE_VERSION, digest="0" * 16)
    # An actor ignores SIGINT in its own process; built here, it would do so in pytest's, and every
    # later Ctrl-C test (and each process they start) would inherit a SIGINT that does nothing.
    handler = signal.getsignal(signal.SIGINT)
    try:
        answer = TrialActor(1, other).run(None, 1)  # type: ignore[arg-type]  # never looked at
    finally:
        signal.signal(signal.SIGINT, handler)
    assert answer["code_changed"] is not None and "0" * 16 in answer["code_changed"]


DRIVER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    copy, store_dir, edit = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "edit"
    sys.path.insert(0, str(copy))  # the copy, not the checkout; spawned workers inherit sys.path

    import harness
    assert Path(harness.__file__).resolve().is_relative_to(copy.resolve()), harness.__file__
    from harness.runner import run_trials
    from harness.spec import DatasetSpec, RegularizerSpec, TrainingSpec, Trial, TrialSpec
    from harness.spec import resolve_component, resolve_model
    from harness.store import Store

    def trial(seed):
        spec = TrialSpec(
            dataset=DatasetSpec("iris"), model=resolve_model({"mlp": {"hidden": [4]}}, num_outputs=3),
            loss=resolve_component("loss", "cross_entropy", "loss"),
            optimizer=resolve_component("optimizer", "sgd", "optimizer"),
            initializer=resolve_component("initializer", "he_normal", "initializer"),
            regularizer=RegularizerSpec(), training=TrainingSpec(epochs=3, batch_size=16),
            seed=seed, backend="torch")
        return Trial("code", "sgd", (), spec)

    trials = [trial(seed) for seed in range(3)]
    events = []

    def observe(event):
        events.append((event.kind, event.trial.spec.seed))
        if edit and event.kind == "finished" and event.trial is trials[0]:
            # the run goes on; the next worker to start imports this edited file
            path = copy / "harness" / "errors.py"
            path.write_text(path.read_text() + "\\n# edited during the run\\n")

    if edit:  # the worker dies on trial 1: its retry needs a fresh worker, which imports the edited copy
        os.environ["HARNESS_TEST_CRASH"] = trials[1].hash + ":sigkill:1"
    with Store(store_dir) as store:
        summary = run_trials(trials, store, jobs=1, quiet=True, on_event=observe, vectorize="off")
        recorded = {int(json.loads(spec)["seed"]): status for spec, status in
                    store.trials_frame()[["spec", "status"]].itertuples(index=False)}
    print(json.dumps({"ok": summary.ok, "failed": summary.failed, "skipped": summary.skipped,
                      "code_changed": summary.code_changed, "recorded": recorded, "events": events}))
    """
)


def _drive(copy: Path, store: Path, mode: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "HARNESS_TEST_CRASH"}
    environment.pop("PYTHONPATH", None)
    finished = subprocess.run(
        [sys.executable, "-c", DRIVER, str(copy), str(store), mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=copy,
        env=environment,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_code_changed_during_a_run_stops_it_unrecorded_and_a_rerun_finishes(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(REPOSITORY / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    store = tmp_path / "store"

    first = _drive(copy, store, "edit")
    assert first["recorded"] == {"0": "ok"}, first  # trial 1 refused (unrecorded), trial 2 never dispatched
    assert first["ok"] == 1 and first["failed"] == 0
    reason = first["code_changed"]
    assert reason and "harness/errors.py (changed)" in reason and "changed on disk during the run" in reason
    assert ["refused", 1] in first["events"] and ["dispatched", 2] not in first["events"]

    again = _drive(copy, store, "rerun")  # a new driver imports the edited code: its workers agree with it
    assert again["code_changed"] is None and again["skipped"] == 1 and again["ok"] == 2, again
    assert again["recorded"] == {"0": "ok", "1": "ok", "2": "ok"}


def test_cli_says_how_to_resume_and_exits_with_its_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The CLI's side only: the run's summary says the code changed (the real run is the test above).
    from harness.runner import RunSummary, driver

    def stopped_run(runner: object, trials: object, store: object) -> RunSummary:
        reason = "the harness code changed on disk during the run: (harness/errors.py (changed))"
        return RunSummary(4, 0, 1, 0, 0, 0, False, 0.1, code_changed=reason)

    monkeypatch.setattr(driver.TrialRunner, "run", stopped_run)  # what `harness run` runs its trials with
    text = optimizer_grid_suite(
        "code",
        "Two arms.",
        dataset="iris",
        model="{mlp: {hidden: [4]}}",
        training="{epochs: 1, batch_size: 32}",
        seeds=2,
        arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam}"},
    )
    suite = write_suite(tmp_path, text, "code.yaml")
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(tmp_path / "store"), "--quiet"])
    assert result.exit_code == EXIT_CODE_CHANGED == 4, result.output
    assert "Stopped: the harness code changed on disk during the run" in result.output
    assert "3 trial(s) were not run and are not recorded" in result.output
    assert f"harness run {suite} --store {tmp_path / 'store'}" in result.output


def test_reading_the_fingerprint_is_cheap() -> None:
    # Measured here: about 5-20 ms for the ~120 files (once per process). The bound only catches a blow-up.
    import time

    clock = time.perf_counter()
    read_code_version(code_version.PACKAGE)
    assert time.perf_counter() - clock < 2.0


WORKER_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from harness.runner.worker import TrialExecutor
    from harness.spec import DatasetSpec, RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model

    spec = TrialSpec(
        dataset=DatasetSpec("iris"), model=resolve_model({"mlp": {"hidden": [4]}}, num_outputs=3),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", "adam", "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(l2=0.01), training=TrainingSpec(epochs=1, batch_size=32),
        seed=0, backend="torch", extras=(("diagnostics", {"epochs": [0, 1], "samples": 32, "bins": 10}),))
    result = TrialExecutor(1).run(spec)
    assert result.status == "ok", result.error
    print(json.dumps(sorted(name for name in sys.modules if name.startswith("harness"))))
    """
)


def test_a_worker_imports_nothing_the_fingerprint_leaves_out() -> None:
    # What a worker process imports to run a trial (with diagnostics on): none of it may be DRIVER_SIDE,
    # or an edit there during a run would go unnoticed.
    finished = subprocess.run(
        [sys.executable, "-c", WORKER_IMPORTS], capture_output=True, text=True, timeout=120, cwd=REPOSITORY
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    imported = json.loads(finished.stdout.strip().splitlines()[-1])
    left_out = [
        name
        for name in imported
        if name.removeprefix("harness.")
        .replace(".", "/")
        .startswith(tuple(p.removesuffix(".py") for p in code_version.DRIVER_SIDE))
    ]
    assert "harness.adapters.torch.adapter" in imported and left_out == []
