"""onnxruntime-web's WebGPU backend in Debian's chromium, which offers SwiftShader's software Vulkan as its
adapter where the machine has no GPU (so this checks which kernels run and what they compute, not speed).

Why `ddpm export-onnx --target web` exists: at opset 23 the WebGPU backend has no kernel for Conv,
Attention and the other ops of opsets 22-23, so those nodes run on the CPU; at the web target's opset 21
every node but the shape arithmetic has one, and the page's images on WebGPU are ddpm-run's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from page_helpers import NODE, build, drive

from ddpm_export.onnx_export import TARGET_OPSETS, export_onnx
from ddpm_export.source import load_source
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

HERE = Path(__file__).parent
# Ops that compute shapes from shapes (the dynamic batch): ONNX Runtime keeps them on the CPU by design.
SHAPE_OPS = {"Concat", "Gather", "Reshape", "Shape", "Slice", "Squeeze", "Unsqueeze"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def web_onnx(tiny_trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web") / "tiny-web.onnx"
    assert export_onnx(load_source(tiny_trained), out, target="web").report.passed
    return out


def probe(model: Path, folder: Path, serve_site, backend: str, x: np.ndarray, t: np.ndarray) -> dict:
    site = build(model, folder)
    (site / "probe.html").write_text("<!doctype html><title>probe</title>")  # a page without the app
    request = json.dumps({"x": x.ravel().tolist(), "shape": list(x.shape), "t": t.tolist()})
    url = serve_site(site).replace("index.html", "probe.html")
    proc = subprocess.run(
        [NODE, str(HERE / "webgpu_ops.mjs"), url, backend, request], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    if result["adapter"] is None:
        pytest.skip("this chromium offers no WebGPU adapter")
    return result


def test_web_target_runs_every_compute_op_on_webgpu(tiny_onnx, web_onnx, tmp_path, serve):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 12, 12)).astype(np.float32)
    t = np.array([0.0, 500.0, 999.0], np.float32)
    default = probe(tiny_onnx, tmp_path / "default", serve, "webgpu", x, t)
    web = probe(web_onnx, tmp_path / "web", serve, "webgpu", x, t)
    assert "Conv" in default["noKernel"], default["noKernel"]  # opset 23: the convolutions fall back
    assert set(web["noKernel"]) <= SHAPE_OPS, web["noKernel"]
    assert load_onnx_model(web_onnx, "cpu").metadata.exporter["opset"] == TARGET_OPSETS["web"]
    expected = load_onnx_model(tiny_onnx, "cpu")(x, t)  # ONNX Runtime (CPU) on the default export
    for result in (default, web):
        got = np.asarray(result["eps"], np.float32).reshape(expected.shape)
        assert np.abs(got - expected).max() <= 1e-4  # the export parity gate's tolerance


def test_page_on_webgpu_draws_ddpm_runs_images(web_onnx, tmp_path, serve):
    site = build(web_onnx, tmp_path / "site")
    fields = {"count": 4, "seed": 3, "steps": 6, "backend": "webgpu"}
    result = drive(serve(site), generate=True, webgpu=True, fields=fields)
    if "webgpu" not in result["backends"]:
        pytest.skip("this chromium offers no WebGPU adapter")
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done") and status["backend"] == "webgpu", status
    model = load_onnx_model(web_onnx, "cpu")
    expected = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler="dpm-solver++-sde", steps=6, seed=3),
    )
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(expected.shape[0], 1, 12, 12).transpose(0, 2, 3, 1)
    assert expected.std() > 0
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def web_fp16(web_onnx, tmp_path_factory) -> Path:
    from ddpm_export.quantize import quantize_model

    half = tmp_path_factory.mktemp("fp16") / "web-fp16.onnx"
    quantize_model(web_onnx, half, mode="fp16")
    return half


def fp16_page_gate(web_onnx, web_fp16, tmp_path, serve, backend: str) -> dict:
    """The page draws 4 images from the fp16 file on ``backend``; returns the page's result, with
    ``difference``: the mean pixel difference from ddpm-run's images (CPU) of the float32 file."""
    fields = {"count": 4, "seed": 3, "steps": 6, "backend": backend}
    result = drive(serve(build(web_fp16, tmp_path / backend)), generate=True, webgpu=True, fields=fields)
    if backend not in result["backends"]:
        return result
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done") and status["backend"] == backend, status
    model = load_onnx_model(web_onnx, "cpu")
    settings = SamplingSettings(num_images=4, batch_size=16, sampler="dpm-solver++-sde", steps=6, seed=3)
    expected = generate(model, model.metadata, settings)
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(4, 1, 12, 12).transpose(0, 2, 3, 1)
    return {**result, "difference": float(np.abs(got.astype(int) - expected.astype(int)).mean())}


def test_fp16_file_on_the_page_passes_the_fp16_image_gate(web_onnx, web_fp16, tmp_path, serve):
    """`ddpm quantize --mode fp16` of the web export, drawn by the page on WebAssembly: its images
    against ddpm-run's (CPU) from the float32 file for the same noise, by the fp16 gate's measure."""
    from ddpm_export.quantize import DEFAULT_MAX_IMAGE_DIFF

    result = fp16_page_gate(web_onnx, web_fp16, tmp_path, serve, "wasm")
    assert "fp16 model (quantized)" in result["meta"]
    assert result["difference"] <= DEFAULT_MAX_IMAGE_DIFF["fp16"], result["difference"]


def test_fp16_file_is_offered_webgpu_only_with_shader_f16(web_onnx, web_fp16, tmp_path, serve):
    """On WebGPU a float16 model needs the adapter's shader-f16 feature: without it (SwiftShader here)
    the page offers no WebGPU for the file and says why, rather than failing on every node; with it,
    the images pass the fp16 gate."""
    from ddpm_export.quantize import DEFAULT_MAX_IMAGE_DIFF

    result = fp16_page_gate(web_onnx, web_fp16, tmp_path, serve, "webgpu")
    if "webgpu" in result["backends"]:
        assert result["difference"] <= DEFAULT_MAX_IMAGE_DIFF["fp16"], result["difference"]
        return
    if "shader-f16" not in result["backendNote"]:
        pytest.skip("this chromium offers no WebGPU adapter")
    assert result["consoleErrors"] == [] and result["status"].get("ready")  # WebAssembly still offered
