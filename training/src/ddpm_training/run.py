"""``ddpm train`` as a library call: data + settings -> a run folder. The CLI only parses options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch.distributed
from ddpm_runtime.errors import UserError
from ddpm_runtime.schedule import ScheduleConfig

from .checkpoint import checkpoint_configs, load_checkpoint
from .config import preset
from .data import load_images
from .distributed import DistInfo, init_from_env, shutdown
from .errors import TrainingError
from .outputs import RunFolder
from .train_config import TrainConfig
from .trainer import LogRecord, Trainer, fit

STOP_FIELDS = ("epochs", "max_steps", "max_minutes")


@dataclass
class TrainRequest:
    data: Path
    out: Path | None = None  # defaults to the resumed checkpoint's folder
    preset: str | None = None  # defaults to "seed-small", or the resumed checkpoint's config
    train_options: dict = field(default_factory=dict)  # TrainConfig fields the user gave explicitly
    schedule_options: dict = field(default_factory=dict)  # ScheduleConfig fields the user gave explicitly
    resume: Path | None = None
    device: str = "auto"
    limit: int | None = None


@dataclass
class RunSummary:
    folder: Path
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


def _train_config(request: TrainRequest, saved: dict | None) -> TrainConfig:
    options = dict(request.train_options)
    if saved is None:
        return TrainConfig(**options)
    merged = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
    if any(options.get(k) is not None for k in STOP_FIELDS):
        # New stop rules replace the saved ones; without any, the run continues to its original target.
        merged.update({k: None for k in STOP_FIELDS})
    merged.update(options)
    return TrainConfig(**merged)


def run_training(request: TrainRequest, callbacks: Callbacks | None = None) -> RunSummary:
    callbacks = callbacks or Callbacks()
    info, device = init_from_env(request.device)
    try:
        return _run(request, callbacks, info, device)
    finally:
        shutdown()


def _run(request: TrainRequest, callbacks: Callbacks, info: DistInfo, device) -> RunSummary:
    checkpoint = load_checkpoint(request.resume) if request.resume else None
    limit = request.limit
    if limit is None and checkpoint is not None:
        limit = checkpoint.get("data", {}).get("limit")  # a resumed run keeps its --limit unless told otherwise
    data = load_images(request.data, limit)
    if checkpoint is not None:
        saved_model, saved_schedule = checkpoint_configs(request.resume, checkpoint)
        if request.preset is not None:
            wanted = preset(request.preset).with_image(data.channels, data.image_size)
            if wanted != saved_model:
                raise TrainingError(f"{request.resume}: cannot resume: it holds another model config than --preset {request.preset}")
        model_config = saved_model
        schedule_config = ScheduleConfig.from_dict({**saved_schedule.to_dict(), **request.schedule_options})
        train_config = _train_config(request, checkpoint.get("train_config", {}))
    else:
        model_config = preset(request.preset or "seed-small").with_image(data.channels, data.image_size)
        schedule_config = ScheduleConfig(**request.schedule_options)
        train_config = _train_config(request, None)

    folder = RunFolder(request.out or (request.resume.parent if request.resume else Path("runs/ddpm")))
    # Every process checks (it writes nothing lasting), so all of them fail alike on a bad folder
    # instead of rank 0 exiting and the others dying on a broken process group.
    folder.prepare(resuming=checkpoint is not None)
    trainer = Trainer(model_config, schedule_config, train_config, data, device, info)
    trainer.data_info["limit"] = limit
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, source=str(request.resume))
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
    return RunSummary(folder.folder, trainer.step, reason, last_samples[-1] if last_samples else None, info)


__all__ = ["Callbacks", "RunSummary", "TrainRequest", "UserError", "run_training"]
