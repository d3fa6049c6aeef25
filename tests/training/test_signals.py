"""SIGTERM and SIGHUP stop `ddpm train` like Ctrl-C: after the current step, with a checkpoint of the step
reached, exit code 128 + the signal; a resume from that checkpoint equals an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from torchrun_helpers import failure, torchrun_env

from ddpm_training.cli.common import PROGRESS_SECONDS_ENV
from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import run_ddpm

ARGS = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2", "--seed", "5"]
ARGS += ["--precision", "fp32", "--memory-format", "contiguous", "--checkpoint-every", "100000", "--log-every", "1"]


class Watched:
    """A process whose stderr is read as it comes, so a test can wait for what it prints."""

    def __init__(self, command, env=None):
        # a progress line after every step: stderr is a pipe here, so the run prints plain lines
        env = {**(env or os.environ), PROGRESS_SECONDS_ENV: "0"}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        self.err = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for chunk in iter(lambda: self.process.stderr.read1(4096), b""):
            self.err += chunk

    def wait_for_steps(self, steps: int, timeout: float = 120.0):
        """Until the progress lines show at least ``steps`` finished steps."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [int(n) for n in re.findall(rb"step (\d+)", self.err)]
            if done and max(done) >= steps:
                return
            assert self.process.poll() is None, self.err.decode()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"no {steps} steps within {timeout} s: {self.err.decode()[-2000:]}")

    def finish(self, timeout: float = 120.0):
        out = self.process.stdout.read()  # small; stderr stays with the reader thread
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.process.returncode, out.decode(), self.err.decode()


def train_command(data, out, *extra):
    return [sys.executable, "-m", "ddpm_training.cli", "train", str(data), "--out", str(out), *ARGS, *extra]


def same_weights(a, b):
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name}"
    assert torch.equal(a["rng"]["train"], b["rng"]["train"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_is_exact(capsys, idx_dir, tmp_path, signum):
    stopped = tmp_path / "stopped"
    run = Watched(train_command(idx_dir, stopped, "--max-steps", "100000"))
    run.wait_for_steps(3)
    run.process.send_signal(signum)
    code, out, err = run.finish()
    name = signal.Signals(signum).name
    assert code == 128 + signum, err[-2000:]
    assert f"{name}: stopping after this step and writing a checkpoint" in err
    assert "Traceback" not in err
    reached = int(re.search(rf"stopped at step (\d+) \({name}, exit code {128 + signum}\)", out).group(1))
    ckpt = load_checkpoint(stopped / "checkpoint.pt")
    assert ckpt["step"] == reached >= 3

    target = str(reached + 4)
    resumed = run_ddpm(capsys, "train", idx_dir, "--resume", stopped / "checkpoint.pt", "--max-steps", target)
    assert resumed.code == 0, resumed.err
    straight = tmp_path / "straight"
    assert run_ddpm(capsys, "train", idx_dir, "--out", straight, *ARGS, "--max-steps", target).code == 0
    same_weights(load_checkpoint(stopped / "checkpoint.pt"), load_checkpoint(straight / "checkpoint.pt"))


def test_a_second_signal_stops_at_once_and_the_checkpoint_stays_whole(idx_dir, tmp_path):
    """Two SIGTERMs back to back, into a run that writes a checkpoint every step: the second stops at
    once ("aborted", 130) unless the first had already ended the run (143); either way the checkpoint
    on disk is a whole one (every file is staged and renamed into place)."""
    out = tmp_path / "run"
    run = Watched(train_command(idx_dir, out, "--max-steps", "100000", "--checkpoint-every", "1"))
    run.wait_for_steps(3)
    run.process.send_signal(signal.SIGTERM)
    run.process.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code in (130, 143), err[-2000:]
    assert "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.pt")["step"] >= 1


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_at_one_step_and_resume_is_exact(idx_dir, tmp_path):
    env = torchrun_env()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]

    def command(out, *extra):
        return [*torchrun, "ddpm_training.cli", "train", str(idx_dir), "--out", str(out), *ARGS, *extra]

    stopped = tmp_path / "stopped"
    run = Watched(command(stopped, "--max-steps", "100000"), env)
    run.wait_for_steps(3)
    run.process.send_signal(signal.SIGTERM)  # torchrun forwards it to both workers
    code, out, err = run.finish()
    assert code != 0
    assert out.count("stopped at step") == 1, (out, err[-3000:])  # rank 0 reports, once
    reached = int(re.search(r"stopped at step (\d+) \(SIGTERM", out).group(1))
    assert load_checkpoint(stopped / "checkpoint.pt")["step"] == reached >= 3

    target = str(reached + 3)
    resume = [*torchrun, "ddpm_training.cli", "train", str(idx_dir), "--resume", str(stopped / "checkpoint.pt")]
    resumed = subprocess.run([*resume, "--max-steps", target], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, failure(resumed)
    straight = tmp_path / "straight"
    result = subprocess.run(command(straight, "--max-steps", target), env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, failure(result)
    same_weights(load_checkpoint(stopped / "checkpoint.pt"), load_checkpoint(straight / "checkpoint.pt"))
