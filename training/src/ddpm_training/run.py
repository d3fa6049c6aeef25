"""``ddpm train`` as a library call: data + settings -> a run folder. The CLI only parses options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed

from ddpm_runtime.schedule import NoiseSchedule

from .checkpoint import load_checkpoint
from .data import load_images
from .diffusion import ForwardProcess
from .distributed import DistInfo, init_from_env, shutdown
from .outputs import RunFolder
from .precision import PrecisionChoice, choose_precision, detect_capabilities, step_timer
from .run_settings import RunSettings, TrainRequest, data_limit, resolve_classes, resolve_settings
from .trainer import LogRecord, Trainer, fit


@dataclass
class RunSummary:
    folder: Path
    checkpoint: Path | None  # the run's checkpoint, if one has been written
    step: int
    stop_reason: str
    last_samples: Path | None
    dist: DistInfo


@dataclass
class Callbacks:
    on_start: Callable[[Trainer], None] | None = None
    on_log: Callable[[LogRecord], None] | None = None
    on_step: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] = lambda: False


def run_training(request: TrainRequest, callbacks: Callbacks | None = None) -> RunSummary:
    callbacks = callbacks or Callbacks()
    info, device = init_from_env(request.device)
    try:
        return _run(request, callbacks, info, device)
    finally:
        shutdown()


def _run(request: TrainRequest, callbacks: Callbacks, info: DistInfo, device) -> RunSummary:
    checkpoint = load_checkpoint(request.resume) if request.resume else None
    limit = data_limit(request, checkpoint)
    data = load_images(request.data, limit)
    classes = resolve_classes(request, checkpoint, data)
    settings = resolve_settings(request, checkpoint, data.channels, data.image_size, classes)
    folder = RunFolder(settings.folder)
    # Every process checks, so all of them fail alike on a bad folder instead of rank 0 exiting and
    # the others dying on a broken process group. Nothing is created until every input is validated.
    folder.check(request.resume)
    precision = decide_precision(request, checkpoint, settings, device, info)
    settings = replace(settings, train_config=replace(settings.train_config, bf16=precision.bf16))
    trainer = Trainer(
        settings.model_config, settings.schedule_config, settings.train_config, data, device, info, settings.classes
    )
    trainer.data_info["limit"] = limit
    trainer.precision = precision
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, source=str(request.resume))
    folder.prepare()
    if info.is_main:
        folder.remove_stale_temporaries()  # what a kill -9 during a write left behind
        if checkpoint is not None and not folder.preview_path(trainer.step).exists():
            folder.write_preview(trainer)  # the grid a kill between checkpoint and grid never wrote
    if callbacks.on_start is not None:
        callbacks.on_start(trainer)

    last_samples: list[Path] = []

    def on_checkpoint(t: Trainer) -> None:
        if info.is_main:
            last_samples.append(folder.write(t))

    reason = fit(trainer, callbacks.on_log, callbacks.on_step, on_checkpoint, callbacks.should_stop)
    if info.enabled:
        # Rank 0 may still be writing the last checkpoint and sample grid; a rank that tears down the
        # process group before the others finish aborts in gloo ("terminate called without an active
        # exception"). Only on this normal path: after an error a barrier could wait forever.
        torch.distributed.barrier()
    checkpoint_path = folder.checkpoint_path if folder.checkpoint_path.is_file() else None
    return RunSummary(
        folder.folder, checkpoint_path, trainer.step, reason, last_samples[-1] if last_samples else None, info
    )


def decide_precision(
    request: TrainRequest, checkpoint: dict | None, settings: RunSettings, device, info: DistInfo
) -> PrecisionChoice:
    """The run's precision. A resumed run keeps its own (the choice is part of the maths; an explicit
    other one is refused by ``Trainer.load_state_dict``); a new run with auto times both on this machine,
    every process alike, and all follow rank 0's timings, so they cannot decide differently."""
    bf16 = settings.train_config.bf16
    if checkpoint is not None:
        saved = checkpoint.get("precision")
        if saved is not None and PrecisionChoice.from_dict(saved).bf16 == bf16:
            return PrecisionChoice.from_dict(saved)
        return PrecisionChoice(request.precision, bf16, "a checkpoint that predates --precision")
    if request.precision != "auto" or "bf16" in request.train_options:
        return choose_precision("bf16" if bf16 else "fp32", detect_capabilities(device))
    capabilities = detect_capabilities(device)
    forward = ForwardProcess(NoiseSchedule.from_config(settings.schedule_config), device)
    timer = step_timer(settings.model_config, forward, settings.train_config.batch_size // info.world_size, device)
    if info.enabled and capabilities.device_type == "cpu" and capabilities.bf16:
        measured = torch.tensor(timer(), dtype=torch.float64)
        torch.distributed.broadcast(measured, src=0)
        fp32_s, bf16_s = measured.tolist()
        return choose_precision("auto", capabilities, lambda: (fp32_s, bf16_s))
    return choose_precision("auto", capabilities, timer)


__all__ = ["Callbacks", "RunSummary", "TrainRequest", "run_training"]
