"""Checkpoint -> ONNX: dynamic batch, per-row float t, the ``ddpm`` metadata, checked before it is kept.

Input and output names, dtypes and the metadata key come from ``ddpm_runtime.contract``.
"""

from __future__ import annotations

import os

import torch

from ddpm_runtime import contract
from ddpm_runtime.external_data import weights_sha256

from .errors import ExportError
from .gate import DEFAULT_ATOL, ExportResult, gate_and_write, prepare_output, quiet_exporter
from .onnx_graph import group_norms_as_layer_norms
from .source import ExportSource, example_inputs

# Opset 23 has the standard Attention and GroupNormalization ops, which torch's exporter emits for
# scaled_dot_product_attention and group_norm. ONNX Runtime runs them with fused kernels: a seed-small
# forward at batch 64 takes 0.49 s on 2 cores against 1.21 s for opset 18's MatMul/Softmax/MatMul,
# which ORT does not fuse. --opset 18 remains for older runtimes (ONNX Runtime < 1.23).
DEFAULT_OPSET = 23

# Where the model will run -> the opset written for it. "web": onnxruntime-web's WebGPU backend (1.30)
# registers its kernels for the ops of opset 21 at the latest (Conv, ConvTranspose, MaxPool, Transpose,
# Reshape, ... of opsets 22-23 and the Attention op have no WebGPU kernel, so at opset 23 those nodes fall
# back to WebAssembly on the CPU, with a copy between GPU and CPU memory at each edge; measured in Debian's
# chromium, tests/web/test_webgpu.py). Opset 21 writes attention as MatMul/Softmax/MatMul, which both of
# onnxruntime-web's backends run.
TARGET_OPSETS = {"cpu": DEFAULT_OPSET, "web": 21}


def target_opset(target: str, opset: int | None) -> int:
    """The opset to write for ``target``, or the ``opset`` the user gave; a contradiction is an error."""
    if target not in TARGET_OPSETS:
        raise ExportError(f"unknown --target {target!r} (choose {', '.join(TARGET_OPSETS)})")
    if opset is None:
        return TARGET_OPSETS[target]
    if target != "cpu" and opset > TARGET_OPSETS[target]:
        raise ExportError(
            f"--target {target} needs opset {TARGET_OPSETS[target]} or lower (its WebGPU backend has no kernels "
            f"for newer ops), got --opset {opset}"
        )
    return opset


def to_onnx_proto(
    source: ExportSource, opset: int = DEFAULT_OPSET, group_norm_rewrite: bool = True, target: str = "cpu"
):
    """The model as torch's exporter writes it, less its per-node notes, with the ddpm metadata; with
    ``group_norm_rewrite`` its GroupNormalization nodes in the form ONNX Runtime's CPU provider runs
    fastest (onnx_graph.py; the same maths, checked by the parity gate)."""
    import onnx

    batch = torch.export.Dim(contract.BATCH_AXIS, min=1, max=65536)
    names = contract.input_names(source.conditional)
    try:
        with quiet_exporter():
            program = torch.onnx.export(
                source.model,
                example_inputs(source),
                input_names=list(names),
                output_names=list(contract.OUTPUT_NAMES),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={name: {0: batch} for name in names},
            )
    except Exception as exc:  # the exporter raises many types; the user gets one line
        raise ExportError(
            f"{source.path}: ONNX export failed at opset {opset} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]})"
        ) from None
    proto = program.model_proto
    written = {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import}.get("ai.onnx")
    if written != opset:
        # torch's exporter raises opsets it cannot target (below 18 it writes 18) without saying so.
        raise ExportError(
            f"{source.path}: this torch exporter cannot write opset {opset} (it wrote {written}); "
            f"choose another --opset (default {DEFAULT_OPSET})"
        )
    strip_source_locations(proto)
    if group_norm_rewrite:
        group_norms_as_layer_norms(proto)
    exporter = {"onnx": onnx.__version__, "opset": written, "format": "onnx"}
    # checked by ddpm-run whenever it opens the file: a damaged weight is one line, not quiet noise
    exporter[contract.WEIGHTS_DIGEST_KEY] = weights_sha256(proto.SerializeToString())
    if target != "cpu":  # a default export's metadata has no target key (older readers know none)
        exporter["target"] = target
    metadata = source.metadata(exporter)
    del proto.metadata_props[:]
    proto.metadata_props.add(key=contract.METADATA_KEY, value=metadata.to_json())
    proto.doc_string = f"DDPM eps-prediction U-Net exported by ddpm-export from {source.path.name}"
    return proto


def strip_source_locations(proto) -> None:
    """Drop the exporter's per-node notes (the Python stack trace, with this machine's absolute source
    paths and line numbers, and the FX node): they would put the exporting user's folders into every
    model file and make the same weights export to different bytes in another checkout."""
    for node in proto.graph.node:
        del node.metadata_props[:]


def open_with_runtime(path: os.PathLike):
    """The exported file as ``ddpm-run`` opens it: metadata, signature and external-data checks included."""
    from ddpm_runtime.onnx_model import load_onnx_model

    return load_onnx_model(path, device="cpu")


def export_onnx(
    source: ExportSource,
    out: str | os.PathLike,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    check: bool = True,
    overwrite: bool = False,
    target: str = "cpu",
) -> ExportResult:
    """Export for ``target`` (at its opset unless ``opset`` is given), validate with onnx.checker
    (full_check), gate on parity, and only then write ``out``."""
    import onnx

    opset = target_opset(target, opset)
    out = prepare_output(out, "model.onnx", source.path, overwrite)
    proto = to_onnx_proto(source, opset, target=target)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(
            f"{source.path}: exported model fails onnx.checker ({' '.join(str(exc).split())[:200]})"
        ) from None
    return gate_and_write(source, proto.SerializeToString(), out, open_with_runtime, atol, check, "ONNX")
