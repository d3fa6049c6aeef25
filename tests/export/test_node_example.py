"""examples/node/generate.mjs: a generator file drawn from JavaScript with onnxruntime-node (npm, pinned in
package-lock.json), no sampler code; its images against ddpm-run's sampler for the noise it drew."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from ddpm_export.generator import export_generator
from ddpm_export.generator.build import GeneratorRequest
from ddpm_export.generator.gate import MIN_EQUAL, reference_images
from ddpm_runtime.generator_model import load_generator
from ddpm_runtime.images import make_grid
from ddpm_runtime.onnx_model import load_onnx_model

NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs and `npm ci` onnxruntime-node
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node" / "generate.mjs"


def run_example(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([NODE, str(EXAMPLE), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_node_example_draws_ddpm_runs_images_for_its_noise(tiny_onnx, tmp_path):
    generator_path = tmp_path / "generator.onnx"
    export_generator(tiny_onnx, generator_path, GeneratorRequest(sampler="dpm-solver++-sde", steps=4))
    count = 16
    run_example(generator_path, tmp_path / "grid.png", count, 7, 0, tmp_path / "noise.bin")
    generator = load_generator(generator_path, "cpu", threads=1)
    image, draws = generator.metadata.image, generator.metadata.generator.noise_draws
    noise = np.fromfile(tmp_path / "noise.bin", dtype=np.float32)
    shape = (count, image.channels, image.height, image.width)
    assert noise.size == (1 + draws) * int(np.prod(shape)) and draws == 3
    x_T, step_noise = noise[: np.prod(shape)].reshape(shape), noise[np.prod(shape) :].reshape((draws, *shape))
    assert abs(float(x_T.std()) - 1) < 0.05 and abs(float(x_T.mean())) < 0.05  # Gaussian noise of its own
    expected = reference_images(load_onnx_model(tiny_onnx, "cpu", threads=1), generator, x_T, step_noise, None, None)
    drawn = np.asarray(Image.open(tmp_path / "grid.png"))
    grid = make_grid(expected)[..., 0]
    assert drawn.shape == grid.shape
    difference = np.abs(drawn.astype(np.int16) - grid)
    assert np.mean(difference == 0) >= MIN_EQUAL and difference.max() <= 1
    # another seed, other noise, other images
    run_example(generator_path, tmp_path / "other.png", count, 8)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "other.png")), drawn)


def test_node_example_draws_a_class_of_a_conditional_generator(tiny_conditional_onnx, tmp_path):
    generator_path = tmp_path / "conditional.onnx"
    export_generator(tiny_conditional_onnx, generator_path, GeneratorRequest(sampler="ddim", steps=3))
    run_example(generator_path, tmp_path / "class1.png", 4, 0, 1, tmp_path / "noise.bin")
    generator = load_generator(generator_path, "cpu", threads=1)
    x_T = np.fromfile(tmp_path / "noise.bin", dtype=np.float32).reshape(4, 1, 12, 12)
    labels = np.ones(4, dtype=np.int64)
    model = load_onnx_model(tiny_conditional_onnx, "cpu", threads=1)
    expected = reference_images(model, generator, x_T, None, labels, generator.metadata.generator.guidance_scale)
    drawn = np.asarray(Image.open(tmp_path / "class1.png"))
    assert np.abs(drawn.astype(np.int16) - make_grid(expected)[..., 0]).max() <= 1
