"""The training loop: steps until a stop rule holds, with the log and checkpoint callbacks.

Under torchrun every process takes rank 0's decisions (stop, share of the run done), so they step alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..errors import TrainingError
from .distributed import all_mean
from .trainer import LogRecord, NonFiniteError, Trainer


def fit(
    trainer: Trainer,
    on_log: Callable[[LogRecord], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    on_checkpoint: Callable[[Trainer], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """Train until a stop rule holds; returns why it stopped: "steps", "time" or "interrupted".

    ``on_checkpoint`` runs every ``checkpoint_every`` steps and once at the end.
    """
    cfg, info = trainer.config, trainer.dist
    target = trainer.target_steps()
    start = time.monotonic()
    base_elapsed = trainer.elapsed_s
    interval_start, interval_steps = start, 0
    loss_sum = torch.zeros((), device=trainer.device)
    last_checkpoint = trainer.step  # a resumed run starts from a written checkpoint; a new one at step 0 has none
    reason = "steps"

    def flush_log() -> None:
        nonlocal interval_start, interval_steps, loss_sum
        if interval_steps == 0:
            return
        now = time.monotonic()
        mean_loss = float(all_mean(loss_sum / interval_steps, info))
        record = LogRecord(
            step=trainer.step,
            epoch=trainer.epoch,
            loss=mean_loss,
            lr=trainer.lr_at(trainer.step - 1),
            images_per_sec=interval_steps * cfg.batch_size / max(now - interval_start, 1e-9),
            elapsed_s=trainer.elapsed_s,
        )
        trainer.history.append(record)
        if on_log is not None:
            on_log(record)
        interval_start, interval_steps = now, 0
        loss_sum = torch.zeros((), device=trainer.device)

    while target is None or trainer.step < target:
        running_s = time.monotonic() - start
        stop = should_stop() or (cfg.max_minutes is not None and running_s >= cfg.max_minutes * 60)
        progress = 0.0 if target is None else trainer.step / target
        if cfg.max_minutes is not None:
            progress = max(progress, running_s / (cfg.max_minutes * 60))
        if info.enabled:  # every process must take the same decisions (rank 0's), or they fall apart
            flags = torch.tensor([1.0 if stop else 0.0, progress], dtype=torch.float64, device=trainer.device)
            torch.distributed.broadcast(flags, src=0)
            stop, progress = bool(flags[0].item()), float(flags[1].item())
        trainer.progress = progress
        if stop:
            reason = "interrupted" if should_stop() else "time"
            break
        try:
            loss_sum += trainer.train_step()
        except NonFiniteError as exc:
            kept = (
                f"the checkpoint of step {last_checkpoint} is kept" if last_checkpoint else "no checkpoint was written"
            )
            raise TrainingError(f"{exc}; training stopped, {kept}") from None
        interval_steps += 1
        trainer.elapsed_s = base_elapsed + time.monotonic() - start
        if trainer.step % cfg.log_every == 0:
            flush_log()
        if on_step is not None:
            on_step(trainer.step)
        if trainer.step % cfg.checkpoint_every == 0:
            flush_log()
            if on_checkpoint is not None:
                on_checkpoint(trainer)
            last_checkpoint = trainer.step
    flush_log()
    if trainer.step != last_checkpoint and on_checkpoint is not None:
        on_checkpoint(trainer)
    return reason
