"""Checkpoint -> TorchScript (loads with torch.jit.load, and from libtorch in C++).

The metadata travels as the extra file ``ddpm.json`` inside the archive:
``torch.jit.load(path, _extra_files={"ddpm.json": ""})`` fills it in.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .errors import ExportError, ParityError
from .onnx_export import ExportResult, example_inputs, quiet_exporter
from .parity import check_parity
from .source import ExportSource, torch_eps_fn

EXTRA_FILE = "ddpm.json"


def to_torchscript_bytes(source: ExportSource) -> bytes:
    metadata = source.metadata({"format": "torchscript"})
    try:
        with quiet_exporter(), torch.no_grad():
            # Tracing records the shape arithmetic (x.shape in the attention blocks) as graph ops, so
            # the batch size stays dynamic; the parity gate checks batch 1, 3 and 64 on the saved file.
            traced = torch.jit.trace(source.model, example_inputs(source), check_trace=False)
    except Exception as exc:
        raise ExportError(f"{source.path}: TorchScript trace failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    buffer = io.BytesIO()
    with quiet_exporter():  # torch 2.13 marks torch.jit.save deprecated; TorchScript is still what libtorch loads
        torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: metadata.to_json()})
    return buffer.getvalue()


def load_torchscript(data: bytes | str | os.PathLike) -> tuple[torch.jit.ScriptModule, str]:
    extra = {EXTRA_FILE: ""}
    with quiet_exporter():
        module = torch.jit.load(io.BytesIO(data) if isinstance(data, bytes) else data, _extra_files=extra)
    return module.eval(), extra[EXTRA_FILE]


def export_torchscript(source: ExportSource, out: str | os.PathLike, atol: float = 1e-4, check: bool = True) -> ExportResult:
    from ddpm_runtime.files import atomic_output, ensure_writable_dir

    out = Path(out)
    ensure_writable_dir(out.parent)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name such as {out / 'model.pt'}")
    data = to_torchscript_bytes(source)
    report = None
    if check:
        module, _ = load_torchscript(data)  # check what will be written, reloaded
        cfg = source.model_config
        with quiet_exporter():
            report = check_parity(torch_eps_fn(source.model), torch_eps_fn(module),
                                  (cfg.im_channels, cfg.image_size, cfg.image_size), source.schedule.num_timesteps,
                                  atol)
        if not report.passed:
            raise ParityError(f"TorchScript model differs from eager PyTorch by {report.worst.max_abs:.2e} > {atol:g}; "
                              f"nothing written to {out}", report)
    with atomic_output(out) as handle:
        handle.write(data)
    return ExportResult(out, report, len(data))
