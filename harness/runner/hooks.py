"""A TEST HOOK: make a real trial crash on demand inside its worker. Inert unless the variable is set.

    HARNESS_TEST_CRASH="<hash>:<how>[:<attempts>][,<hash>:<how>...]"

The worker running trial <hash> crashes right after it reports 'started' (so mid-trial, with
the framework loaded and the timeout clock running), on its first <attempts> attempts (default:
every attempt). <how>:
    sigkill   the process kills itself with SIGKILL (what the kernel's out-of-memory killer does)
    segfault  a read of address 0 through ctypes: a real segmentation fault in native code
    oom       the address space is capped a little above its current size (setrlimit RLIMIT_AS),
              then 1 GiB is allocated: a real MemoryError, as from a trial too big for memory
    raise     a plain RuntimeError (an ordinary failing trial; the worker survives)

Workers inherit the variable from the driver's environment (local) or receive it through the
task's runtime_env (Ray). The fault tests in tests/test_faults.py use it; nothing else should.

Why this test code stays in the package: the crash must happen inside a real worker process, a
spawned local process or a Ray actor (possibly on another node), which imports only `harness`:
tests/ is not on its import path, and a Ray worker has no copy of it. Injecting a test module by
name would need both; this module is small, imports nothing heavy, and costs a worker one
environment lookup per trial when the variable is unset.
"""

from __future__ import annotations

import ctypes
import os
import signal

VARIABLE = "HARNESS_TEST_CRASH"
HOW = ("sigkill", "segfault", "oom", "raise")
OOM_HEADROOM_BYTES = 64 * 2**20  # room left above the current address space, so the worker can still report


def planned_crash(trial_hash: str, attempt: int, setting: str | None = None) -> str | None:
    """The crash planned for this trial's attempt (1-based), or None.

    Raises:
        ValueError: a malformed setting (a test bug, never user input).
    """
    setting = os.environ.get(VARIABLE, "") if setting is None else setting
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        fields = entry.split(":")
        if len(fields) not in (2, 3) or fields[1] not in HOW:
            raise ValueError(f"{VARIABLE}: expected <hash>:<how>[:<attempts>] with how in {HOW}, got {entry!r}")
        if fields[0] == trial_hash and (len(fields) == 2 or attempt <= int(fields[2])):
            return fields[1]
    return None


def crash_if_planned(trial_hash: str, attempt: int) -> None:
    """Carry out the crash planned for this trial and attempt, if any (see the module docstring)."""
    how = planned_crash(trial_hash, attempt)
    if how is None:
        return
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segfault":
        ctypes.string_at(0)  # dereferences NULL: SIGSEGV
    elif how == "oom":
        import resource  # Unix only: imported where it is needed

        with open("/proc/self/statm", encoding="ascii") as handle:
            current = int(handle.read().split()[0]) * resource.getpagesize()  # virtual size now, bytes
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (current + OOM_HEADROOM_BYTES, hard))
        bytearray(2**30)  # MemoryError: past the cap
    raise RuntimeError(f"{VARIABLE}: planned failure of trial {trial_hash} (attempt {attempt})")
