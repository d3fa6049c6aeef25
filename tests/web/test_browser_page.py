"""The page `ddpm-run web` writes, in a real browser: Debian's chromium, headless, driven by playwright-core
(tests/web/browser_page.mjs), the site served from a local port. It loads, draws 4 images equal to
ddpm-run's for the same seed within one grey level, logs no console errors, and shows a bad model's
problem as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from page_helpers import build, drive

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

pytestmark = pytest.mark.slow


def test_page_draws_ddpm_runs_images(tiny_onnx, tmp_path, serve):
    site = build(tiny_onnx, tmp_path / "site")
    assert {"index.html", "app.js", "model.onnx", "ort/ort.min.mjs"} <= set(
        json.loads((site / "site.json").read_text())["files"]
    )
    result = drive(
        serve(site), generate=True, fields={"count": 4, "seed": 3, "steps": 10}, screenshot=str(tmp_path / "page.png")
    )
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done"), status
    model = load_onnx_model(tiny_onnx, "cpu")
    expected = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler="dpm-solver++-sde", steps=10, seed=3),
    )
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(expected.shape[0], 1, 12, 12).transpose(0, 2, 3, 1)
    assert expected.std() > 0
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (tmp_path / "page.png").stat().st_size > 1000
    assert status["threads"] == 1 and not status["isolated"]  # python -m http.server: no COOP/COEP headers


def test_page_served_by_ddpm_run_serve_runs_threads(tiny_onnx, tmp_path, serve):
    """Under `ddpm-run serve` the page is cross-origin isolated and onnxruntime-web runs 2 WebAssembly
    threads (asked for in the address); the images are the same as ddpm-run's all the same."""
    site = build(tiny_onnx, tmp_path / "site")
    result = drive(serve(site, isolated=True) + "?threads=2", generate=True, fields={"count": 4, "seed": 5, "steps": 6})
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done") and status["isolated"] and status["threads"] == 2, status
    model = load_onnx_model(tiny_onnx, "cpu")
    expected = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler="dpm-solver++-sde", steps=6, seed=5),
    )
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(expected.shape[0], 1, 12, 12).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_bad_model_is_one_line_on_the_page(tiny_onnx, tmp_path, serve):
    site = build(tiny_onnx, tmp_path / "site")
    (site / "model.onnx").write_bytes(b"\xff" * 64)
    result = drive(serve(site), generate=False)
    assert result["shownError"].startswith("error: model.onnx: not an ONNX model")
    assert "\n" not in result["shownError"]


def test_page_draws_a_chosen_class_with_guidance(tiny_conditional_onnx, tmp_path, serve):
    """A class-conditional model: the page lists its classes from the metadata; "Ankle boot" x 4 at
    guidance 1.5 gives `ddpm-run sample --class "Ankle boot" --guidance-scale 1.5`'s images."""
    site = build(tiny_conditional_onnx, tmp_path / "site")
    fields = {"count": 4, "seed": 2, "steps": 6, "class": 2, "guidance": 1.5}
    result = drive(serve(site), generate=True, fields=fields)
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    assert result["classes"] == ["no class", "disc", "ring", "Ankle boot"]
    status = result["status"]
    assert status.get("done"), status
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    settings = SamplingSettings(
        num_images=4,
        batch_size=16,
        sampler="dpm-solver++-sde",
        steps=6,
        seed=2,
        labels=(2, 2, 2, 2),
        guidance_scale=1.5,
    )
    expected = generate(model, model.metadata, settings)
    unguided = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler="dpm-solver++-sde", steps=6, seed=2),
    )
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(4, 1, 12, 12).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(got.astype(int) - unguided.astype(int)).max() > 1  # the class and guidance did something


def test_page_samples_a_segment_student_with_its_own_sampler_and_options(capsys, tmp_path, serve):
    """A `--target segment` student: the page picks its sampler (ddim), calls (2) and options (x_0
    unclipped) from the metadata, as ddpm-run does, and draws ddpm-run's images."""
    from ddpm_runtime.generate import model_defaults

    from cli_helpers import run_ddpm
    from data_helpers import make_checkpoint

    teacher, run, student = tmp_path / "teacher.pt", tmp_path / "student", tmp_path / "student.onnx"
    make_checkpoint(teacher, "tiny", 12, steps=3, prediction="v")
    small = ["--batch-size", "8", "--calls", "2", "--teacher-calls", "4", "--precision", "fp32"]
    args = ["--out", run, "--max-steps", "1", "--target", "segment", *small]
    assert run_ddpm(capsys, "distill", teacher, *args).code == 0
    assert run_ddpm(capsys, "export-onnx", run / "checkpoint.pt", "-o", student).code == 0
    site = build(student, tmp_path / "site")
    result = drive(serve(site), generate=True, fields={"count": 4, "seed": 1})  # sampler and calls left as offered
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done"), status
    model = load_onnx_model(student, "cpu")
    sampler, steps, options = model_defaults(model.metadata, None, None)
    assert (sampler, steps, options) == ("ddim", 2, {"eta": 0.0, "x0": "none"})
    expected = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler=sampler, steps=steps, seed=1, options=options),
    )
    # its fitted times carry the options too; given ones go over them: clipped x_0, ddim's declared default
    clipped = generate(
        model,
        model.metadata,
        SamplingSettings(num_images=4, batch_size=16, sampler=sampler, steps=steps, seed=1, options={"x0": "clip"}),
    )
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(4, 1, 12, 12).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(clipped.astype(int) - expected.astype(int)).max() > 1  # the options change the images
