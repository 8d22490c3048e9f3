"""Provenance: the git state, installed packages, CPU and thread settings each trial records, and the
differences the report flags between trials that ran with different ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from harness.analysis.environment import environment_differences
from harness.provenance import digest, git_state, installed_packages, process_provenance


def git(folder: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_git_state_names_the_commit_and_whether_files_differ(tmp_path):
    assert git_state(tmp_path) is None  # not a checkout
    git(tmp_path, "init", "-q")
    (tmp_path / "suite.yaml").write_text("name: a\n")
    git(tmp_path, "add", "suite.yaml")
    git(tmp_path, "commit", "-qm", "a")
    state = git_state(tmp_path / "suite.yaml")
    assert state is not None and state["commit"] == git(tmp_path, "rev-parse", "HEAD") and state["dirty"] is False
    (tmp_path / "plugin.py").write_text("x = 1\n")  # an untracked file changes what runs too
    assert git_state(tmp_path)["dirty"] is True


def test_process_provenance_hashes_the_package_list_it_names():
    record, blobs = process_provenance(threads=3)
    kind, content = blobs[record["packages"]]
    assert kind == "packages" and digest(json.loads(content)) == record["packages"]
    assert json.loads(content) == installed_packages() and "numpy" in json.loads(content)
    assert record["threads"]["pinned"] == "3" and record["cpu"] and record["python"]


def test_environment_differences_flag_another_commit_and_other_packages():
    def provenance(commit: str, dirty: bool, packages: str) -> str:
        return json.dumps({"git": {"commit": commit, "dirty": dirty}, "packages": packages, "python": "3.11.7"})

    trials = pd.DataFrame(
        {
            "arm": ["sgd", "adam", "adam"],
            "backend": ["torch"] * 3,
            "status": ["ok"] * 3,
            "provenance": [
                provenance("a" * 40, False, "p1"),
                provenance("a" * 40, False, "p1"),
                provenance("b" * 40, True, "p2"),
            ],
        }
    )
    found = {difference.aspect: difference for difference in environment_differences(trials)}
    assert set(found) == {"code (git)", "installed packages"}
    assert [value.value for value in found["code (git)"].values] == ["a" * 12, "b" * 12 + "+dirty"]
    assert found["code (git)"].values[1].groups == ("adam",)


def test_installed_packages_read_the_same_names_and_versions_as_the_metadata_parser():
    from importlib import metadata

    parsed = {}
    for distribution in metadata.distributions():  # the e-mail parser, as importlib.metadata reads them
        if distribution.metadata["Name"]:
            parsed[str(distribution.metadata["Name"]).lower()] = str(distribution.version)
    assert installed_packages() == dict(sorted(parsed.items())) and len(parsed) > 20
