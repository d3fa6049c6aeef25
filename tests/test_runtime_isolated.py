"""The runtime on a machine without PyTorch: a separate venv with only ./runtime (and its test extras)
installed samples from a model the export step wrote, and runs the runtime's own test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CONDITIONAL_ONNX_ENV, TINY_ONNX_ENV

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("DDPM_RUNTIME_VENV", ROOT / ".venv-runtime"))
RUNTIME = f"{ROOT / 'runtime'}[test]"


def runtime_venv() -> Path:
    """Create (once) a venv with ./runtime[test] and its dependencies only; reinstall ./runtime every run.

    ONNX Runtime is pinned to this environment's version, so both compute the same floats."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", RUNTIME, f"onnxruntime=={version('onnxruntime')}"], check=True
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(ROOT / "runtime")],
        check=True,
    )
    return VENV


@pytest.fixture(scope="module")
def venv() -> Path:
    venv = runtime_venv()
    no_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0, "torch must not be importable in the runtime-only venv"
    return venv


@pytest.mark.slow
def test_ddpm_run_samples_without_torch(venv, tiny_onnx, tmp_path):
    out = tmp_path / "isolated"
    proc = subprocess.run(
        [
            str(venv / "bin" / "ddpm-run"),
            "sample",
            str(tiny_onnx),
            "-n",
            "6",
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    images = np.load(out / "samples.npz")["arr_0"]
    assert images.shape == (6, 12, 12, 1) and images.dtype == np.uint8
    assert (out / "grid.png").is_file() and len(list((out / "images").glob("*.png"))) == 6
    assert images.std() > 0

    # The same images as the runtime in this (torch) environment computes in-process.
    from ddpm_runtime.generate import SamplingSettings, generate
    from ddpm_runtime.onnx_model import load_onnx_model

    model = load_onnx_model(tiny_onnx, "cpu")
    expected = generate(
        model, model.metadata, SamplingSettings(num_images=6, batch_size=64, sampler="ddim", steps=10, seed=1)
    )
    assert np.array_equal(images, expected)


@pytest.mark.slow
def test_runtime_test_suite_passes_without_torch(venv, tiny_onnx, tiny_conditional_onnx):
    """tests/runtime/ in the torch-free venv, with the tiny models this session exported."""
    env = {
        **os.environ,
        TINY_ONNX_ENV: str(tiny_onnx),
        TINY_CONDITIONAL_ONNX_ENV: str(tiny_conditional_onnx),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "runtime")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-500:]


@pytest.mark.slow
def test_export_generator_and_its_sampling_need_no_torch(venv, tiny_onnx, tmp_path):
    """ddpm_export.generator needs only onnx and the runtime: in the torch-free venv (./export/src on the
    path, not installed) it writes a generator, and ddpm-run samples it there as it does here."""
    generator = tmp_path / "generator.onnx"
    code = (
        "from ddpm_export.generator import GeneratorRequest, export_generator; "
        f"r = export_generator({str(tiny_onnx)!r}, {str(generator)!r}, GeneratorRequest(sampler='ddpm', steps=5)); "
        "assert r.report.passed"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "export" / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    made = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "sampled"
    args = ["sample", str(generator), "-n", "6", "--seed", "1", "--threads", "1", "--out", str(out)]
    proc = subprocess.run([str(venv / "bin" / "ddpm-run"), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from ddpm_runtime.generate import SamplingSettings, generate
    from ddpm_runtime.generator_model import load_generator

    model = load_generator(generator, "cpu", threads=1)
    expected = generate(model, model.metadata, SamplingSettings(num_images=6, sampler="ddpm", steps=5, seed=1))
    assert np.array_equal(np.load(out / "samples.npz")["arr_0"], expected)
