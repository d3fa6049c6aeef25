"""``ddpm quantize``: an 8-bit (int8) copy of a model file, calibrated on the sampler's own model inputs and
kept only if its images stay close to the float32 model's.

ONNX Runtime's static quantization (QDQ format: QuantizeLinear/DequantizeLinear pairs around the
quantized operators, which its CPU provider fuses into integer kernels), per-channel signed 8-bit
weights and unsigned 8-bit activations, on the convolutions and matrix products; normalisations,
softmax and the sampler's maths stay float32/float64.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ddpm_runtime import contract
from ddpm_runtime.external_data import weights_sha256
from ddpm_runtime.files import check_free_space, staged_file
from ddpm_runtime.metadata import ModelMetadata
from ddpm_runtime.onnx_model import load_onnx_model

from ..errors import ExportError
from ..outputs import prepare_output
from .calibration import trajectory_feeds
from .gate import DEFAULT_MAX_IMAGE_DIFF, ImageGateReport, compare_images

MODES = ("int8",)
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
DEFAULT_CALIBRATION_IMAGES = 32


class QuantizationRejected(Exception):
    """The 8-bit model's images differ from float32's beyond the gate: exit code 1, no file kept."""

    def __init__(self, message: str, report: ImageGateReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    report: ImageGateReport
    calibration_batches: int
    size_bytes: int
    model_size_bytes: int


def quantize_model(
    model: str | os.PathLike,
    output: str | os.PathLike,
    mode: str = "int8",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    max_image_diff: float = DEFAULT_MAX_IMAGE_DIFF,
    overwrite: bool = False,
) -> QuantizeResult:
    """Quantize the model file ``model`` to ``output`` (atomically), through the image gate."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = Path(model)
    if mode not in MODES:
        raise ExportError(f"unknown --mode {mode!r} (choose from {', '.join(MODES)})")
    if calibration_images < 1:
        raise ExportError(f"--calibration-images must be at least 1, got {calibration_images}")
    if not max_image_diff >= 0:
        raise ExportError(f"--max-image-diff must be a number >= 0, got {max_image_diff}")
    reference = load_onnx_model(model, "cpu", threads=1)
    if reference.metadata.quantized is not None:
        raise ExportError(f"{model}: is already quantized ({reference.metadata.quantized['mode']})")
    out = prepare_output(output, "model-int8.onnx", model, overwrite)
    feeds = trajectory_feeds(reference, calibration_images)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        quantized_path = Path(tmp) / "quantized.onnx"
        quantize_static(
            str(model),
            str(quantized_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
        )
        proto = onnx.load(str(quantized_path))
    metadata = with_quantized(reference.metadata, proto, mode, calibration_images, len(feeds), max_image_diff)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {contract.METADATA_KEY: metadata.to_json()})
    data = proto.SerializeToString()
    check_free_space(out, len(data))
    with staged_file(out) as staged:
        staged.write_bytes(data)
        report = compare_images(reference, load_onnx_model(staged, "cpu", threads=1), max_image_diff)
        if not report.passed:
            raise QuantizationRejected(f"8-bit model rejected: {report.describe()}; nothing written to {out}", report)
    return QuantizeResult(out, report, len(feeds), len(data), model.stat().st_size)


def with_quantized(metadata: ModelMetadata, proto, mode, images: int, batches: int, max_diff: float) -> ModelMetadata:
    """The float model's metadata with the ``quantized`` entry and the new weights' digest."""
    quantized = {
        "mode": mode,
        "format": "QDQ, per-channel s8 weights, u8 activations",
        "operators": list(QUANTIZED_OPS),
        "calibration": {"images": images, "model_calls": batches, "method": "minmax", "inputs": "default sampler"},
        "gate": {"max_image_diff": max_diff},
    }
    exporter = {**metadata.exporter, contract.WEIGHTS_DIGEST_KEY: weights_sha256(proto.SerializeToString())}
    return replace(metadata, quantized=quantized, exporter=exporter)
