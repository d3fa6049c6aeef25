"""``ddpm quantize``: a lower-precision copy of a model file, kept only if its images stay close to the
float32 model's for the same noise.

int8: calibrated on the sampler's own model inputs; what is quantized is the recipe's (recipe.py): the
convolutions and matrix products but the input convolution; normalisations, softmax, attention and the
sampler's maths stay float32/float64. fp16: the network in float16 but the parts float16 would break
(float16.py), for GPUs and WebGPU.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
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
from .classes import eval_classifier
from .float16 import KEPT_FLOAT, to_float16
from .gate import DEFAULT_MAX_CLASS_CHANGE, DEFAULT_MAX_IMAGE_DIFF, Classify, ImageGateReport, compare_images
from .recipe import DEFAULT_RECIPE, Recipe, quantize_file

MODES = ("int8", "fp16")
DEFAULT_CALIBRATION_IMAGES = 32


class QuantizationRejected(Exception):
    """The quantized model's images differ from float32's beyond the gate: exit code 1, no file kept."""

    def __init__(self, message: str, report: ImageGateReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    report: ImageGateReport
    calibration_batches: int  # 0 for fp16, which needs no calibration
    size_bytes: int
    model_size_bytes: int


def check_quantize_options(mode, calibration_images=None, max_image_diff=None, max_class_change=None) -> None:
    """The options' values, before any work (None: the default, always valid)."""
    if mode not in MODES:
        raise ExportError(f"unknown quantization mode {mode!r} (choose from {', '.join(MODES)})")
    if calibration_images is not None and calibration_images < 1:
        raise ExportError(f"--calibration-images must be at least 1, got {calibration_images}")
    if max_image_diff is not None and not max_image_diff >= 0:
        raise ExportError(f"--max-image-diff must be a number >= 0, got {max_image_diff}")
    if max_class_change is not None and not 0 <= max_class_change <= 1:
        raise ExportError(f"--max-class-change must be a share between 0 and 1, got {max_class_change}")


def quantize_model(
    model: str | os.PathLike,
    output: str | os.PathLike,
    mode: str = "int8",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    max_image_diff: float | None = None,
    overwrite: bool = False,
    recipe: Recipe = DEFAULT_RECIPE,
    real: str | os.PathLike | None = None,
    max_class_change: float = DEFAULT_MAX_CLASS_CHANGE,
    classify: Classify | None = None,
    on_classifier_epoch: Callable[[int, float], None] = lambda epoch, accuracy: None,
) -> QuantizeResult:
    """Quantize the model file ``model`` to ``output`` (atomically), through the image gate; with
    ``real`` (labelled data: ddpm eval's CNN trained on it) or a ``classify`` function, the gate
    also compares the classes of both models' images."""
    import onnx

    model = Path(model)
    check_quantize_options(mode, calibration_images, max_image_diff, max_class_change)
    max_image_diff = DEFAULT_MAX_IMAGE_DIFF[mode] if max_image_diff is None else max_image_diff
    reference = load_onnx_model(model, "cpu", threads=1)
    if reference.metadata.quantized is not None:
        raise ExportError(f"{model}: is already quantized ({reference.metadata.quantized['mode']})")
    out = prepare_output(output, f"model-{mode}.onnx", model, overwrite)
    if real is not None:
        image = reference.metadata.image
        shape = (image.channels, image.height, image.width)
        classify = eval_classifier(Path(real), shape, on_classifier_epoch)
    limits = {"max_image_diff": max_image_diff, **({} if classify is None else {"max_class_change": max_class_change})}
    gate = {name: limit for name, limit in limits.items() if math.isfinite(limit)}  # no entry: no limit
    if mode == "fp16":
        proto = to_float16(onnx.load(str(model)))
        entry, batches = {"format": "float16 weights and activations", "kept_float": KEPT_FLOAT}, 0
    else:
        proto, batches = _int8(model, out, reference, recipe, calibration_images)
        entry = {**recipe.describe(), "calibration": _calibration(recipe, calibration_images, batches)}
    metadata = with_quantized(reference.metadata, proto, {"mode": mode, **entry, "gate": gate})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {contract.METADATA_KEY: metadata.to_json()})
    data = proto.SerializeToString()
    check_free_space(out, len(data))
    with staged_file(out) as staged:
        staged.write_bytes(data)
        candidate = load_onnx_model(staged, "cpu", threads=1)
        report = compare_images(
            reference, candidate, max_image_diff, classify=classify, max_class_change=max_class_change
        )
        if not report.passed:
            raise QuantizationRejected(f"{mode} model rejected: {report.describe()}; nothing written to {out}", report)
    return QuantizeResult(out, report, batches, len(data), model.stat().st_size)


def _int8(model: Path, out: Path, reference, recipe: Recipe, calibration_images: int):
    """(the int8 model, the number of calibration batches)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    feeds = trajectory_feeds(reference, calibration_images)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        quantized_path = Path(tmp) / "quantized.onnx"
        quantize_file(model, quantized_path, Reader(), recipe)
        return onnx.load(str(quantized_path)), len(feeds)


def _calibration(recipe: Recipe, images: int, batches: int) -> dict:
    return {"images": images, "model_calls": batches, "method": recipe.method, "inputs": "default sampler"}


def with_quantized(metadata: ModelMetadata, proto, quantized: dict) -> ModelMetadata:
    """The float model's metadata with the ``quantized`` entry and the new weights' digest."""
    exporter = {**metadata.exporter, contract.WEIGHTS_DIGEST_KEY: weights_sha256(proto.SerializeToString())}
    return replace(metadata, quantized=quantized, exporter=exporter)
