"""The runtime package must work on machines without PyTorch: importing it never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_runtime_does_not_import_torch():
    code = (
        "import sys, ddpm_runtime, ddpm_runtime.samplers, ddpm_runtime.images, ddpm_runtime.files, "
        "ddpm_runtime.timesteps; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_runtime_distribution_does_not_depend_on_torch():
    meta = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in meta["project"]["dependencies"]]
    assert "torch" not in names
    assert set(names) <= {"numpy", "onnxruntime", "onnxruntime-gpu", "pillow", "click", "tqdm"}
