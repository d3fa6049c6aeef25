"""Long sampling jobs: a stopped job resumes from its finished batches, a job split into shards merges,
and both end with exactly the files one uninterrupted run writes; progress lines without a terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm_runtime.jobs import JOB_FOLDER, Shard

from cli_helpers import error_lines, run_ddpm_run

JOB = ["-n", "10", "--batch-size", "3", "--steps", "3", "--seed", "4"]  # 4 batches: 3, 3, 3, 1 images


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def uninterrupted(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "whole"
    result = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", out)
    assert result.code == 0, result.err
    assert not (out / JOB_FOLDER).exists()  # a finished job leaves only its outputs
    return files_of(out)


def test_a_stopped_job_resumes_to_the_files_of_one_run(capsys, monkeypatch, tiny_onnx, tmp_path, uninterrupted):
    import ddpm_runtime.jobs as jobs

    out = tmp_path / "stopped"
    save = jobs.SamplingJob.save
    calls = []

    def save_then_die(self, index, images):  # the job is killed after its second finished batch
        save(self, index, images)
        calls.append(index)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs.SamplingJob, "save", save_then_die)
    assert run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", out).code == 130
    monkeypatch.setattr(jobs.SamplingJob, "save", save)
    assert sorted(p.name for p in (out / JOB_FOLDER).iterdir()) == ["batch-000000.npy", "batch-000001.npy", "job.json"]
    assert not (out / "samples.npz").exists()

    again = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", out)
    assert again.code == 2 and "holds a stopped sampling job (2 of 4 batches done); pass --resume" in again.err
    other = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--seed", "5", "--out", out, "--resume")
    assert other.code == 2 and "its stopped job differs in seed" in error_lines(other)[0]

    resumed = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", out, "--resume")
    assert resumed.code == 0, resumed.err
    assert "2 already done" in resumed.err
    assert files_of(out) == uninterrupted


def test_three_shards_merge_to_the_files_of_one_run(capsys, tiny_onnx, tmp_path, uninterrupted):
    shards = []
    for k in (3, 1, 2):  # any order
        folder = tmp_path / f"shard-{k}"
        result = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--shard", f"{k}/3", "--out", folder)
        assert result.code == 0, result.err
        assert f"shard {k}/3 done" in result.out and not (folder / "samples.npz").exists()
        shards.append(folder)
    incomplete = run_ddpm_run(capsys, "merge", *shards[:2], "--out", tmp_path / "merged")
    assert incomplete.code == 2 and "missing shard(s) 2" in error_lines(incomplete)[0]
    merged = run_ddpm_run(capsys, "merge", *shards, "--out", tmp_path / "merged")
    assert merged.code == 0, merged.err
    assert files_of(tmp_path / "merged") == uninterrupted
    assert not any((folder / JOB_FOLDER).exists() for folder in shards)


def test_shards_of_other_jobs_do_not_merge(capsys, tiny_onnx, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--shard", "1/2", "--out", a).code == 0
    assert run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--steps", "2", "--shard", "2/2", "--out", b).code == 0
    result = run_ddpm_run(capsys, "merge", a, b, "--out", tmp_path / "m")
    assert result.code == 2 and "is a shard of another job" in error_lines(result)[0] and "steps" in result.err


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "1/0"])
def test_bad_shards_are_refused(capsys, tiny_onnx, tmp_path, text):
    result = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--shard", text, "--out", tmp_path / "s")
    assert result.code == 2 and "--shard" in error_lines(result)[0]
    assert not (tmp_path / "s").exists()


def test_shard_blocks_cover_every_batch_once():
    for total in (1, 4, 7, 100):
        for count in (1, 2, 3, 7):
            blocks = [list(Shard(k, count).batches(total)) for k in range(1, count + 1)]
            assert [b for block in blocks for b in block] == list(range(total))


def test_progress_without_a_terminal_is_a_line_per_batch_and_sigterm_keeps_the_batches(tiny_onnx, tmp_path):
    out = tmp_path / "job"
    command = [sys.executable, "-m", "ddpm_runtime.cli", "sample", str(tiny_onnx), "-n", "60", "--batch-size", "2"]
    command += ["--steps", "20", "--out", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("batch 3/30"):
            process.send_signal(signal.SIGTERM)
            break
    process.wait(timeout=60)
    batches = [line.split(":")[0] for line in lines if line.startswith("batch")]
    assert batches == ["batch 1/30", "batch 2/30", "batch 3/30"]
    assert "images," in lines[-1] and "elapsed, about" in lines[-1] and "left" in lines[-1]
    assert process.returncode == -signal.SIGTERM
    finished = [p.name for p in (out / JOB_FOLDER).iterdir() if p.name.startswith("batch-")]
    assert len(finished) >= 3  # kept for --resume
    assert os.path.exists(out / JOB_FOLDER / "job.json")
