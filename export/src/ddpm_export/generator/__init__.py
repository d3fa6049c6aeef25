"""``ddpm export-generator``: a model file and a sampler as one ONNX graph from noise to images.

build.py writes the graph (the runtime's sampler run on graph arrays, the network copied per call);
gate.py checks its images against ddpm-run's before the file is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ddpm_runtime.files import check_free_space, staged_file
from ddpm_runtime.generator_model import load_generator
from ddpm_runtime.metadata import GeneratorEntry
from ddpm_runtime.onnx_model import load_onnx_model

from ..outputs import prepare_output
from .build import GeneratorRequest, build_generator
from .gate import GateReport, compare


class GeneratorMismatch(Exception):
    """The generator's images differ from ddpm-run's beyond the gate: exit code 1, no file kept."""

    def __init__(self, message: str, report: GateReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class GeneratorResult:
    path: Path
    entry: GeneratorEntry
    report: GateReport
    size_bytes: int
    model_size_bytes: int


def export_generator(
    model: str | os.PathLike,
    output: str | os.PathLike,
    request: GeneratorRequest | None = None,
    overwrite: bool = False,
) -> GeneratorResult:
    """Build the generator of the model file ``model``, check it and write it atomically to ``output``."""
    import onnx

    model = Path(model)
    proto, entry = build_generator(model, request or GeneratorRequest())  # refuses a bad model file or request first
    out = prepare_output(output, "generator.onnx", model, overwrite)
    onnx.checker.check_model(proto)  # a failure here is a defect of this exporter: a traceback, not a user error
    data = proto.SerializeToString()
    check_free_space(out, len(data))
    with staged_file(out) as staged:
        staged.write_bytes(data)
        # one session each: the check needs no row split, and a generator's session takes a while to plan
        report = compare(load_onnx_model(model, "cpu", threads=1), load_generator(staged, "cpu", threads=1))
        if not report.passed:
            raise GeneratorMismatch(
                f"generator differs from ddpm-run: {report.describe()}; nothing written to {out}", report
            )
    return GeneratorResult(out, entry, report, len(data), model.stat().st_size)


__all__ = ["GeneratorMismatch", "GeneratorRequest", "GeneratorResult", "build_generator", "export_generator"]
