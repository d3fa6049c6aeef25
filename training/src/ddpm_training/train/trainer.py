"""The optimisation state and one step: network, EMA, Adam, DDP, the generator, and an objective.

What is learnt is the objective's business (``Objective``): ``DataObjective`` (data_objective.py)
denoises the training images, ``ddpm distill``'s objective regresses onto a teacher's trajectories.
The Trainer runs the step around it (learning rate, autocast, backward, clipping, the finite check,
Adam, the EMA) and holds everything a checkpoint must keep to continue exactly. No files here.

Determinism: the objective draws every random number of a step from ``Trainer.generator``, whose
state is checkpointed with the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig

from ..data.classes import ClassConditioning
from ..diffusion.parameterisation import eps_network
from ..errors import TrainingError
from ..model.config import UNetConfig
from ..model.unet import Unet, count_parameters
from .compute import ComputeChoice, layout_name, precision_name
from .config import TrainConfig
from .distributed import DistInfo
from .ema import EMA


class NonFiniteError(TrainingError):
    """The loss or the gradients became NaN or infinite: training cannot go on from here."""


@dataclass(frozen=True, kw_only=True)
class LogRecord:
    step: int
    epoch: float
    loss: float  # mean loss over the steps since the previous record, all processes
    lr: float
    images_per_sec: float
    elapsed_s: float  # training seconds since the run began, over all invocations

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreviewSampling:
    """How a run's sample grids are drawn: the model's default sampling (``ddpm_runtime.default_sampling``,
    what `ddpm-run sample` will use on its export) and, for a student, its own call times."""

    default: dict | None
    timesteps: np.ndarray | None = None


class Objective(Protocol):
    """What a Trainer learns. ``loss`` draws the step's batch from ``generator`` and returns the loss of
    ``network`` on it (the Trainer has set autocast); the rest describes and checkpoints it."""

    steps_per_epoch: int | None  # None: the objective sees no data, so there are no epochs
    data_info: dict  # what the checkpoint says of the data (fingerprint, source, ...)

    def loss(self, network: torch.nn.Module, step: int, generator: torch.Generator) -> torch.Tensor: ...

    def describe(self, parameters: int) -> str: ...

    def preview(self) -> PreviewSampling: ...

    def state_dict(self) -> dict: ...  # entries the checkpoint adds to the Trainer's

    def check_resume(self, checkpoint: dict, source: str) -> list[str]: ...  # why it cannot resume, if so

    def load_state_dict(self, checkpoint: dict, source: str) -> None: ...


class Trainer:
    def __init__(
        self,
        model_config: UNetConfig,
        schedule_config: ScheduleConfig,
        train_config: TrainConfig,
        objective: Objective,
        *,
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
        classes: ClassConditioning | None = None,
        initial_weights: dict | None = None,
    ):
        """``initial_weights``: a state dict to start from (a student starts as its teacher); None: the
        network's own initialisation, drawn from ``train_config.seed``."""
        self.model_config = model_config
        self.classes = classes
        self.schedule = NoiseSchedule.from_config(schedule_config)
        self.config = train_config
        self.objective = objective
        self.device = torch.device(device)
        self.dist = dist_info = dist_info or DistInfo()
        if train_config.batch_size % dist_info.world_size:
            raise TrainingError(
                f"--batch-size {train_config.batch_size} must divide evenly over {dist_info.world_size} processes"
            )
        torch.manual_seed(train_config.seed)  # initial weights
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        model = Unet(model_config)
        if initial_weights is not None:
            model.load_state_dict(initial_weights)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.ema = EMA(self.model, train_config.ema_decay)
        # fused: one kernel over all parameters (docs/benchmarks/speed.md, "Levers")
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_config.lr, betas=(0.9, train_config.adam_beta2), fused=True
        )
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
            if dist_info.enabled
            else self.model
        )
        self.parameterisation = train_config.parameterisation
        self.generator = torch.Generator().manual_seed(train_config.seed)  # every random number of a step
        self.step = 0
        self.elapsed_s = 0.0
        # Share of the planned run done, in [0, 1]: steps against the step target, or this invocation's
        # time against --max-minutes, whichever is further (fit() keeps it current). Only the cosine
        # learning rate reads it; with --max-minutes that makes the run depend on the machine's speed.
        self.progress = 0.0
        self.history: list[LogRecord] = []
        # How precision and layout were decided (the run replaces this with the options' outcome); checkpointed
        bf16, channels_last = train_config.bf16, train_config.channels_last
        self.compute = ComputeChoice(
            precision=precision_name(bf16),
            layout=layout_name(channels_last),
            bf16=bf16,
            channels_last=channels_last,
            reason="as given",
        )

    @property
    def data_info(self) -> dict:
        return self.objective.data_info

    @property
    def epoch(self) -> float:
        per_epoch = self.objective.steps_per_epoch
        return self.step / per_epoch if per_epoch else 0.0

    def eps_model(self) -> torch.nn.Module:
        """The EMA network as the samplers take it: x_t, t[, y] -> eps, whatever it predicts."""
        return eps_network(self.ema.model, self.parameterisation, self.schedule.alpha_bars)

    def describe(self) -> str:
        """The run's first line: what is trained on what."""
        return self.objective.describe(count_parameters(self.model))

    # ---- one step
    def lr_at(self, step: int) -> float:
        """Linear warm-up, then constant or a cosine to 0 over the planned run (``self.progress``)."""
        warmup = self.config.warmup_steps
        if warmup and step + 1 < warmup:
            return self.config.lr * (step + 1) / warmup
        if self.config.lr_schedule == "cosine":
            return self.config.lr * 0.5 * (1.0 + math.cos(math.pi * min(self.progress, 1.0)))
        return self.config.lr

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (detached) loss of this process's batch."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.ddp.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            loss = self.objective.loss(self.ddp, self.step, self.generator)
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

    def target_steps(self) -> int | None:
        """The step the run stops at, or None when only time (--max-minutes) or a signal stops it."""
        targets = []
        if self.config.max_steps is not None:
            targets.append(self.config.max_steps)
        if self.config.stop_epochs is not None and self.objective.steps_per_epoch:
            targets.append(round(self.config.stop_epochs * self.objective.steps_per_epoch))
        return min(targets) if targets else None

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
            "epoch": self.epoch,
            "elapsed_s": self.elapsed_s,
            "compute": self.compute.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"train": self.generator.get_state(), "torch": torch.get_rng_state()},
            "history": [r.to_dict() for r in self.history],
            "versions": {"torch": str(torch.__version__), "ddpm_training": _package_version()},
            **self.objective.state_dict(),
        }

    def load_state_dict(self, checkpoint: dict, source: str = "checkpoint") -> None:
        """Continue the run in ``checkpoint``; it must be the same model, schedule, data, objective and maths."""
        problems = self.objective.check_resume(checkpoint, source)
        if checkpoint["model_config"] != self.model_config.to_dict():
            problems.append("the model config differs")
        if checkpoint["schedule"] != self.schedule.config.to_dict():
            problems.append("the noise schedule differs")
        fingerprint = checkpoint.get("data", {}).get("fingerprint")
        if fingerprint != self.data_info.get("fingerprint"):
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
        self.objective.load_state_dict(checkpoint, source)
        self.generator.set_state(checkpoint["rng"]["train"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.step = int(checkpoint["step"])
        self.elapsed_s = float(checkpoint.get("elapsed_s", 0.0))
        self.history = [LogRecord(**r) for r in checkpoint.get("history", [])]


def _package_version() -> str:
    from .. import __version__

    return __version__
