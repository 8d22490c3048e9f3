"""`harness history` and `check --against-last` over runs at two commits of a git repository made here:
the regression introduced by the second commit is flagged with `check`'s statistics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import Store

SUITE = """\
name: hist
dataset: iris
model: {{mlp: {{hidden: [8]}}}}
loss: cross_entropy
optimizer: {{name: sgd, lr: 0.1}}
initializer: he_normal
training: {{epochs: 15, batch_size: 16}}
seeds: 3
backends: [torch]
grid:
  initializer:
    he: he_normal
    xavier: {xavier}
"""


def git(folder: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit(folder: Path, xavier: str, message: str) -> str:
    (folder / "suite.yaml").write_text(SUITE.format(xavier=xavier))
    git(folder, "add", "suite.yaml")
    git(folder, "commit", "-qm", message)
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Runs of one suite at commit A, then at commit B where the 'xavier' arm's initializer is (deliberately,
    wrongly) zeros: its hidden units stay dead, and it predicts one class whatever the input."""
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q")
    store = repo / "store"
    (repo / ".gitignore").write_text("store/\n")
    git(repo, "add", ".gitignore")
    first = commit(repo, "xavier_uniform", "A")
    for _ in range(2):
        if _ == 1:
            second = commit(repo, "zeros", "B: a deliberate regression")
        result = CliRunner().invoke(
            cli, ["run", str(repo / "suite.yaml"), "--store", str(store), "--jobs", "1", "--quiet"]
        )
        assert result.exit_code == 0, result.output
    return repo, first, second


def test_each_run_records_its_commit_and_the_trials_it_reused(two_commits):
    repo, first, second = two_commits
    with Store(repo / "store") as store:
        runs = store.runs_frame("hist")
        assert runs["git_commit"].tolist() == [first, second] and not runs["git_dirty"].any()
        values = store.run_trials_frame(runs["id"].tolist()).drop_duplicates(["run_id", "hash"])
        trials = store.trials_frame()
    second_run = values[values["run_id"] == runs["id"].iloc[1]]
    assert second_run.groupby("arm")["reused"].all().to_dict() == {"xavier": False, "he": True}  # only xavier changed
    provenance = json.loads(trials["provenance"].iloc[0])
    assert provenance["packages"] and provenance["threads"]["pinned"] and provenance["cpu"]


def test_history_flags_the_regression_at_commit_b(two_commits, tmp_path):
    repo, first, second = two_commits
    result = CliRunner().invoke(
        cli, ["history", str(repo / "suite.yaml"), "--store", str(repo / "store"), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    lines = {tuple(line.split()[:5]): line for line in result.output.splitlines() if line[:1].isdigit()}
    changed = next(line for key, line in lines.items() if key[0] == "2" and key[4] == "xavier")
    kept = next(line for key, line in lines.items() if key[0] == "2" and key[4] == "he")
    assert second[:12] in changed and "REGRESSED" in changed and "+dirty" not in changed
    assert "WITHIN" in kept and first[:12] in result.output
    assert (tmp_path / "history.png").stat().st_size > 5000 and (tmp_path / "history.csv").is_file()


def test_check_against_the_last_run_fails_on_the_regression(two_commits):
    repo, _, _ = two_commits
    result = CliRunner().invoke(
        cli, ["check", str(repo / "suite.yaml"), "--store", str(repo / "store"), "--against-last", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "REGRESSED" in result.output and "xavier" in result.output
    too_many = CliRunner().invoke(
        cli, ["check", str(repo / "suite.yaml"), "--store", str(repo / "store"), "--against-last", "2"]
    )
    assert too_many.exit_code == 2 and "holds 2 run(s)" in too_many.output
