"""Checkpoint -> TorchScript (loads with torch.jit.load, and from libtorch in C++).

The metadata travels as the extra file ``contract.METADATA_FILE`` inside the archive:
``torch.jit.load(path, _extra_files={"ddpm.json": ""})`` fills it in.
"""

from __future__ import annotations

import io
import os

import torch

from ddpm_runtime import contract

from .errors import ExportError
from .gate import DEFAULT_ATOL, ExportResult, gate_and_write, prepare_output, quiet_exporter
from .source import ExportSource, example_inputs, torch_eps_fn


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
        torch.jit.save(traced, buffer, _extra_files={contract.METADATA_FILE: metadata.to_json()})
    return buffer.getvalue()


def load_torchscript(data: bytes | str | os.PathLike) -> tuple[torch.jit.ScriptModule, str]:
    extra = {contract.METADATA_FILE: ""}
    with quiet_exporter():
        module = torch.jit.load(io.BytesIO(data) if isinstance(data, bytes) else str(data), _extra_files=extra)
    return module.eval(), extra[contract.METADATA_FILE]


def export_torchscript(
    source: ExportSource,
    out: str | os.PathLike,
    atol: float = DEFAULT_ATOL,
    check: bool = True,
    overwrite: bool = False,
) -> ExportResult:
    out = prepare_output(out, "model.pt", source.path, overwrite)
    # The gate checks what will be written: the staged archive, loaded back from disk.
    return gate_and_write(
        source,
        to_torchscript_bytes(source),
        out,
        lambda path: torch_eps_fn(load_torchscript(path)[0]),
        atol,
        check,
        "TorchScript",
    )
