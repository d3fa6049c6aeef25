"""What both exporters share: the output checks before work, and the parity gate around the write.

The candidate file is written next to its destination first and opened the way its users will open
it (``ddpm_runtime.onnx_model.load_onnx_model`` for ONNX, ``torch.jit.load`` for TorchScript); only
if that loader accepts it and it matches eager PyTorch is it renamed into place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ddpm_runtime.files import check_free_space, staged_file

from .errors import ExportError, ParityError
from .outputs import prepare_output  # noqa: F401  (the exporters import it from here)
from .parity import EpsFn, ParityReport, check_parity
from .source import ExportSource, torch_eps_fn

DEFAULT_ATOL = 1e-4  # float32 parity tolerance: max |eps_exported - eps_torch| over every case


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
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def gate_and_write(
    source: ExportSource,
    model_bytes: bytes,
    out: Path,
    open_candidate: Callable[[Path], EpsFn],
    atol: float,
    check: bool,
    kind: str,
) -> ExportResult:
    """Stage ``model_bytes`` beside ``out``, open it with ``open_candidate`` (the users' loader), compare
    it with eager PyTorch, and rename it onto ``out``; on any failure nothing is left behind."""
    if not atol >= 0 or atol == float("inf"):  # NaN fails the first test
        raise ExportError(f"--atol must be a finite number >= 0, got {atol}")
    report = None
    check_free_space(out, len(model_bytes))  # before the parity gate's work, not after it
    with staged_file(out) as staged:
        staged.write_bytes(model_bytes)
        candidate = open_candidate(staged)  # the loader's own checks run even with --no-check
        if check:
            cfg = source.model_config
            with quiet_exporter():
                report = check_parity(
                    torch_eps_fn(source.model),
                    candidate,
                    (cfg.im_channels, cfg.image_size, cfg.image_size),
                    source.schedule.num_timesteps,
                    atol,
                    num_classes=cfg.num_classes,
                )
            if not report.passed:
                raise ParityError(
                    f"{kind} model differs from PyTorch by {report.worst.max_abs:.2e} > {atol:g}; "
                    f"nothing written to {out}",
                    report,
                )
    return ExportResult(out, report, len(model_bytes))
