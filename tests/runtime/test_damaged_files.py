"""Damaged files are found where they are read: a finished batch of a stopped job that was cut short or
has a flipped byte is sampled again on --resume (the outputs stay those of one uninterrupted run), a
damaged batch is refused by merge, and a model file whose weights changed is one line."""

from __future__ import annotations

import json

import pytest

from ddpm_runtime.jobs import JOB_FOLDER

from cli_helpers import error_lines, run_ddpm_run

JOB = ["-n", "10", "--batch-size", "3", "--steps", "3", "--seed", "4"]  # 4 batches: 3, 3, 3, 1 images


def files_of(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stopped_job(capsys, monkeypatch, model, out, after: int):
    """A job killed after ``after`` finished batches, as a scheduler's time limit stops one."""
    import ddpm_runtime.jobs as jobs

    save, calls = jobs.SamplingJob.save, []

    def save_then_die(self, index, images):
        save(self, index, images)
        calls.append(index)
        if len(calls) == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs.SamplingJob, "save", save_then_die)
    assert run_ddpm_run(capsys, "sample", model, *JOB, "--out", out).code == 130
    monkeypatch.setattr(jobs.SamplingJob, "save", save)


def flip(path, offset_from_end: int = 5) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["cut to 100 bytes", "one byte flipped", "no digest recorded"])
def test_a_damaged_batch_is_sampled_again_on_resume(capsys, monkeypatch, tiny_onnx, tmp_path, damage):
    whole = tmp_path / "whole"
    assert run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", whole).code == 0
    out = tmp_path / "stopped"
    stopped_job(capsys, monkeypatch, tiny_onnx, out, after=3)
    batch = out / JOB_FOLDER / "batch-000001.npy"
    if damage == "cut to 100 bytes":
        batch.write_bytes(batch.read_bytes()[:100])
    elif damage == "one byte flipped":
        flip(batch)  # a pixel value: the file still loads, with the right shape and dtype
    else:  # killed between the batch file and its line in job.json
        spec = json.loads((out / JOB_FOLDER / "job.json").read_text())
        del spec["batches"]["1"]
        (out / JOB_FOLDER / "job.json").write_text(json.dumps(spec))
    resumed = run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--out", out, "--resume")
    assert resumed.code == 0, resumed.err
    notes = [line for line in resumed.err.splitlines() if line.startswith("batch 2: ")]
    assert len(notes) == 1 and notes[0].endswith("; sampling it again"), resumed.err
    assert "2 already done" in resumed.err
    assert files_of(out) == files_of(whole)


def test_merge_refuses_a_damaged_batch(capsys, tiny_onnx, tmp_path):
    shards = []
    for k in (1, 2):
        folder = tmp_path / f"shard-{k}"
        assert run_ddpm_run(capsys, "sample", tiny_onnx, *JOB, "--shard", f"{k}/2", "--out", folder).code == 0
        shards.append(folder)
    flip(shards[1] / JOB_FOLDER / "batch-000003.npy")
    merged = run_ddpm_run(capsys, "merge", *shards, "--out", tmp_path / "merged")
    lines = error_lines(merged)
    assert merged.code == 2 and len(lines) == 1 and "batch-000003.npy: damaged" in lines[0], merged.err
    assert not (tmp_path / "merged" / "samples.npz").exists()


def test_a_model_whose_weights_changed_is_one_line(capsys, tiny_onnx, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(tiny_onnx)
    initializer = max(model.graph.initializer, key=lambda i: len(numpy_helper.to_array(i).ravel()))
    data = bytearray(tiny_onnx.read_bytes())
    raw = initializer.raw_data
    at = data.find(raw)
    assert at >= 0 and len(raw) > 16
    data[at + len(raw) // 2] ^= 0x01  # one weight's low mantissa bit: the file is still a valid model
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(bytes(data))
    for command in (["sample", damaged, "-n", "2", "--out", tmp_path / "s"], ["info", damaged]):
        result = run_ddpm_run(capsys, *command)
        lines = error_lines(result)
        assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.err, result.err
        assert "its weights do not match the digest in its metadata: damaged" in lines[0]
    assert run_ddpm_run(capsys, "info", tiny_onnx).code == 0
