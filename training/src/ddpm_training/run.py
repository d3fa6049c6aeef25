"""``ddpm train`` as a library call: data + settings -> a run folder. The CLI only parses options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed

from ddpm_runtime.files import check_free_space
from ddpm_runtime.schedule import NoiseSchedule

from .checkpoint import load_checkpoint
from .compute import (
    ComputeChoice,
    Timer,
    choose_compute,
    detect_capabilities,
    layout_name,
    precision_name,
    step_timer,
)
from .data import load_images
from .diffusion import ForwardProcess
from .distributed import DistInfo, init_from_env, shutdown
from .outputs import RunFolder
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
    info, device = init_from_env(request.device, request.deterministic)
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
    compute = decide_compute(request, checkpoint, settings, device, info)
    train_config = replace(settings.train_config, bf16=compute.bf16, channels_last=compute.channels_last)
    settings = replace(settings, train_config=train_config)
    trainer = Trainer(
        settings.model_config, settings.schedule_config, settings.train_config, data, device, info, settings.classes
    )
    trainer.data_info["limit"] = limit
    trainer.compute = compute
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, source=str(request.resume))
        # The next checkpoint is about this size and is written beside the old one: a full disk is
        # found now, not after the training it was to keep.
        check_free_space(folder.checkpoint_path, Path(request.resume).stat().st_size)
    created = folder.prepare()
    try:
        return train_in_folder(trainer, folder, checkpoint, callbacks, info)
    except BaseException:
        if info.is_main and not folder.checkpoint_path.exists():
            folder.remove_empty(created)
        raise


def train_in_folder(
    trainer: Trainer, folder: RunFolder, checkpoint: dict | None, callbacks: Callbacks, info
) -> RunSummary:
    """Run ``fit`` on a prepared folder: previews, checkpoints, the summary (ddpm train and ddpm distill)."""
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


def decide_compute(
    request: TrainRequest, checkpoint: dict | None, settings: RunSettings, device, info: DistInfo
) -> ComputeChoice:
    """The run's precision and memory layout (compute.py). A resumed run keeps its own, so that it goes
    on bit for bit (another precision is refused by ``Trainer.load_state_dict``: it is part of the maths);
    a new run times what is auto on this machine, every process alike, and all follow rank 0's timings,
    so they cannot decide differently."""
    config = settings.train_config
    if checkpoint is not None:
        saved = checkpoint.get("compute")
        if saved is not None and (saved["bf16"], saved["channels_last"]) == (config.bf16, config.channels_last):
            return ComputeChoice.from_dict(saved)
        precision, layout = precision_name(config.bf16), layout_name(config.channels_last)
        return ComputeChoice(precision, layout, config.bf16, config.channels_last, "the resumed run's, or as given")
    options = request.train_options  # a library caller may set bf16 / channels_last directly
    precision = precision_name(config.bf16) if "bf16" in options else request.precision
    layout = layout_name(config.channels_last) if "channels_last" in options else request.layout
    forward = ForwardProcess(NoiseSchedule.from_config(settings.schedule_config), device)
    timer = step_timer(settings.model_config, forward, config.batch_size // info.world_size, device)
    return choose_compute(precision, layout, detect_capabilities(device), rank0_timings(timer, info, device))


def rank0_timings(timer: Timer, info: DistInfo, device) -> Timer:
    """Under torchrun every process times (as it will train: beside the others) and takes rank 0's figures."""
    if not info.enabled:
        return timer

    def shared(variants):
        measured = timer(variants)
        values = torch.tensor([measured[v] for v in variants], dtype=torch.float64, device=device)
        torch.distributed.broadcast(values, src=0)
        return dict(zip(variants, values.tolist(), strict=True))

    return shared


__all__ = ["Callbacks", "RunSummary", "TrainRequest", "run_training"]
