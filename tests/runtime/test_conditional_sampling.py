"""ddpm-run with a class-conditional model: --class, --per-class, --guidance-scale, the files, the refusals.
Runs without torch (the models come from tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

from cli_helpers import error_lines, run_ddpm_run
from data_helpers import CLASS_NAMES

run = run_ddpm_run


def test_conditional_model_declares_y_and_its_classes(tiny_conditional_onnx):
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    assert [i.name for i in model.session.get_inputs()] == ["x", "t", "y"]
    assert model.session.get_inputs()[2].type == "tensor(int64)"
    assert model.metadata.classes.names == CLASS_NAMES and model.metadata.classes.null_index == 3
    assert model.metadata.training["label_dropout"] == 0.1


def test_the_label_changes_the_prediction(tiny_conditional_onnx):
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    x = np.random.default_rng(0).standard_normal((4, 1, 12, 12)).astype(np.float32)
    t = np.full(4, 500.0, dtype=np.float32)
    by_label = [model(x, t, np.full(4, label)) for label in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(by_label[a] - by_label[b]).max() > 1e-4
    np.testing.assert_array_equal(model(x, t), by_label[3])  # no y: every row "no class"


def test_sample_classes_writes_labels_and_one_class_per_grid_row(capsys, tiny_conditional_onnx, tmp_path):
    out = tmp_path / "out"
    result = run(
        capsys,
        "sample",
        tiny_conditional_onnx,
        "--class",
        "ankle_boot",
        "--class",
        "0",
        "--per-class",
        "3",
        "--guidance-scale",
        "2",
        "--steps",
        "4",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert "2 class(es) x 3, guidance scale 2" in result.err
    saved = np.load(out / "samples.npz")
    assert saved["arr_0"].shape == (6, 12, 12, 1) and saved["labels"].tolist() == [2, 2, 2, 0, 0, 0]
    assert saved["class_names"].tolist() == list(CLASS_NAMES)  # plain strings: loads with allow_pickle=False
    from PIL import Image

    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 + 2 * 14, 2 + 3 * 14)  # 2 rows (classes) x 3 columns (per class)


def test_cli_samples_equal_the_library_and_guidance_changes_them(capsys, tiny_conditional_onnx, tmp_path):
    common = ["--class", "all", "--per-class", "2", "--sampler", "ddim", "--steps", "5", "--seed", "4"]
    assert run(capsys, "sample", tiny_conditional_onnx, *common, "--out", tmp_path / "a").code == 0
    assert (
        run(capsys, "sample", tiny_conditional_onnx, *common, "--guidance-scale", "0", "--out", tmp_path / "b").code
        == 0
    )
    guided = np.load(tmp_path / "a" / "samples.npz")["arr_0"]
    plain = np.load(tmp_path / "b" / "samples.npz")["arr_0"]
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    settings = SamplingSettings(num_images=6, batch_size=64, sampler="ddim", steps=5, seed=4, labels=(0, 0, 1, 1, 2, 2))
    np.testing.assert_array_equal(guided, generate(model, model.metadata, settings))
    assert np.count_nonzero(guided != plain) > 0


def test_guided_sampling_makes_one_model_call_per_step_of_twice_the_batch(tiny_conditional_onnx):
    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    batches = []

    def counting(x, t, y=None):
        batches.append(x.shape[0])
        return model(x, t, y)

    settings = SamplingSettings(
        num_images=5, batch_size=5, sampler="dpm-solver++", steps=6, seed=0, labels=(0, 1, 2, 0, 1), guidance_scale=1.5
    )
    generate(counting, model.metadata, settings)
    assert batches == [10] * 6


def test_info_lists_the_classes(capsys, tiny_conditional_onnx, tiny_onnx):
    result = run(capsys, "info", tiny_conditional_onnx)
    assert result.code == 0
    assert "classes:    3 (0:disc, 1:ring, 2:Ankle boot); 'no class' = 3, label dropout 0.1" in result.out
    assert "classes:    none (unconditional)" in run(capsys, "info", tiny_onnx).out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--class", "sneaker"], "--class 'sneaker': unknown class (this model has: disc, ring, Ankle boot)"),
        (["--class", "3"], "--class 3: this model has classes 0..2"),
        (["--class", "1", "-n", "4"], "-n/--num-images and --class do not go together"),
        (["--per-class", "2"], "--per-class needs --class"),
        (["--guidance-scale", "2"], "--guidance-scale needs --class"),
        (["--class", "1", "--guidance-scale", "-0.5"], "--guidance-scale must be a finite number >= 0"),
    ],
)
def test_conditional_refusals_are_one_line_exit_2_and_write_nothing(
    capsys, tiny_conditional_onnx, tmp_path, args, message
):
    out = tmp_path / "out"
    result = run(capsys, "sample", tiny_conditional_onnx, *args, "--steps", "2", "--out", out)
    assert result.code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0], result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not out.exists()


def test_an_unconditional_model_refuses_a_class(capsys, tiny_onnx, tmp_path):
    result = run(capsys, "sample", tiny_onnx, "--class", "1", "--out", tmp_path / "out")
    assert result.code == 2
    assert error_lines(result) == [
        f"error: {tiny_onnx}: is an unconditional model; it cannot draw a chosen class (no --class)"
    ]
    assert not (tmp_path / "out").exists()


def test_guidance_refused_for_a_model_trained_without_label_dropout(tiny_conditional_onnx):
    from dataclasses import replace

    model = load_onnx_model(tiny_conditional_onnx, "cpu")
    no_dropout = replace(model.metadata, training={**model.metadata.training, "label_dropout": 0.0})
    settings = SamplingSettings(
        num_images=2, batch_size=2, sampler="ddim", steps=2, seed=0, labels=(0, 1), guidance_scale=1.0
    )
    from ddpm_runtime.errors import UserError

    with pytest.raises(UserError, match="trained without label dropout"):
        generate(model, no_dropout, settings)
    unguided = SamplingSettings(
        num_images=2, batch_size=2, sampler="ddim", steps=2, seed=0, labels=(0, 1), guidance_scale=0.0
    )
    assert generate(model, no_dropout, unguided).shape == (2, 12, 12, 1)
