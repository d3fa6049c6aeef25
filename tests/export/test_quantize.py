"""ddpm quantize: an int8 copy of a model file, calibrated along the default sampler's trajectories and
gated on its images against the float32 model's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

from ddpm_export.quantize import QuantizationRejected, quantize_model
from ddpm_export.quantize.calibration import trajectory_feeds
from ddpm_runtime.generate import SamplingSettings, generate, model_defaults, model_timesteps
from ddpm_runtime.metadata import ModelMetadata
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
    assert (
        "quantized:  int8, QDQ, per-channel s8 weights, u8 activations; kept in float32: input convolution" in info.out
    )
    assert f"calibrated (percentile) on {result.calibration_batches} model calls from 4 starting noises" in info.out
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
        ((tiny_onnx, "-o", out, "--mode", "int4"), "unknown quantization mode 'int4'"),
        ((tiny_onnx, "-o", out, "--max-class-change", "1.5"), "--max-class-change must be a share between 0 and 1"),
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


def test_the_recipes_float32_convolutions_and_the_metadata_round_trip(tiny_onnx, tiny_int8):
    """The recipe keeps in float32 the convolution that reads x (its one activation scale would have to
    span x_T's tails and x_0's detail), the one that reads the last concatenation (the full-resolution
    skip connection) and the last up block after its ConvTranspose (convolutions and time projection)
    but the output convolution; every other convolution reads a DequantizeLinear output."""
    proto = onnx.load(str(tiny_int8[0]))
    initializers = {t.name: t for t in proto.graph.initializer}
    dequantized = {node.output[0] for node in proto.graph.node if node.op_type == "DequantizeLinear"}
    original = list(onnx.load(str(tiny_onnx)).graph.node)
    concatenated = {node.output[0] for node in original if node.op_type == "Concat"}
    reading_concat = [node.name for node in original if node.op_type == "Conv" and node.input[0] in concatenated]
    upsampler = max(i for i, node in enumerate(original) if node.op_type == "ConvTranspose")
    last_block = [node for node in original[upsampler + 1 :] if node.op_type in ("Conv", "Gemm")][:-1]
    expected = {reading_concat[-1]} | {node.name for node in last_block if node.op_type == "Conv"}
    convolutions = [node for node in proto.graph.node if node.op_type == "Conv"]
    kept = [node for node in convolutions if node.input[1] in initializers]  # float32 weights, read directly
    assert len(reading_concat) > 1 and len(expected) > 1
    assert [node.name for node in kept] == [convolutions[0].name] + [n.name for n in convolutions if n.name in expected]
    assert convolutions[0].input[0] == "x"
    assert all(initializers[node.input[1]].data_type == onnx.TensorProto.FLOAT for node in kept)
    others = [node for node in convolutions if node not in kept]
    assert others and all(node.input[0] in dequantized and node.input[1] in dequantized for node in others)
    assert convolutions[-1] in others  # the output convolution stays int8
    projections = {node.name for node in last_block if node.op_type == "Gemm"}
    gemms = [node for node in proto.graph.node if node.op_type == "Gemm"]
    assert projections and all((node.input[1] in initializers) == (node.name in projections) for node in gemms)
    metadata = load_onnx_model(tiny_int8[0], "cpu", threads=1).metadata
    assert metadata.quantized["kept_float"] == [
        "input convolution",
        "the convolution reading the last concatenation",
        "the last up block after its ConvTranspose",
    ]
    assert ModelMetadata.from_json(metadata.to_json()) == metadata
    plain = load_onnx_model(tiny_onnx, "cpu", threads=1).metadata
    assert replace(metadata, quantized=None, exporter=plain.exporter) == plain  # nothing else changed


def test_the_class_check_rejects_images_whose_class_changes(tiny_onnx, tmp_path):
    """A classifier that sees any pixel change (the parity of the pixel sum): most images change class,
    so a limit of 25% refuses the file and writes nothing; a limit of 100% keeps it and says the share."""

    def parity(images):
        return images.astype(np.int64).sum(axis=(1, 2, 3)) % 2

    out = tmp_path / "q.onnx"
    with pytest.raises(QuantizationRejected, match=r"class changed for .*\(at most 25%\); nothing written"):
        quantize_model(tiny_onnx, out, calibration_images=2, max_image_diff=255, classify=parity)
    assert list(tmp_path.iterdir()) == []
    result = quantize_model(
        tiny_onnx, out, calibration_images=2, max_image_diff=255, classify=parity, max_class_change=1
    )
    assert 0.25 < result.report.class_change <= 1 and result.report.images == 64
    gate = load_onnx_model(out, "cpu", threads=1).metadata.quantized["gate"]
    assert gate == {"max_image_diff": 255, "max_class_change": 1}


def test_real_data_trains_the_eval_cnn_for_the_class_check(capsys, tiny_onnx, tmp_path, monkeypatch):
    from data_helpers import make_images

    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    images = make_images(200, 12, 0)
    brightness = images.reshape(200, -1).mean(1)
    real = tmp_path / "real.npz"
    np.savez(real, x_train=images, y_train=(brightness > np.median(brightness)).astype(np.int64))
    out = tmp_path / "q.onnx"
    result = run_ddpm(
        capsys,
        "quantize",
        tiny_onnx,
        "-o",
        out,
        "--calibration-images",
        "2",
        "--real",
        real,
        "--max-image-diff",
        "255",
        "--max-class-change",
        "1",
    )
    assert result.code == 0, result.err
    assert "training ddpm eval's CNN on" in result.err and "epoch 10" in result.err
    assert "class changed for" in result.out and "classes not checked" not in result.out
    np.savez(tmp_path / "big.npz", x_train=np.zeros((20, 16, 16), np.uint8), y_train=np.arange(20) % 2)
    wrong = run_ddpm(capsys, "quantize", tiny_onnx, "-o", tmp_path / "w.onnx", "--real", tmp_path / "big.npz")
    assert wrong.code == 2 and "images of shape (1, 16, 16), the model draws (1, 12, 12)" in error_lines(wrong)[0]
    assert not (tmp_path / "w.onnx").exists()


def test_export_onnx_quantize_writes_only_the_int8_file(capsys, tiny_trained, tmp_path):
    out = tmp_path / "model-int8.onnx"
    result = run_ddpm(
        capsys,
        "export-onnx",
        tiny_trained,
        "-o",
        out,
        "--quantize",
        "int8",
        "--calibration-images",
        "2",
        "--max-image-diff",
        "255",
    )
    assert result.code == 0, result.err
    assert "float32 export passed" in result.out and f"wrote {out}" in result.out
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # the float32 export is not kept
    assert load_onnx_model(out, "cpu", threads=1).metadata.quantized["mode"] == "int8"
    cases = [
        (("--quantize", "int4"), "unknown quantization mode 'int4'"),
        (("--quantize", "int8", "--calibration-images", "0"), "--calibration-images must be at least 1"),
        (("--quantize", "int8", "--no-check"), "--quantize needs the parity gate"),
        (("--real", tmp_path), "need --quantize"),
        (("--quantize", "int8"), "exists (pass --overwrite to replace it)"),
    ]
    for args, message in cases:
        refused = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, *args)
        lines = error_lines(refused)
        assert refused.code == 2 and len(lines) == 1 and message in lines[0], (args, refused.err)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.fixture(scope="module")
def tiny_fp16(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "model-fp16.onnx"
    return out, quantize_model(tiny_onnx, out, mode="fp16")


def test_fp16_file_is_half_the_size_and_runs_every_sampler(capsys, tiny_onnx, tiny_fp16, tmp_path):
    out, result = tiny_fp16
    assert result.calibration_batches == 0 and result.report.mean_difference <= 0.5  # its default gate
    proto = onnx.load(str(out))  # (the tiny file is not smaller: its graph outweighs its weights)
    types = {t.name: t.data_type for t in proto.graph.initializer}
    weights = [node.input[1] for node in proto.graph.node if node.op_type == "Conv"]
    assert weights and all(types[name] == onnx.TensorProto.FLOAT16 for name in weights)
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.FLOAT] * 2
    model = load_onnx_model(out, "cpu", threads=1)
    assert model.metadata.quantized["mode"] == "fp16" and "calibration" not in model.metadata.quantized
    assert ModelMetadata.from_json(model.metadata.to_json()) == model.metadata
    info = run_ddpm_run(capsys, "info", out)
    assert "quantized:  fp16, float16 weights and activations; kept in float32: schedule and time" in info.out
    sampled = run_ddpm_run(capsys, "sample", out, "-n", "2", "--out", tmp_path / "s")
    assert sampled.code == 0 and "fp16 model (quantized)" in sampled.err.splitlines()[0]
    for name in REGISTRY:
        images = generate(model, model.metadata, SamplingSettings(num_images=2, sampler=name, steps=2))
        assert images.shape == (2, 12, 12, 1)


def test_fp16_keeps_x_exact_where_samplers_divide_by_alpha(tmp_path):
    """At t = T-1 a sampler's x_0 = (x - sigma eps) / alpha amplifies eps's error by sigma / alpha. For a
    v model on the cosine schedule (alpha ~ 1e-4 there; eps = alpha v + sigma x in the graph) with the
    schedule and that wrapper in float32, x never rounded to float16 on its way there, x_0 from the
    fp16 file stays within 0.05 of float32's; ONNX Runtime's converter on its own (every node in
    float16 but its default list) misses by far more, which is why float16.py keeps those parts."""
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from ddpm_export.onnx_export import export_onnx
    from ddpm_export.source import load_source
    from ddpm_runtime.onnx_model import OnnxEpsModel

    from data_helpers import make_checkpoint

    make_checkpoint(tmp_path / "v.pt", "tiny", 12, steps=3, schedule="cosine", prediction="v")
    tiny_v = tmp_path / "v.onnx"
    assert export_onnx(load_source(tmp_path / "v.pt"), tiny_v).report.passed
    quantize_model(tiny_v, tmp_path / "v-fp16.onnx", mode="fp16")
    reference = load_onnx_model(tiny_v, "cpu", threads=1)
    schedule = NoiseSchedule.from_config(reference.metadata.schedule)
    last = schedule.num_timesteps - 1
    alpha, sigma = np.sqrt(schedule.alpha_bars[last]), np.sqrt(1 - schedule.alpha_bars[last])
    x = np.random.default_rng(0).standard_normal((4, 1, 12, 12)).astype(np.float32) * 3
    t = np.full(4, last, np.float32)

    def x0_error(model) -> float:
        implied = [(x.astype(np.float64) - sigma * m(x, t).astype(np.float64)) / alpha for m in (reference, model)]
        return float(np.abs(implied[0] - implied[1]).max())

    ours = x0_error(load_onnx_model(tmp_path / "v-fp16.onnx", "cpu", threads=1))
    naive = convert_float_to_float16(onnx.load(str(tiny_v)), keep_io_types=True)
    session = ort.InferenceSession(naive.SerializeToString(), providers=["CPUExecutionProvider"])
    naive_error = x0_error(OnnxEpsModel(tiny_v, reference.metadata, "CPUExecutionProvider", session))
    assert ours < 0.05 and naive_error > 10 * ours, (ours, naive_error)


def test_export_onnx_quantize_fp16(capsys, tiny_trained, tmp_path):
    out = tmp_path / "model-fp16.onnx"
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, "--quantize", "fp16")
    assert result.code == 0, result.err
    assert "calibrated" not in result.out and "(at most 0.5)" in result.out
    assert load_onnx_model(out, "cpu", threads=1).metadata.quantized["mode"] == "fp16"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_no_limit_is_written_as_no_entry(capsys, tiny_onnx, tmp_path):
    """An infinite --max-image-diff is no limit: the metadata (JSON that JavaScript reads, so no
    Infinity) has no entry for it, and ddpm-run info says so."""
    import json

    out = tmp_path / "q.onnx"
    quantize_model(tiny_onnx, out, calibration_images=2, max_image_diff=float("inf"))
    text = {p.key: p.value for p in onnx.load(str(out)).metadata_props}["ddpm"]
    json.loads(text, parse_constant=lambda name: pytest.fail(f"metadata holds {name}"))
    assert json.loads(text)["quantized"]["gate"] == {}
    assert "gate: no limit" in run_ddpm_run(capsys, "info", out).out


def test_export_generator_refuses_quantized_files(capsys, tiny_int8, tiny_fp16, tmp_path):
    for path, mode in ((tiny_int8[0], "int8"), (tiny_fp16[0], "fp16")):
        result = run_ddpm(capsys, "export-generator", path, "-o", tmp_path / "g.onnx")
        lines = error_lines(result)
        assert result.code == 2 and len(lines) == 1, result.err
        assert f"is a {mode} model (ddpm quantize); build the generator from the float32 model file" in lines[0]
    assert list(tmp_path.iterdir()) == []
