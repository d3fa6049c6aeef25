"""`ddpm-run web`'s refusals: one line and exit code 2, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORT = ROOT / "node_modules" / "onnxruntime-web"


def ddpm_run_web(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from ddpm_runtime.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, "web", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_model_and_missing_package_are_one_line(tiny_onnx, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01junk")
    proc = ddpm_run_web(str(garbage), "--out", str(tmp_path / "a"), "--onnxruntime-web", str(ORT), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(garbage) in proc.stderr
    # tmp_path has no node_modules above it: the error says how to get onnxruntime-web
    proc = ddpm_run_web(str(tiny_onnx), "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 2 and "npm install onnxruntime-web" in proc.stderr and proc.stderr.count("\n") == 1
    proc = ddpm_run_web(str(tiny_onnx), "--out", str(tmp_path / "c"), "--onnxruntime-web", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "not an onnxruntime-web package folder" in proc.stderr
    assert not any((tmp_path / name).exists() for name in "abc")


def test_existing_folder_is_kept_without_overwrite(tiny_onnx, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    proc = ddpm_run_web(str(tiny_onnx), "--out", str(out), "--onnxruntime-web", str(ORT), cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (out / "mine.txt").read_text() == "keep"
    proc = ddpm_run_web(str(tiny_onnx), "--out", str(out), "--onnxruntime-web", str(ORT), "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "index.html").is_file() and not (out / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_default_export_gets_a_note_about_webgpu(tiny_onnx, tmp_path):
    proc = ddpm_run_web(str(tiny_onnx), "--out", str(tmp_path / "site"), "--onnxruntime-web", str(ORT), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "opset 23" in notes[0] and "ddpm export-onnx --target web" in notes[0]
    assert "ddpm-run serve" in proc.stdout
