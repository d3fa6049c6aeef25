"""What `ddpm train` and `ddpm distill` share around the loop: the run's compute, its settings on
resume, and its life in a run folder (previews, checkpoints, clean-up after a failure, the summary)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed

from ddpm_runtime.errors import UserError
from ddpm_runtime.files import check_free_space
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig

from ..diffusion.forward import ForwardProcess
from ..errors import TrainingError
from ..model.config import UNetConfig
from .compute import ComputeChoice, Timer, choose_compute, detect_capabilities, layout_name, precision_name, step_timer
from .config import STOP_FIELDS, TrainConfig
from .distributed import DistInfo, rank0_error
from .loop import fit
from .run_folder import RunFolder
from .trainer import LogRecord, Trainer


@dataclass(kw_only=True)
class RunSummary:
    folder: Path
    checkpoint: Path | None  # the run's checkpoint, if one has been written
    step: int
    stop_reason: str
    last_samples: Path | None
    dist: DistInfo


@dataclass(kw_only=True)
class Callbacks:
    on_start: Callable[[Trainer], None] | None = None
    on_log: Callable[[LogRecord], None] | None = None
    on_step: Callable[[int], None] | None = None
    on_checkpoint: Callable[[int], None] | None = None  # the step whose checkpoint was just written
    should_stop: Callable[[], bool] = lambda: False


def resumed_train_config(checkpoint: dict, options: dict, source) -> TrainConfig:
    """A resumed run's settings: the checkpoint's, then the options given. New stop rules replace all
    the saved ones; without any, the run continues to its original target."""
    try:
        saved = TrainConfig.from_dict(checkpoint.get("train_config", {})).to_dict()
    except TrainingError as exc:
        raise TrainingError(f"{source}: {exc}") from None
    if any(options.get(name) is not None for name in STOP_FIELDS):
        saved.update(dict.fromkeys(STOP_FIELDS))
    return TrainConfig(**{**saved, **options})


def run_compute(
    precision: str,
    layout: str,
    config: TrainConfig,
    checkpoint: dict | None,
    model_config: UNetConfig,
    schedule_config: ScheduleConfig,
    device,
    info: DistInfo,
) -> ComputeChoice:
    """The run's precision and memory layout (compute.py). A resumed run keeps its own, so that it goes
    on bit for bit (another precision is refused by ``Trainer.load_state_dict``: it is part of the maths);
    a new run times what is auto on this machine, every process alike, and all follow rank 0's timings,
    so they cannot decide differently."""
    if checkpoint is not None:
        saved = checkpoint.get("compute")
        if saved is not None and (saved["bf16"], saved["channels_last"]) == (config.bf16, config.channels_last):
            return ComputeChoice.from_dict(saved)
        precision, layout = precision_name(config.bf16), layout_name(config.channels_last)
        return ComputeChoice(
            precision=precision,
            layout=layout,
            bf16=config.bf16,
            channels_last=config.channels_last,
            reason="the resumed run's, or as given",
        )
    forward = ForwardProcess(NoiseSchedule.from_config(schedule_config), device)
    timer = step_timer(model_config, forward, config.batch_size // info.world_size, device)
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


@contextmanager
def holding(folder: RunFolder, resume: Path | None, info: DistInfo) -> Iterator[None]:
    """The run's life in ``folder``: rank 0 takes its lock (one process per run folder) and, under it,
    refuses a folder that holds another run; a refusal is every process's one line. If the run fails
    before its first checkpoint, what it created goes again. The lock goes with the process."""
    error = None
    if info.is_main:
        try:
            folder.lock.acquire()
            folder.check(resume)
        except UserError as exc:
            folder.lock.discard()
            error = str(exc)
            if not info.enabled:
                raise
    error = rank0_error(error, info)
    if error is not None:
        raise TrainingError(error)
    try:
        yield
    except BaseException:
        if info.is_main and not folder.checkpoint_path.exists():
            folder.remove_empty(folder.created)
            folder.lock.discard()
        raise
    finally:
        folder.lock.release()


def run_in_folder(
    trainer: Trainer,
    folder: RunFolder,
    checkpoint: dict | None,
    resume: Path | None,
    callbacks: Callbacks,
    info: DistInfo,
) -> RunSummary:
    """Train in ``folder`` (held, see ``holding``): create what it needs, run, write, summarise."""
    if checkpoint is not None:
        # The next checkpoint is about this size and is written beside the old one: a full disk is
        # found now, not after the training it was to keep.
        check_free_space(folder.checkpoint_path, Path(resume).stat().st_size)
        if folder.checkpoint_path.exists() and os.path.samefile(folder.checkpoint_path, resume):
            folder.written_step = int(checkpoint["step"])  # so the next write keeps it as checkpoint-STEP.pt
    folder.prepare()
    return _train_in_folder(trainer, folder, checkpoint, callbacks, info)


def _train_in_folder(
    trainer: Trainer, folder: RunFolder, checkpoint: dict | None, callbacks: Callbacks, info: DistInfo
) -> RunSummary:
    if info.is_main:
        folder.remove_stale_temporaries()  # what a kill -9 during a write left behind
        if checkpoint is not None and not folder.preview_path(trainer.step).exists():
            folder.write_preview(trainer)  # the grid a kill between checkpoint and grid never wrote
    if callbacks.on_start is not None:
        callbacks.on_start(trainer)

    last_samples: list[Path] = []

    def on_checkpoint(t: Trainer) -> None:
        error = None
        if info.is_main:
            try:
                last_samples.append(folder.write(t))
            except UserError as exc:  # a full disk, say: every rank stops with its line, not in gloo
                if not info.enabled:
                    raise
                error = str(exc)
        error = rank0_error(error, info)
        if error is not None:
            raise TrainingError(error)
        if info.is_main and callbacks.on_checkpoint is not None:
            callbacks.on_checkpoint(t.step)

    reason = fit(trainer, callbacks.on_log, callbacks.on_step, on_checkpoint, callbacks.should_stop)
    if info.enabled:
        # Rank 0 may still be writing the last checkpoint and sample grid: no rank leaves before it is
        # done (how a worker leaves: process_exit.py). Only on this normal path: after an error a barrier
        # could wait forever.
        torch.distributed.barrier()
    checkpoint_path = folder.checkpoint_path if folder.checkpoint_path.is_file() else None
    return RunSummary(
        folder=folder.folder,
        checkpoint=checkpoint_path,
        step=trainer.step,
        stop_reason=reason,
        last_samples=last_samples[-1] if last_samples else None,
        dist=info,
    )
