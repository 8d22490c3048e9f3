"""Which harness code a process runs: a fingerprint of the package's source files, taken at import.

A run's driver serializes trial specs with the code it imported; a worker started later imports
whatever is on disk then. If the files changed in between (an edit, a `git pull`, a reinstall
during a long run), the two disagree about what the names mean, and a trial can fail in ways
that say nothing about the trial (seen: KeyError) or, worse, succeed under other formulas. So a
worker compares its fingerprint with the driver's before it runs anything, and refuses when they
differ (worker.py, ray_pool.py); the executor then stops dispatching and the run ends with
EXIT_CODE_CHANGED, the refused trials unrecorded, for a rerun to finish with the new code.

The fingerprint is the SHA-256 of the path and contents of every `harness/**/*.py` file a trial's
way through a worker can depend on (about 60 files: 5-20 ms, once per process), taken when this
module is first imported: by a worker while it imports the code it will run, by the driver when
the runner is imported. Left out: what a worker never imports (DRIVER_SIDE: the suite loader,
store, analysis, check, report and CLI, which read or write results in the driver alone), so an
edit of a report module during a run stops nothing; and files other than .py (report templates).
tests/test_code_version.py checks that a worker running a trial imports none of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).resolve().parent
DIGEST_LENGTH = 16  # hex digits kept per file and in all
SHOWN_FILES = 5  # changed files named in a message
# Parts of the package a worker never imports (relative to the package folder).
DRIVER_SIDE = (
    "analysis/",
    "check/",
    "cli/",
    "report/",
    "store/",
    "suite/",
    "export/",
    "runner/runs.py",
    "__main__.py",
    "api.py",
    "listing.py",
    "parity.py",
    "results_folder.py",
)


@dataclass(frozen=True)
class CodeVersion:
    """The fingerprint of the harness package's source as one process read it.

    digest: one hash over every file (the comparison); files: each file's own hash, keyed by its
    path relative to the package's parent ('harness/spec/types.py'), to name what changed.
    """

    digest: str
    files: Mapping[str, str]

    def changes_from(self, other: CodeVersion) -> list[str]:
        """The files that differ between `other` and this version: 'path (changed|added|removed)'."""
        changes = []
        for path in sorted(self.files.keys() | other.files.keys()):
            if path not in other.files:
                changes.append(f"{path} (added)")
            elif path not in self.files:
                changes.append(f"{path} (removed)")
            elif self.files[path] != other.files[path]:
                changes.append(f"{path} (changed)")
        return changes


def read_code_version(package: Path = PACKAGE) -> CodeVersion:
    """The fingerprint of the package's .py files a worker can import (all but DRIVER_SIDE), as on disk now."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        inside = path.relative_to(package).as_posix()
        if "__pycache__" in path.parts or inside.startswith(DRIVER_SIDE):
            continue
        relative = path.relative_to(package.parent).as_posix()
        files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_LENGTH]
    whole = hashlib.sha256("".join(f"{path}\0{digest}\n" for path, digest in files.items()).encode())
    return CodeVersion(whole.hexdigest()[:DIGEST_LENGTH], files)


PROCESS_CODE_VERSION = read_code_version()  # this process's code: read once, as it is imported


def code_mismatch(expected: CodeVersion | None) -> str | None:
    """None when this process runs the code `expected` describes (or nothing is expected), else
    why not: the fingerprints and the first files that differ."""
    if expected is None or expected.digest == PROCESS_CODE_VERSION.digest:
        return None
    changes = PROCESS_CODE_VERSION.changes_from(expected)
    shown = ", ".join(changes[:SHOWN_FILES]) + (
        f" and {len(changes) - SHOWN_FILES} more" if len(changes) > SHOWN_FILES else ""
    )
    return (
        f"the harness code changed on disk during the run: a worker started now reads code {PROCESS_CODE_VERSION.digest}, "
        f"the driver serialized its trials with code {expected.digest} ({shown or 'no file differs by name'})"
    )
