"""One process per run folder, checkpoints checked when read, the previous one kept, and a full disk
under torchrun: what happens when two runs share a folder or a file is damaged."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torchrun_helpers import failure, torchrun_env

from ddpm_training.cli.common import PROGRESS_SECONDS_ENV
from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import error_lines, run_ddpm

TINY = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2"]
TINY += ["--precision", "fp32", "--memory-format", "contiguous"]
HERE = Path(__file__).resolve().parent


def ddpm(*args) -> list[str]:
    return [sys.executable, "-m", "ddpm_training.cli", *map(str, args)]


def start(command, **env) -> subprocess.Popen:
    environment = {**os.environ, PROGRESS_SECONDS_ENV: "0", **env}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def one_runs_one_is_refused(first: subprocess.Popen, second: subprocess.Popen, folder: Path) -> subprocess.Popen:
    """Of two runs started together into ``folder`` (both with no end): the first to end is refused,
    with one line naming the folder and the other's pid, exit 2; the other, still running, stops at
    SIGTERM with its checkpoint, exit 143. Returns the one that ran."""
    deadline = time.monotonic() + 120
    while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    _, err = loser.communicate(timeout=60)
    assert winner.poll() is None, winner.communicate()[1][-2000:]
    while not (line := winner.stderr.readline()).startswith("step ") and line:  # a step done, then stop it
        pass
    winner.send_signal(signal.SIGTERM)
    _, winner_err = winner.communicate(timeout=120)
    assert (loser.returncode, winner.returncode) == (2, 128 + signal.SIGTERM), (err[-1500:], winner_err[-1500:])
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(folder) in lines[0] and f"in use by another process (pid {winner.pid}, started" in lines[0]
    return winner


def test_two_trainings_into_one_folder(idx_dir, tmp_path):
    out = tmp_path / "same"
    command = ddpm("train", idx_dir, "--out", out, *TINY, "--max-steps", "1000000", "--seed", "7")
    first = start(command)
    time.sleep(0.5)  # a double-submitted job: the same command half a second later
    second = start(command)
    one_runs_one_is_refused(first, second, out)
    checkpoint = load_checkpoint(out / "checkpoint.pt")  # whole: its digest holds
    rows = (out / "loss.csv").read_text().splitlines()[1:]
    assert checkpoint["step"] > 0 and int(rows[-1].split(",")[0]) == checkpoint["step"]


def test_two_distillations_into_one_folder(teacher, tmp_path):
    out = tmp_path / "student"
    args = ["--max-steps", "1000000", "--batch-size", "8", "--calls", "2", "--teacher-calls", "4"]
    command = ddpm("distill", teacher, "--out", out, *args, "--precision", "fp32", "--memory-format", "contiguous")
    one_runs_one_is_refused(start(command), start(command), out)
    assert load_checkpoint(out / "checkpoint.pt")["step"] > 0


def test_two_sampling_jobs_into_one_folder(tiny_onnx, tmp_path):
    import numpy as np

    out = tmp_path / "samples"
    command = [sys.executable, "-m", "ddpm_runtime.cli", "sample", str(tiny_onnx), "-n", "600", "--out", str(out)]
    first, second = start(command), start(command)
    results = {p: p.communicate(timeout=300) for p in (first, second)}
    assert sorted(p.returncode for p in results) == [0, 2], [r[1][-1500:] for r in results.values()]
    loser = next(p for p in results if p.returncode == 2)
    winner = next(p for p in results if p.returncode == 0)
    lines = [line for line in results[loser][1].splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"{out}: in use by another process (pid {winner.pid}, started" in lines[0]
    assert np.load(out / "samples.npz")["arr_0"].shape[0] == 600  # the survivor's outputs, whole
    assert not (out / ".ddpm.lock").exists() and not (out / ".ddpm-run-job").exists()


def test_kill_9_leaves_no_stale_lock(capsys, idx_dir, tmp_path):
    out = tmp_path / "killed"
    run = start(ddpm("train", idx_dir, "--out", out, *TINY, "--max-steps", "100000", "--checkpoint-every", "2"))
    deadline = time.monotonic() + 120
    seen = ""
    while "(checkpoint written)" not in seen and time.monotonic() < deadline:
        seen += run.stderr.readline()
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    step = load_checkpoint(out / "checkpoint.pt")["step"]
    result = run_ddpm(capsys, "train", "--resume", out / "checkpoint.pt", idx_dir, "--max-steps", step + 2)
    assert result.code == 0, result.err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == step + 2


@pytest.fixture
def teacher(tmp_path):
    from data_helpers import make_checkpoint

    path = tmp_path / "teacher.pt"
    make_checkpoint(path, "tiny", 12, steps=2)
    return path


def flip_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip one byte in the middle of ``tensor``'s bytes where the file stores them."""
    data = bytearray(path.read_bytes())
    needle = tensor.contiguous().numpy().tobytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, "the tensor's bytes must occur once"
    data[at + len(needle) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def trained(capsys, idx_dir, out: Path, steps: int, *extra) -> dict:
    result = run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", steps, *extra)
    assert result.code == 0, result.err
    return load_checkpoint(out / "checkpoint.pt")


@pytest.mark.parametrize("part", ["model weight", "optimizer state", "rng state"])
def test_a_flipped_byte_in_a_checkpoint_is_one_line_and_names_the_previous_one(capsys, idx_dir, tmp_path, part):
    out = tmp_path / "run"
    checkpoint = trained(capsys, idx_dir, out, 4, "--checkpoint-every", "2")
    assert sorted(p.name for p in out.glob("checkpoint*.pt")) == ["checkpoint-0000002.pt", "checkpoint.pt"]
    tensor = {
        "model weight": max(checkpoint["model"].values(), key=torch.Tensor.numel),
        "optimizer state": checkpoint["optimizer"]["state"][0]["exp_avg"],
        "rng state": checkpoint["rng"]["train"],
    }[part]
    flip_inside(out / "checkpoint.pt", tensor)
    for command in (["train", idx_dir, "--resume", out / "checkpoint.pt"], ["export-onnx", out / "checkpoint.pt"]):
        result = run_ddpm(capsys, *command, *(["-o", tmp_path / "m.onnx"] if command[0] == "export-onnx" else []))
        lines = error_lines(result)
        assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.err, result.err
        assert "checkpoint.pt: content does not match its digest: damaged" in lines[0]
        assert "the previous checkpoint is" in lines[0] and "checkpoint-0000002.pt" in lines[0]
    assert not (tmp_path / "m.onnx").exists()
    result = run_ddpm(capsys, "distill", out / "checkpoint.pt", "--out", tmp_path / "s", "--max-steps", "1")
    assert result.code == 2 and "damaged" in result.err
    # the run goes on from the checkpoint it kept, in its own folder
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint-0000002.pt", "--max-steps", "6")
    assert result.code == 0, result.err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 6


def test_keep_last_keeps_the_newest_and_removes_the_rest(capsys, idx_dir, tmp_path):
    trained(capsys, idx_dir, tmp_path / "two", 6, "--checkpoint-every", "2")
    assert sorted(p.name for p in (tmp_path / "two").glob("checkpoint*.pt")) == [
        "checkpoint-0000004.pt",
        "checkpoint.pt",
    ]
    trained(capsys, idx_dir, tmp_path / "three", 6, "--checkpoint-every", "2", "--keep-last", "3")
    names = sorted(p.name for p in (tmp_path / "three").glob("checkpoint*.pt"))
    assert names == ["checkpoint-0000002.pt", "checkpoint-0000004.pt", "checkpoint.pt"]
    trained(capsys, idx_dir, tmp_path / "one", 6, "--checkpoint-every", "2", "--keep-last", "1")
    assert sorted(p.name for p in (tmp_path / "one").glob("checkpoint*.pt")) == ["checkpoint.pt"]
    kept = load_checkpoint(tmp_path / "two" / "checkpoint-0000004.pt")
    assert kept["step"] == 4  # the kept file is that step's checkpoint, whole


def test_a_resume_keeps_the_checkpoint_it_started_from(capsys, idx_dir, tmp_path):
    out = tmp_path / "run"
    trained(capsys, idx_dir, out, 2)
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "4")
    assert result.code == 0, result.err
    assert load_checkpoint(out / "checkpoint-0000002.pt")["step"] == 2


@pytest.mark.slow
def test_a_full_disk_on_rank_0_under_torchrun_is_one_line_on_every_rank(idx_dir, tmp_path):
    out = tmp_path / "ddp"
    env = torchrun_env()
    logs = tmp_path / "logs"  # each rank's stderr in its own file (torchrun's own report of the exit aside)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    torchrun += ["--log-dir", str(logs), "--redirects", "3"]
    script = HERE / "enospc_rank0.py"  # `ddpm train` with rank 0's second checkpoint write failing
    args = ["train", str(idx_dir), "--out", str(out), *TINY, "--max-steps", "6", "--checkpoint-every", "2"]
    result = subprocess.run([*torchrun, str(script), *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    ranks = sorted(logs.rglob("stderr.log"))
    assert len(ranks) == 2, failure(result)
    for log in ranks:
        text = log.read_text()
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in text and "gloo" not in text.lower(), text[-3000:]
        assert re.search(r"checkpoint\.pt: no space left on device", errors[0]), errors
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2  # the checkpoint before it, whole
