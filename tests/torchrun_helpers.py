"""What a failed ``torchrun`` says, arranged so that a CI log that keeps only the start and end of a
long message still shows why: the lines naming the failure first, then the end of stderr."""

from __future__ import annotations

import os
import re
import subprocess

WHY = re.compile(
    r"terminate|abort|Abort|Signal|Error|error|Exception|exitcode|rank|gloo|Killed|core dumped"
    r"|File \"|Thread|Python frame"
)


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
