"""The page's sampling with onnxruntime-web (its WebAssembly backend, under node) against ``ddpm-run``'s
images for the same model, seed, sampler and steps: within one grey level (the two ONNX Runtime
builds' floats differ at about 1e-6, which a pixel on a rounding edge can show)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs and `npm ci` onnxruntime-web


def js_images(model: Path, metadata, **request) -> np.ndarray:
    proc = subprocess.run(
        [NODE, str(HERE / "sample_onnx.mjs"), str(model), json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    image = metadata.image
    shape = (request["count"], image.channels, image.height, image.width)
    return np.asarray(json.loads(proc.stdout), dtype=np.uint8).reshape(shape).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("sampler,steps", [("dpm-solver++-sde", 10), ("ddim", 8)])
def test_unconditional_images_match_ddpm_run(tiny_onnx, sampler, steps):
    model = load_onnx_model(tiny_onnx, "cpu")
    expected = generate(
        model, model.metadata, SamplingSettings(num_images=4, batch_size=4, sampler=sampler, steps=steps, seed=3)
    )
    got = js_images(tiny_onnx, model.metadata, sampler=sampler, steps=steps, seed=3, count=4)
    assert expected.std() > 0
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_guided_images_match_ddpm_run(tiny_conditional_onnx):
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    labels = (2, 0, 1)
    settings = SamplingSettings(
        num_images=3, batch_size=3, sampler="dpm-solver++-sde", steps=6, seed=8, labels=labels, guidance_scale=1.5
    )
    expected = generate(model, model.metadata, settings)
    got = js_images(tiny_conditional_onnx, model.metadata, sampler="dpm-solver++-sde", steps=6, seed=8, count=3,
                    labels=list(labels), guidanceScale=1.5)  # fmt: skip
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
