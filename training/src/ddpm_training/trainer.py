"""The training loop: Adam on L_simple, EMA, clipping, optional bf16, exact resume, DDP.

No files are written here: the loop reports through callbacks (see ``outputs.py`` for the files).

Determinism: the data order of epoch e is a permutation drawn from (seed, e); timesteps and noise
come from one torch generator whose state is checkpointed. Every process draws the *global* batch's
timesteps and noise and keeps its own slice, so K processes with batch B train on the same numbers
as one process with batch B (up to the order of float additions in the gradient all-reduce).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ddpm_runtime.images import to_model_range
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig

from .classes import ClassConditioning
from .compute import ComputeChoice, layout_name, precision_name
from .config import UNetConfig
from .data import ImageData
from .diffusion import ForwardProcess
from .distributed import DistInfo, all_mean
from .ema import EMA
from .errors import TrainingError
from .objective import NoiseLevels, diffusion_loss
from .prediction import eps_network
from .train_config import TrainConfig
from .unet import Unet


class NonFiniteError(TrainingError):
    """The loss or the gradients became NaN or infinite: training cannot go on from here."""


@dataclass(frozen=True)
class LogRecord:
    step: int
    epoch: float
    loss: float  # mean L_simple over the steps since the previous record, all processes
    lr: float
    images_per_sec: float
    elapsed_s: float  # training seconds since the run began, over all invocations

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    def __init__(
        self,
        model_config: UNetConfig,
        schedule_config: ScheduleConfig,
        train_config: TrainConfig,
        data: ImageData,
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
        classes: ClassConditioning | None = None,
    ):
        self.model_config = model_config
        self.classes = _check_classes(model_config, data, classes)
        self.schedule = NoiseSchedule.from_config(schedule_config)
        self.config = train_config
        self.device = torch.device(device)
        self.dist = dist_info = dist_info or DistInfo()
        self.data_info = {
            "fingerprint": data.fingerprint,
            "num_images": data.num_images,
            "channels": data.channels,
            "image_size": data.image_size,
            "source": data.source,
        }
        if (data.channels, data.image_size) != (model_config.im_channels, model_config.image_size):
            raise TrainingError(
                f"{data.source}: images are {data.channels}x{data.image_size}x{data.image_size} but the model expects "
                f"{model_config.im_channels}x{model_config.image_size}x{model_config.image_size}"
            )
        if train_config.batch_size % dist_info.world_size:
            raise TrainingError(
                f"--batch-size {train_config.batch_size} must divide evenly over {dist_info.world_size} processes"
            )
        if data.num_images < train_config.batch_size:
            raise TrainingError(
                f"{data.source}: {data.num_images} images are fewer than one batch of {train_config.batch_size}"
            )
        # Every batch is full: the last partial batch of an epoch is dropped (it is reshuffled into the next).
        self.steps_per_epoch = data.num_images // train_config.batch_size
        self.local_batch = train_config.batch_size // dist_info.world_size

        torch.manual_seed(train_config.seed)  # initial weights
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.model = Unet(model_config).to(self.device, memory_format=self.memory_format)
        self.ema = EMA(self.model, train_config.ema_decay)
        # fused: one kernel over all parameters, 2-3% of a fast-preset step on CPU (BENCHMARKS.md, "Portable speed")
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_config.lr, betas=(0.9, train_config.adam_beta2), fused=True
        )
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
            if dist_info.enabled
            else self.model
        )
        self.forward_process = ForwardProcess(self.schedule, self.device)
        self.noise_levels = NoiseLevels(
            train_config.noise_levels, self.forward_process, train_config.p_mean, train_config.p_std
        )
        self.parameterisation = train_config.parameterisation
        self.images = torch.tensor(data.images, device=self.device)  # (N, H, W, C) uint8, decoded once
        self.labels = torch.tensor(data.labels, device=self.device) if self.classes else None  # (N,) int64
        self.generator = torch.Generator().manual_seed(train_config.seed)  # timesteps and noise
        self.step = 0
        self.elapsed_s = 0.0
        # Share of the planned run done, in [0, 1]: steps against the step target, or this invocation's
        # time against --max-minutes, whichever is further (fit() keeps it current). Only the cosine
        # learning rate reads it; with --max-minutes that makes the run depend on the machine's speed.
        self.progress = 0.0
        self.history: list[LogRecord] = []
        # How precision and layout were decided (run.py replaces this with the options' outcome); checkpointed
        bf16, channels_last = train_config.bf16, train_config.channels_last
        names = precision_name(bf16), layout_name(channels_last)
        self.compute = ComputeChoice(*names, bf16, channels_last, "TrainConfig")
        self._epoch_cache: tuple[int, torch.Tensor] | None = None

    def eps_model(self, ema: bool = True) -> torch.nn.Module:
        """The EMA (or raw) network as the samplers take it: x_t, t[, y] -> eps, whatever it predicts."""
        network = self.ema.model if ema else self.model
        return eps_network(network, self.parameterisation, self.schedule.alpha_bars)

    def describe(self) -> str:
        """The run's first line: what is trained on what."""
        from .unet import count_parameters

        return (
            f"training {count_parameters(self.model):,} parameters on {self.data_info['num_images']:,} images "
            f"({self.device}, {self.dist.world_size} process(es))"
        )

    def preview_sampling(self) -> tuple[str | None, np.ndarray | None]:
        """Sampler and call times of the run's preview grids; (None, None): ddpm-run's defaults."""
        return None, None

    # ---- one step
    def lr_at(self, step: int) -> float:
        """Linear warm-up, then constant or a cosine to 0 over the planned run (``self.progress``)."""
        warmup = self.config.warmup_steps
        if warmup and step + 1 < warmup:
            return self.config.lr * (step + 1) / warmup
        if self.config.lr_schedule == "cosine":
            return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(self.progress, 1.0)))
        return self.config.lr

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.images))
            self._epoch_cache = (epoch, torch.from_numpy(order).to(self.device))
        return self._epoch_cache[1]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This process's (x0, noise, t, y) for ``step``; draws the global batch's t and noise (and, for a
        conditional model, which labels become "no class") from the generator. y is None when unconditional."""
        batch_size, local = self.config.batch_size, self.local_batch
        epoch, position = divmod(step, self.steps_per_epoch)
        indices = self._permutation(epoch)[position * batch_size : (position + 1) * batch_size]
        rows = slice(self.dist.rank * local, (self.dist.rank + 1) * local)
        shape = (batch_size, self.model_config.im_channels, self.model_config.image_size, self.model_config.image_size)
        t = self.noise_levels.draw(batch_size, self.generator)
        noise = torch.randn(shape, generator=self.generator)
        x0 = to_model_range(self.images[indices[rows]].permute(0, 3, 1, 2).float())  # (b, C, H, W) in [-1, 1]
        x0 = x0.contiguous(memory_format=self.memory_format)
        y = None
        if self.labels is not None:
            # Drawn after t and noise, and only here: an unconditional run's random numbers are untouched.
            dropped = torch.rand((batch_size,), generator=self.generator) < self.classes.label_dropout
            y = torch.where(dropped[rows].to(self.device), self.model_config.null_class, self.labels[indices[rows]])
        noise = noise[rows].to(self.device).contiguous(memory_format=self.memory_format)
        return x0, noise, t[rows].to(self.device), y

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (detached) loss of this process's batch."""
        cfg = self.config
        x0, noise, t, y = self.batch(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.ddp.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            loss = diffusion_loss(
                self.ddp,
                self.forward_process,
                x0,
                noise,
                t,
                self.parameterisation,
                cfg.loss_weighting,
                cfg.min_snr_gamma,
                y,
            )
        return self.apply_gradients(loss)

    def apply_gradients(self, loss: torch.Tensor) -> torch.Tensor:
        """The rest of an optimiser step after the forward pass: backward, clipping, the finite check,
        Adam and the EMA update; returns the detached loss (ddpm distill's step shares it)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # The global gradient norm, clipped to grad_clip (with clipping off, max_norm=inf scales by exactly 1).
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        loss = loss.detach()
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            # Checked before the update, so the weights (and every checkpoint) stay finite. DDP averages
            # gradients before this point, so every process sees the same norm and stops alike.
            raise NonFiniteError(
                f"step {self.step + 1}: the loss is {loss.item():.4g} and the gradient norm {grad_norm.item():.4g}; "
                f"the weights were not updated (lower --lr, now {self.config.lr:g}, or keep --grad-clip on)"
            )
        self.optimizer.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        return loss

    def target_steps(self) -> int:
        targets = []
        if self.config.max_steps is not None:
            targets.append(self.config.max_steps)
        if self.config.stop_epochs is not None:
            targets.append(round(self.config.stop_epochs * self.steps_per_epoch))
        return min(targets) if targets else 2**62

    # ---- checkpoint state
    def state_dict(self) -> dict:
        classes = {} if self.classes is None else {"classes": self.classes.to_dict()}
        return {
            **classes,
            "model_config": self.model_config.to_dict(),
            "schedule": self.schedule.config.to_dict(),
            "train_config": self.config.to_dict(),
            "data": dict(self.data_info),
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "elapsed_s": self.elapsed_s,
            "compute": self.compute.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"train": self.generator.get_state(), "torch": torch.get_rng_state()},
            "history": [r.to_dict() for r in self.history],
            "versions": {"torch": str(torch.__version__), "ddpm_training": _package_version()},
        }

    def load_state_dict(self, checkpoint: dict, source: str = "checkpoint") -> None:
        """Continue the run in ``checkpoint``; it must be the same model, schedule, data and maths."""
        problems = []
        if checkpoint["model_config"] != self.model_config.to_dict():
            problems.append("the model config differs")
        if checkpoint["schedule"] != self.schedule.config.to_dict():
            problems.append("the noise schedule differs")
        fingerprint = checkpoint.get("data", {}).get("fingerprint")
        if fingerprint != self.data_info["fingerprint"]:
            problems.append(f"it was trained on other data ({checkpoint.get('data', {}).get('source', '?')})")
        saved_classes = ClassConditioning.from_checkpoint(checkpoint, source)
        if saved_classes != self.classes:
            problems.append(f"the classes differ ({saved_classes} -> {self.classes})")
        saved = TrainConfig.from_dict(checkpoint.get("train_config", {}))
        problems += [f"training setting {d}" for d in self.config.math_differences(saved)]
        if problems:
            raise TrainingError(f"{source}: cannot resume: {'; '.join(problems)}")
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.ema.model.load_state_dict(checkpoint["ema"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise TrainingError(f"{source}: checkpoint weights do not fit the model ({str(exc)[:120]})") from None
        self.generator.set_state(checkpoint["rng"]["train"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.step = int(checkpoint["step"])
        self.elapsed_s = float(checkpoint.get("elapsed_s", 0.0))
        self.history = [LogRecord(**r) for r in checkpoint.get("history", [])]


def _check_classes(model_config: UNetConfig, data: ImageData, classes) -> ClassConditioning | None:
    if not model_config.num_classes:
        if classes is not None:
            raise TrainingError("class conditioning was given for an unconditional model")
        return None
    if classes is None or classes.num_classes != model_config.num_classes:
        raise TrainingError(f"a model with {model_config.num_classes} classes needs as many class names, got {classes}")
    if data.labels is None:
        raise TrainingError(f"{data.source}: a class-conditional model needs labels, and this data has none")
    if data.labels.size and (data.labels.min() < 0 or data.labels.max() >= model_config.num_classes):
        raise TrainingError(
            f"{data.source}: labels must lie in 0..{model_config.num_classes - 1} (the model's classes), "
            f"found {int(data.labels.min())}..{int(data.labels.max())}"
        )
    return classes


def _package_version() -> str:
    from . import __version__

    return __version__


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
            epoch=trainer.step / trainer.steps_per_epoch,
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

    while trainer.step < target:
        running_s = time.monotonic() - start
        stop = should_stop() or (cfg.max_minutes is not None and running_s >= cfg.max_minutes * 60)
        progress = trainer.step / target if target < 2**62 else 0.0
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
