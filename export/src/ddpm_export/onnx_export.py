"""Checkpoint -> ONNX: dynamic batch, per-row float t, the ``ddpm`` metadata, checked before it is kept."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ExportError, ParityError
from .parity import ParityReport, check_parity
from .source import ExportSource, torch_eps_fn

# Opset 23 has the standard Attention and GroupNormalization ops, which torch's exporter emits for
# scaled_dot_product_attention and group_norm. ONNX Runtime runs them with fused kernels: a seed-small
# forward at batch 64 takes 0.49 s on 2 cores against 1.21 s for opset 18's MatMul/Softmax/MatMul,
# which ORT does not fuse. --opset 18 remains for older runtimes (ONNX Runtime < 1.23).
DEFAULT_OPSET = 23
INPUT_NAMES = ("x", "t")
OUTPUT_NAME = "eps"


@dataclass
class ExportResult:
    path: Path
    report: ParityReport | None  # None with --no-check
    size_bytes: int


@contextlib.contextmanager
def quiet_exporter():
    """torch.onnx / torch.jit print progress and warn about tracing; the parity gate is what we trust."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def example_inputs(source: ExportSource, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = source.model_config
    x = torch.zeros(batch, cfg.im_channels, cfg.image_size, cfg.image_size)
    t = torch.arange(batch, dtype=torch.float32)
    return x, t


def to_onnx_proto(source: ExportSource, opset: int = DEFAULT_OPSET):
    import onnx

    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with quiet_exporter():
            program = torch.onnx.export(
                source.model,
                example_inputs(source),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={"x": {0: batch}, "t": {0: batch}},
            )
    except Exception as exc:  # the exporter raises many types; the user gets one line
        raise ExportError(f"{source.path}: ONNX export failed at opset {opset} ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None
    proto = program.model_proto
    metadata = source.metadata({"onnx": onnx.__version__, "opset": opset, "format": "onnx"})
    del proto.metadata_props[:]
    proto.metadata_props.add(key="ddpm", value=metadata.to_json())
    proto.doc_string = f"DDPM eps-prediction U-Net exported by ddpm-export from {source.path.name}"
    return proto


def onnx_eps_fn(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def eps(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {"x": x, "t": t})[0]

    return eps


def prepare_output(out: str | os.PathLike, example_name: str) -> Path:
    """Before exporting: the folder must be writable and ``out`` must not be a folder."""
    from ddpm_runtime.files import ensure_writable_dir

    out = Path(out)
    ensure_writable_dir(out.parent)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name such as {out / example_name}")
    return out


def gate_and_write(source: ExportSource, candidate, model_bytes: bytes, out: Path, atol: float, check: bool,
                   kind: str) -> ExportResult:
    """Compare ``candidate`` (the exported model, as an eps callable) with eager PyTorch, then write
    ``model_bytes`` atomically, or raise ParityError and write nothing."""
    from ddpm_runtime.files import atomic_output

    report = None
    if check:
        cfg = source.model_config
        with quiet_exporter():
            report = check_parity(torch_eps_fn(source.model), candidate(),
                                  (cfg.im_channels, cfg.image_size, cfg.image_size), source.schedule.num_timesteps,
                                  atol)
        if not report.passed:
            raise ParityError(f"{kind} model differs from PyTorch by {report.worst.max_abs:.2e} > {atol:g}; "
                              f"nothing written to {out}", report)
    with atomic_output(out) as handle:
        handle.write(model_bytes)
    return ExportResult(out, report, len(model_bytes))


def export_onnx(source: ExportSource, out: str | os.PathLike, opset: int = DEFAULT_OPSET, atol: float = 1e-4,
                check: bool = True) -> ExportResult:
    """Export, validate with onnx.checker (full_check), gate on parity, and only then write ``out``."""
    import onnx

    out = prepare_output(out, "model.onnx")
    proto = to_onnx_proto(source, opset)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{source.path}: exported model fails onnx.checker ({' '.join(str(exc).split())[:200]})") from None
    model_bytes = proto.SerializeToString()
    return gate_and_write(source, lambda: onnx_eps_fn(model_bytes), model_bytes, out, atol, check, "ONNX")
