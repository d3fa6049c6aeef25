"""ddpm quantize: an int8 copy of a model file, calibrated along the default sampler's trajectories and
gated on its images against the float32 model's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from ddpm_export.quantize import QuantizationRejected, quantize_model
from ddpm_export.quantize.calibration import trajectory_feeds
from ddpm_runtime.generate import SamplingSettings, generate, model_defaults, model_timesteps
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.samplers import REGISTRY
from ddpm_runtime.schedule import NoiseSchedule

from cli_helpers import error_lines, run_ddpm, run_ddpm_run


@pytest.fixture(scope="module")
def tiny_int8(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    result = quantize_model(tiny_onnx, out, calibration_images=4, max_image_diff=255)
    return out, result


def test_calibration_feeds_are_the_samplers_own_model_inputs(tiny_onnx):
    model = load_onnx_model(tiny_onnx, "cpu", threads=1)
    feeds = trajectory_feeds(model, num_images=5, batch_size=4)  # batches of 4 and 1
    sampler, steps, options = model_defaults(model.metadata, None, None)
    settings = SamplingSettings(sampler=sampler, steps=steps, options=options)
    times = model_timesteps(settings, model.metadata, NoiseSchedule.from_config(model.metadata.schedule))
    assert len(feeds) == 2 * len(times) and [len(f["x"]) for f in feeds] == [4] * len(times) + [1] * len(times)
    called = [float(f["t"][0]) for f in feeds[: len(times)]]
    assert called == [float(np.float32(t)) for t in times]
    assert all(np.all(f["t"] == f["t"][0]) for f in feeds)
    assert feeds[0]["x"].std() > 0.5 and not np.array_equal(feeds[0]["x"], feeds[1]["x"])  # the trajectory moves


def test_conditional_calibration_sends_both_halves_of_guidance(tiny_conditional_onnx):
    model = load_onnx_model(tiny_conditional_onnx, "cpu", threads=1)
    feeds = trajectory_feeds(model, num_images=3, batch_size=3)
    null = model.metadata.classes.null_index
    assert all(list(f["y"]) == [0, 1, 2, null, null, null] for f in feeds)  # guided: classes, then "no class"


def test_int8_file_is_smaller_says_so_and_runs_every_sampler(capsys, tiny_onnx, tiny_int8, tmp_path):
    out, result = tiny_int8
    proto = onnx.load(str(out))
    assert any(node.op_type == "QuantizeLinear" for node in proto.graph.node)
    assert any(node.op_type == "DequantizeLinear" for node in proto.graph.node)
    model = load_onnx_model(out, "cpu", threads=1)  # the weights digest matches the new weights
    assert model.metadata.quantized["mode"] == "int8"
    assert model.metadata.quantized["calibration"]["model_calls"] == result.calibration_batches
    info = run_ddpm_run(capsys, "info", out)
    assert "quantized:  int8 (ddpm quantize; calibrated on images 4" in info.out
    sampled = run_ddpm_run(capsys, "sample", out, "-n", "2", "--out", tmp_path / "s")
    assert sampled.code == 0 and "int8 model (quantized)" in sampled.err.splitlines()[0]
    for name in REGISTRY:
        images = generate(model, model.metadata, SamplingSettings(num_images=2, sampler=name, steps=2))
        assert images.shape == (2, 12, 12, 1)
    plain = load_onnx_model(tiny_onnx, "cpu", threads=1)
    settings = SamplingSettings(num_images=4, sampler="ddim", steps=4)
    difference = np.abs(
        generate(model, model.metadata, settings).astype(int) - generate(plain, plain.metadata, settings)
    )
    assert 0 < difference.mean() < result.report.mean_difference + 64  # close to float32, and not the same file


def test_the_gate_rejects_a_broken_quantization(tiny_onnx, tmp_path, monkeypatch):
    """Every activation scale forced to its minimum: the images fall apart, the gate refuses, no file."""
    import onnxruntime.quantization as quantization
    from onnx import numpy_helper

    real = quantization.quantize_static

    def broken(model_input, model_output, *args, **kwargs):
        real(model_input, model_output, *args, **kwargs)
        proto = onnx.load(model_output)
        weights = {node.input[0] for node in proto.graph.node if node.op_type == "DequantizeLinear"} & {
            t.name for t in proto.graph.initializer
        }
        scales = {n.input[1] for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in weights}
        for tensor in proto.graph.initializer:
            if tensor.name in scales:
                tensor.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(tensor), 1e-6), tensor.name))
        onnx.save(proto, model_output)

    monkeypatch.setattr(quantization, "quantize_static", broken)
    out = tmp_path / "broken.onnx"
    with pytest.raises(QuantizationRejected, match="nothing written"):
        quantize_model(tiny_onnx, out, calibration_images=2, max_image_diff=8)
    assert list(tmp_path.iterdir()) == []


def test_refusals_are_one_line_errors(capsys, tiny_onnx, tiny_int8, tmp_path):
    out = tmp_path / "q.onnx"
    cases = [
        ((tiny_int8[0], "-o", out), "is already quantized (int8)"),
        ((tiny_onnx, "-o", out, "--mode", "int4"), "unknown --mode 'int4'"),
        ((tiny_onnx, "-o", out, "--calibration-images", "0"), "--calibration-images must be at least 1, got 0"),
        ((tiny_onnx, "-o", tiny_int8[0]), "exists (pass --overwrite to replace it)"),
    ]
    for args, message in cases:
        result = run_ddpm(capsys, "quantize", *args)
        lines = error_lines(result)
        assert result.code == 2 and len(lines) == 1 and message in lines[0], (args, result.err)
    rejected = run_ddpm(capsys, "quantize", tiny_onnx, "-o", out, "--calibration-images", "2", "--max-image-diff", "0")
    assert rejected.code == 1 and "quantization rejected" in error_lines(rejected)[0]
    assert list(tmp_path.iterdir()) == []
