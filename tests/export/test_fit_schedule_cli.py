"""`ddpm fit-schedule`: fitted times land in the model's metadata and nowhere else, and ddpm-run uses them."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

from cli_helpers import error_lines, run_ddpm, run_ddpm_run


def test_fit_writes_only_metadata_and_sampling_follows_it(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "fitted.onnx"
    args = ["--steps", "3,4", "--images", "8", "--sampler", "dpm-solver++3m"]
    result = run_ddpm(capsys, "fit-schedule", tiny_onnx, *args, "-o", out)
    assert result.code == 0, result.err
    assert "dpm-solver++3m 3 calls: error" in result.out and "dpm-solver++3m 4 calls: error" in result.out
    before, after = onnx.load(str(tiny_onnx)), onnx.load(str(out))
    assert before.graph == after.graph  # the network is untouched, bit for bit
    model = load_onnx_model(out, "cpu")
    entries = {e.steps: e for e in model.metadata.fitted}
    assert set(entries) == {3, 4} and all(e.sampler == "dpm-solver++3m" for e in entries.values())
    fit = entries[4].fit
    assert fit["error"] <= fit["start_error"] and fit["images"] == 8 and fit["reference"] == "dpm-solver++:100"
    assert entries[4].timesteps[0] == 999.0 and entries[4].timesteps[-1] == 0.0
    # everything else in the metadata is as exported
    original = load_onnx_model(tiny_onnx, "cpu").metadata
    assert model.metadata.training == original.training and model.metadata.exporter == original.exporter

    # ddpm-run: the fitted times by default for that sampler and count, a formula when --spacing says so
    settings = SamplingSettings(num_images=4, sampler="dpm-solver++3m", steps=4, seed=2)
    default = generate(model, model.metadata, settings)
    fitted = generate(model, model.metadata, SamplingSettings(**{**settings.__dict__, "spacing": "fitted"}))
    np.testing.assert_array_equal(default, fitted)
    info = run_ddpm_run(capsys, "info", out)
    assert info.code == 0 and "fitted:     dpm-solver++3m, 4 calls at t = 999.0, " in info.out


def test_landing_fit_is_stored_with_its_option_and_sampled_with_it(capsys, tiny_onnx, tmp_path):
    """--final step: the times end above 0, the entry carries {"final": "step"}, and ddpm-run (and its info)
    sample them with it unless told otherwise."""
    from ddpm_runtime.noise import PerImageNoise
    from ddpm_runtime.samplers.dpm_solver import sample_dpm_solver_2m
    from ddpm_runtime.schedule import NoiseSchedule

    out = tmp_path / "landing.onnx"
    args = ["--steps", "3", "--images", "8", "--sampler", "dpm-solver++", "--final", "step"]
    assert run_ddpm(capsys, "fit-schedule", tiny_onnx, *args, "-o", out).code == 0
    model = load_onnx_model(out, "cpu")
    (entry,) = model.metadata.fitted
    assert entry.options == {"final": "step"} and entry.timesteps[0] == 999.0 and entry.timesteps[-1] > 0
    images = generate(model, model.metadata, SamplingSettings(num_images=2, sampler="dpm-solver++", steps=3))
    x_T = PerImageNoise(0, 0, 2).standard_normal((2, 1, 12, 12))
    schedule = NoiseSchedule.from_config(model.metadata.schedule)
    expected = sample_dpm_solver_2m(model, x_T, schedule, np.asarray(entry.timesteps), x0="clip", final="step")
    np.testing.assert_array_equal(
        images, np.rint(np.clip((expected + 1) * 127.5, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)
    )
    given = SamplingSettings(num_images=2, sampler="dpm-solver++", steps=3, options={"final": "x0"})
    assert not np.array_equal(generate(model, model.metadata, given), images)  # a given option goes over it
    info = run_ddpm_run(capsys, "info", out)
    assert "fitted:     dpm-solver++, 3 calls, final step at t = 999.0, " in info.out
    bad = run_ddpm(
        capsys, "fit-schedule", tiny_onnx, "--sampler", "dpm-solver++3m", "--final", "step", "-o", tmp_path / "x.onnx"
    )
    assert (
        bad.code == 2 and "--final: dpm-solver++3m has no such option" in bad.err and not (tmp_path / "x.onnx").exists()
    )


def test_refit_in_place_replaces_the_earlier_fit(capsys, tiny_onnx, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    assert run_ddpm(capsys, "fit-schedule", model, "--steps", "3", "--images", "8").code == 0
    assert run_ddpm(capsys, "fit-schedule", model, "--steps", "3", "--images", "16").code == 0
    (entry,) = load_onnx_model(model, "cpu").metadata.fitted
    assert entry.fit["images"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no staging files left


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "2"], "--steps: each count must be 3..1000"),
        (["--steps", "five"], "--steps must be whole numbers"),
        (["--sampler", "dpm-solver++-sde", "--steps", "3"], "deterministic sampler"),
        (["--sampler", "euler", "--steps", "3"], "unknown sampler 'euler'"),
        (["--images", "2"], "--images must be at least 8"),
    ],
)
def test_bad_requests_are_one_line_errors_and_leave_the_file_alone(capsys, tiny_onnx, tmp_path, args, message):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    before = model.read_bytes()
    result = run_ddpm(capsys, "fit-schedule", model, *args)
    assert result.code == 2 and len(error_lines(result)) == 1 and message in result.err, result.err
    assert "Traceback" not in result.err and model.read_bytes() == before


def test_missing_model_and_existing_output(capsys, tiny_onnx, tmp_path):
    result = run_ddpm(capsys, "fit-schedule", tmp_path / "nope.onnx")
    assert result.code == 2 and "no such model file" in result.err
    existing = tmp_path / "taken.onnx"
    existing.write_bytes(b"keep")
    result = run_ddpm(capsys, "fit-schedule", tiny_onnx, "--steps", "3", "--images", "8", "-o", existing)
    assert result.code == 2 and "exists (pass --overwrite" in result.err and existing.read_bytes() == b"keep"
