"""ddpm-run never loses a user's file: it writes and replaces only grid.png, images/, samples.npz and
samples.csv, replaces those only with --overwrite, and never an input. Every other file in --out is
checked byte for byte after each run."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import error_lines, run_ddpm_run

SAMPLE = ["-n", "2", "--steps", "2"]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` except ddpm-run's own outputs."""
    ours = ("grid.png", "samples.npz", "samples.csv")
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ours and p.relative_to(folder).parts[0] != "images"
    }


@pytest.fixture
def run_folder(tiny_onnx, tmp_path) -> Path:
    """A training run folder: a checkpoint, the model exported next to it, and a note of the user's."""
    folder = tmp_path / "runs" / "x"
    (folder / "samples").mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"weights" * 1000)
    (folder / "samples" / "step-0000500.png").write_bytes(b"grid")
    (folder / "notes.txt").write_text("mine")
    shutil.copy(tiny_onnx, folder / "model.onnx")
    return folder


def one_line_error(result, fragment: str) -> None:
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err and "Usage:" not in result.err
    errors = error_lines(result)
    assert len(errors) == 1 and fragment in errors[0], result.err


def test_sampling_into_a_run_folder_keeps_every_other_file(capsys, run_folder):
    before = digests(run_folder)
    model = run_folder / "model.onnx"
    result = run_ddpm_run(capsys, "sample", model, *SAMPLE, "--out", run_folder)
    assert result.code == 0, result.err
    assert digests(run_folder) == before
    assert np.load(run_folder / "samples.npz")["arr_0"].shape == (2, 12, 12, 1)
    # Again with --overwrite (the command that used to delete the folder): still only our outputs change.
    result = run_ddpm_run(capsys, "sample", model, "-n", "3", "--steps", "2", "--out", run_folder, "--overwrite")
    assert result.code == 0, result.err
    assert digests(run_folder) == before
    assert np.load(run_folder / "samples.npz")["arr_0"].shape == (3, 12, 12, 1)
    assert sorted(p.name for p in (run_folder / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not list(run_folder.glob(".ddpm-run-*")) and not list(run_folder.parent.glob(".*"))


def test_earlier_outputs_need_overwrite(capsys, run_folder):
    model = run_folder / "model.onnx"
    assert run_ddpm_run(capsys, "sample", model, *SAMPLE, "--out", run_folder, "--csv").code == 0
    earlier = {name: (run_folder / name).read_bytes() for name in ("grid.png", "samples.npz", "samples.csv")}
    one_line_error(run_ddpm_run(capsys, "sample", model, *SAMPLE, "--seed", "4", "--out", run_folder), "--overwrite")
    assert {name: (run_folder / name).read_bytes() for name in earlier} == earlier
    # With --overwrite, an earlier output this run does not write (samples.csv) goes too: it would be stale.
    assert run_ddpm_run(capsys, "sample", model, *SAMPLE, "--seed", "4", "--out", run_folder, "--overwrite").code == 0
    assert not (run_folder / "samples.csv").exists() and (run_folder / "grid.png").read_bytes() != earlier["grid.png"]


def test_out_dot_with_overwrite(capsys, run_folder, monkeypatch):
    """--out . used to fail renaming the working folder and leave an empty '..old-*' in its parent."""
    monkeypatch.chdir(run_folder)
    before = digests(run_folder)
    assert run_ddpm_run(capsys, "sample", "model.onnx", *SAMPLE, "--out", ".").code == 0
    result = run_ddpm_run(capsys, "sample", "model.onnx", *SAMPLE, "--out", ".", "--overwrite")
    assert result.code == 0, result.err
    assert digests(run_folder) == before
    assert sorted(p.name for p in run_folder.parent.iterdir()) == ["x"]
    assert not list(run_folder.glob(".*"))


def test_foreign_files_in_images_and_inputs_among_the_outputs_are_refused(capsys, run_folder, tiny_onnx, tmp_path):
    (run_folder / "images").mkdir()
    (run_folder / "images" / "holiday.jpg").write_bytes(b"photo")
    result = run_ddpm_run(capsys, "sample", tiny_onnx, *SAMPLE, "--out", run_folder, "--overwrite")
    one_line_error(result, "holds files ddpm-run did not write (holiday.jpg)")
    assert (run_folder / "images" / "holiday.jpg").read_bytes() == b"photo"

    out = tmp_path / "out"
    out.mkdir()
    model = out / "samples.npz"  # an input under one of the output names
    shutil.copy(tiny_onnx, model)
    before = model.read_bytes()
    one_line_error(run_ddpm_run(capsys, "sample", model, *SAMPLE, "--out", out, "--overwrite"), "replace the input")
    assert model.read_bytes() == before


def test_folder_as_model_and_unknown_choices_are_one_line(capsys, run_folder):
    one_line_error(run_ddpm_run(capsys, "info", run_folder), "is a folder")
    result = run_ddpm_run(capsys, "sample", run_folder / "model.onnx", "--sampler", "euler", "--out", run_folder)
    one_line_error(result, "'euler' is not one of 'ddpm', 'ddim', 'dpm-solver++'")
    assert "--help" in result.err
