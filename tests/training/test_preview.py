"""The training previews sample as `ddpm-run sample` samples the model's export by default."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ddpm_runtime.default_sampling import EPSILON_DEFAULT_SAMPLER, X0_NETWORK_DEFAULT, StudentSampling, default_sampling

from cli_helpers import run_ddpm, run_ddpm_run

TINY = ["--preset", "tiny", "--batch-size", "8", "--precision", "fp32", "--memory-format", "contiguous"]


def grey(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_the_default_sampling_rule():
    assert default_sampling("epsilon") is None  # ddpm-run's general default
    assert default_sampling("edm") is None
    assert default_sampling("v") == {"sampler": "dpm-solver++-sde", "steps": 20}  # written into the file
    student = StudentSampling(sampler="ddim", calls=4, options={"eta": 0.0}, guided=True)
    assert default_sampling("v", student) == {
        "sampler": "ddim",
        "steps": 4,
        "options": {"eta": 0.0},
        "guidance_scale": 0.0,
    }


@pytest.mark.slow
def test_a_v_models_preview_grid_is_what_ddpm_run_draws_from_its_export(capsys, idx_dir, tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "--prediction", "v", "--max-steps", "3", "--num-preview", "4", "--preview-steps", "3"]
    assert run_ddpm(capsys, "train", idx_dir, "--out", run, *args).code == 0
    model = tmp_path / "model.onnx"
    assert run_ddpm(capsys, "export-onnx", run / "checkpoint.pt", "-o", model).code == 0
    preview = grey(run / "samples" / "step-0000003.png")

    result = run_ddpm_run(capsys, "sample", model, "-n", "4", "--steps", "3", "--out", tmp_path / "default")
    assert result.code == 0 and f"{X0_NETWORK_DEFAULT['sampler']}, 3 steps" in result.err, result.err
    default = grey(tmp_path / "default" / "grid.png")
    # torch (the preview) and ONNX Runtime (the export) differ in the last float bits: a grey level at most
    assert np.abs(preview - default).max() <= 1

    # the check can fail: another sampler draws other images from that noise
    other = "dpm-solver++" if X0_NETWORK_DEFAULT["sampler"] != "dpm-solver++" else EPSILON_DEFAULT_SAMPLER
    args = ["-n", "4", "--steps", "3", "--sampler", other, "--out", tmp_path / "other"]
    assert run_ddpm_run(capsys, "sample", model, *args).code == 0
    assert np.abs(preview - grey(tmp_path / "other" / "grid.png")).max() > 20
