"""What an 8-bit model quantizes and how: one recipe, the default chosen by measurement.

ONNX Runtime's static quantization in QDQ format (QuantizeLinear/DequantizeLinear pairs around each
quantized operator, which its CPU provider fuses into integer kernels), per-channel signed 8-bit
weights, unsigned 8-bit activations. The choices and what the rejected ones cost are in
docs/benchmarks/speed.md, "Quantized models"; ``bench/quantize_options.py`` measures them again.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from ddpm_runtime import contract


@dataclass(frozen=True)
class Recipe:
    operators: tuple[str, ...] = ("Conv", "ConvTranspose", "MatMul", "Gemm")
    # The convolution that reads x: one activation scale must cover x_T's N(0, 1) tails and the fine
    # detail of x near t = 0, and its error goes straight into every later layer.
    keep_input_convolution: bool = True
    keep_output_convolution: bool = False  # the last convolution, whose output becomes eps
    # The convolution that reads the last concatenation: the full-resolution skip connection, where
    # features fresh from the input convolution rejoin the decoder's under one activation scale.
    keep_last_concat_convolution: bool = True
    keep_concat_convolutions: bool = False  # every convolution reading a concatenation
    # The last up block at full resolution (what follows the last ConvTranspose, up to the output
    # convolution): its convolutions and time projection turn the decoder's features into the final
    # detail, which guidance then extrapolates by 1 + w.
    keep_last_up_block: bool = True
    method: str = "percentile"  # ONNX Runtime's percentile calibration, at its default percentile
    activations: str = "u8"  # s8 activations: ONNX Runtime's tool writes a file that does not load

    def describe(self) -> dict:
        return {
            "format": f"QDQ, per-channel s8 weights, {self.activations} activations",
            "operators": list(self.operators),
            "kept_float": [
                name
                for name, kept in (
                    ("input convolution", self.keep_input_convolution),
                    ("output convolution", self.keep_output_convolution),
                    ("the convolution reading the last concatenation", self.keep_last_concat_convolution),
                    ("convolutions reading a concatenation", self.keep_concat_convolutions),
                    ("the last up block after its ConvTranspose", self.keep_last_up_block),
                )
                if kept
            ],
        }


DEFAULT_RECIPE = Recipe()


def kept_float_nodes(proto, recipe: Recipe) -> list[str]:
    """The names of the nodes the recipe keeps in float32."""
    convolutions = [node for node in proto.graph.node if node.op_type == "Conv"]
    kept = []
    if recipe.keep_input_convolution:
        kept += [node.name for node in convolutions if contract.X.name in node.input]
    if recipe.keep_output_convolution and convolutions:
        kept.append(convolutions[-1].name)
    concatenated = {name for node in proto.graph.node if node.op_type == "Concat" for name in node.output}
    reading = [node.name for node in convolutions if node.input[0] in concatenated]
    if recipe.keep_concat_convolutions:
        kept += reading
    elif recipe.keep_last_concat_convolution and reading:
        kept.append(reading[-1])
    if recipe.keep_last_up_block:
        nodes = list(proto.graph.node)
        upsamplers = [i for i, node in enumerate(nodes) if node.op_type == "ConvTranspose"]
        if upsamplers and convolutions:
            block = nodes[upsamplers[-1] + 1 :]
            kept += [n.name for n in block if n.op_type in recipe.operators and n.name != convolutions[-1].name]
    return list(dict.fromkeys(kept))


@contextlib.contextmanager
def _root_warnings_muted():
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_file(model: Path, output: Path, reader, recipe: Recipe) -> None:
    """ONNX Runtime's ``quantize_static`` on ``model``, writing ``output``; ``reader`` yields the feeds."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    # The histogram methods print their progress; the tool logs a warning on the root logger advising
    # its pre-processing pass (shape inference and graph fusions), which calibration here does not need.
    with contextlib.redirect_stdout(io.StringIO()), _root_warnings_muted():
        quantize_static(
            str(model),
            str(output),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=types[recipe.activations],
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(recipe.operators),
            nodes_to_exclude=kept_float_nodes(onnx.load(str(model), load_external_data=False), recipe),
            calibrate_method=methods[recipe.method],
        )
