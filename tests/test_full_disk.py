"""A full disk is one line, exit code 2, the earlier files whole and no empty folders: for train, export,
sample. On a real small tmpfs where the test can mount one (root), and with an injected ENOSPC at the
write everywhere."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

from cli_helpers import error_lines, run_ddpm, run_ddpm_run

TINY = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2"]
TINY += ["--precision", "fp32", "--memory-format", "contiguous"]
SAMPLE = ["-n", "4", "--steps", "2"]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def one_line(result, *fragments):
    assert result.code == 2, result.err
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs, and fill(keep) that leaves only ``keep`` bytes free on it."""
    mount = tmp_path / "small"
    mount.mkdir()
    can_mount = os.geteuid() == 0 and shutil.which("mount")
    made = can_mount and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode == 0
    if not made:
        pytest.skip("cannot mount a small tmpfs here (needs root); the injected-ENOSPC tests cover the same code")

    def fill(keep: int = 4096) -> None:
        free = shutil.disk_usage(mount).free
        with open(mount / "filler", "ab") as handle:
            handle.write(b"\0" * max(free - keep, 0))

    yield mount, fill
    subprocess.run(["umount", "-l", str(mount)], check=False)


# ---- injected: an OSError(ENOSPC) where the bytes go to disk


def test_injected_enospc_in_training_is_one_line_and_leaves_no_folder(capsys, monkeypatch, idx_dir, tmp_path):
    monkeypatch.setattr("ddpm_runtime.files.os.fsync", enospc)
    out = tmp_path / "runs" / "r"
    line = one_line(run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2"), "no space left")
    assert str(out / "checkpoint.pt") in line
    assert not out.exists()  # not even the empty samples/ folder


def test_injected_enospc_keeps_the_earlier_checkpoint(capsys, monkeypatch, idx_dir, tmp_path):
    out = tmp_path / "r"
    assert run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2").code == 0
    before = (out / "checkpoint.pt").read_bytes()
    monkeypatch.setattr("ddpm_runtime.files.os.fsync", enospc)
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "3")
    one_line(result, str(out / "checkpoint.pt"), "no space left on device")
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_injected_enospc_in_export_keeps_the_earlier_file(capsys, monkeypatch, tiny_trained, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"earlier export")
    monkeypatch.setattr("ddpm_runtime.files.os.fsync", enospc)
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, "--overwrite")
    one_line(result, str(out), "no space left on device")
    assert out.read_bytes() == b"earlier export" and not list(tmp_path.glob(".m.onnx.*"))


def test_injected_enospc_in_sampling_keeps_the_earlier_outputs(capsys, monkeypatch, tiny_onnx, tmp_path):
    out = tmp_path / "s"
    assert run_ddpm_run(capsys, "sample", tiny_onnx, *SAMPLE, "--out", out).code == 0
    before = (out / "samples.npz").read_bytes()
    monkeypatch.setattr("ddpm_runtime.outputs.np.savez", enospc)
    result = run_ddpm_run(capsys, "sample", tiny_onnx, *SAMPLE, "--seed", "3", "--out", out, "--overwrite")
    one_line(result, str(out), "no space left on device")
    assert (out / "samples.npz").read_bytes() == before
    # The finished batches stay for --resume (docs/sampling.md, "Long jobs"): once there is room, it ends the job.
    assert sorted(p.name for p in out.iterdir()) == [".ddpm-run-job", "grid.png", "images", "samples.npz"]
    monkeypatch.undo()
    resumed = run_ddpm_run(capsys, "sample", tiny_onnx, *SAMPLE, "--seed", "3", "--out", out, "--overwrite", "--resume")
    assert resumed.code == 0, resumed.err
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "images", "samples.npz"]


# ---- a real full file system


def test_training_onto_a_full_disk(capsys, small_disk, idx_dir):
    mount, fill = small_disk
    fill(keep=64 * 1024)  # room for the folders, not for a checkpoint (about 240 kB)
    out = mount / "run"
    line = one_line(run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2"), "no space left")
    assert "needs about" in line and "free" in line
    assert not out.exists()


def test_resuming_onto_a_full_disk_is_refused_before_training(capsys, small_disk, idx_dir):
    mount, fill = small_disk
    out = mount / "run"
    assert run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2").code == 0
    before = (out / "checkpoint.pt").read_bytes()
    fill()
    result = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "4")
    line = one_line(result, str(out / "checkpoint.pt"), "no space left on device (needs about")
    assert "compute:" not in result.err  # refused before any training or timing
    assert (out / "checkpoint.pt").read_bytes() == before, line


def test_export_and_sample_onto_a_full_disk(capsys, small_disk, tiny_trained, tiny_onnx):
    mount, fill = small_disk
    fill()
    one_line(run_ddpm(capsys, "export-onnx", tiny_trained, "-o", mount / "m.onnx"), "no space left on device")
    assert not (mount / "m.onnx").exists()
    one_line(run_ddpm_run(capsys, "sample", tiny_onnx, *SAMPLE, "--out", mount / "s"), "no space left on device")
    # what the job had finished before the disk filled stays for --resume, and nothing else
    left = sorted(str(p.relative_to(mount)) for p in mount.rglob("*"))
    assert [p for p in left if not p.startswith("s/.ddpm-run-job")] in (["filler"], ["filler", "s"]), left
