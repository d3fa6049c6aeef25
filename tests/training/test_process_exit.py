"""A process that joined a process group (a torchrun worker) ends without interpreter finalization,
where gloo's worker threads that DistributedDataParallel keeps alive can abort it (process_exit.py),
and still with the exit code and the output the command gave."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, sys
import ddpm_training.cli as cli
from ddpm_training.train import process_exit
atexit.register(lambda: print("finalized"))
if sys.argv[1] == "joined":
    process_exit.mark_joined()
if sys.argv[2] == "--crash":  # a bug inside the command
    def run_cli(*args):
        raise RuntimeError("a bug")
    cli.run_cli = run_cli
cli.main(sys.argv[2:])
"""


def run(*args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("state", ["joined", "alone"])
def test_a_joined_process_skips_finalization_and_keeps_code_and_output(state, tmp_path):
    missing = tmp_path / "no-such-data"
    failed = run(state, "train", str(missing), "--out", str(tmp_path / "run"))
    assert failed.returncode == 2, failed.stderr
    assert [line for line in failed.stderr.splitlines() if line.startswith("error:")], failed.stderr
    assert str(missing) in failed.stderr
    assert not (tmp_path / "run").exists()

    version = run(state, "--version")
    assert version.returncode == 0, version.stderr
    assert "version" in version.stdout  # printed and flushed before the process left

    finalized = state == "alone"  # atexit handlers run only where the interpreter finalizes
    assert ("finalized" in failed.stdout) == finalized
    assert ("finalized" in version.stdout) == finalized


@pytest.mark.parametrize("state", ["joined", "alone"])
def test_a_bug_in_a_joined_process_still_shows_its_traceback_and_exits_1(state):
    crashed = run(state, "--crash")
    assert crashed.returncode == 1
    assert "Traceback" in crashed.stderr and "RuntimeError: a bug" in crashed.stderr
    assert ("finalized" in crashed.stdout) == (state == "alone")
