"""The page reads a model's ``ddpm`` metadata from the ONNX file itself (web/onnx_metadata.js): the very
document ddpm_runtime reads, and one readable line for a file it cannot use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import onnx

from ddpm_runtime.onnx_model import load_onnx_model

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing


def read_js(path: Path) -> dict:
    proc = subprocess.run(
        [NODE, str(HERE / "read_metadata.mjs"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_metadata_is_the_runtimes(tiny_onnx, tiny_conditional_onnx):
    for path in (tiny_onnx, tiny_conditional_onnx):
        expected = json.loads(load_onnx_model(path, "cpu").metadata.to_json())
        assert read_js(path)["metadata"] == expected


def test_bad_files_get_one_line(tiny_onnx, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 40)
    assert read_js(garbage)["error"].startswith(f"{garbage}: not an ONNX model")
    proto = onnx.load(tiny_onnx)
    entry = next(p for p in proto.metadata_props if p.key == "ddpm")
    document = json.loads(entry.value)
    entry.value = json.dumps({**document, "format_version": 99})
    future = tmp_path / "future.onnx"
    onnx.save(proto, future)
    error = read_js(future)["error"]
    assert error == f"{future}: metadata format version 99 is not supported (this page reads 1)"
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    assert "has no 'ddpm' metadata" in read_js(bare)["error"]
