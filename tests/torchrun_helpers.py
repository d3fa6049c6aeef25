"""What a failed ``torchrun`` says, arranged so that a CI log that keeps only the start and end of a
long message still shows why: the lines naming the failure first, then the end of stderr."""

from __future__ import annotations

import os
import re
import subprocess

WHY = re.compile(r"terminate|abort|Abort|Signal|Error|error|Exception|exitcode|rank|gloo|Killed|core dumped|File \"")


def torchrun_env() -> dict[str, str]:
    """One thread per process (two share the two cores), and Python's fault handler on, so that a worker
    killed by a signal (SIGABRT from gloo's C++ side, say) prints the Python stack it was in."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}


def failure(proc: subprocess.CompletedProcess, tail: int = 1500) -> str:
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else (proc.stderr or "")
    lines = [line.strip()[:160] for line in err.splitlines() if WHY.search(line)]
    return "\n".join(
        [f"exit code {proc.returncode}; lines that say why:", *lines[:40], "--- stderr tail:", err[-tail:]]
    )


def aborted(proc: subprocess.CompletedProcess) -> bool:
    """A worker killed by SIGABRT, as torchrun reports it: the C++ side (gloo) gave up, not our code,
    which stops with an exit code and a line."""
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else (proc.stderr or "")
    return proc.returncode != 0 and "Signal 6 (SIGABRT)" in err


def run_torchrun(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a torchrun resume, once more if a worker died by SIGABRT: a rare abort on
    gloo's C++ side under a loaded machine, which a test of our own code should not turn red. Only for
    a command that can run again as it is: a resume goes on from the same checkpoint (written
    atomically), or ends at once if the first attempt reached its target before it aborted. The retry
    is named in a warning with the first attempt's lines, so it stays visible; a second abort, or any
    other failure, is the test's."""
    import warnings

    proc = subprocess.run(command, capture_output=True, timeout=300, **kwargs)
    if aborted(proc):
        warnings.warn(f"torchrun worker aborted, ran again:\n{failure(proc, tail=600)}", stacklevel=2)
        proc = subprocess.run(command, capture_output=True, timeout=300, **kwargs)
    return proc
