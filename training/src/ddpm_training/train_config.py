"""Training settings: what a run does (the maths) and when it stops and writes files."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import TrainingError

STOP_FIELDS = ("epochs", "max_steps", "max_minutes")  # a run stops at the first of these it reaches


@dataclass(frozen=True)
class TrainConfig:
    # --- the maths: a resumed run must keep these, or it would not continue the same run
    batch_size: int = 128  # global batch, split evenly over torchrun processes (seed: 128)
    lr: float = 1e-4  # Adam learning rate (seed: 1e-4)
    warmup_steps: int = 0  # linear learning-rate warm-up from lr/warmup_steps to lr; 0 = none (seed)
    ema_decay: float = 0.999  # EMA of the weights for sampling/export; 0.999 suits short CPU runs
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping (the seed does not clip)
    bf16: bool = False  # bfloat16 autocast for the forward pass; the loss stays float32
    loss_weighting: str = "none"  # "none": the seed's L_simple; "min-snr": Min-SNR-gamma (Hang et al. 2023)
    min_snr_gamma: float = 5.0  # the paper's gamma
    lr_schedule: str = "constant"  # after warm-up: "constant" (the seed's) or "cosine" to 0 at the planned end
    seed: int = 0  # data order, timesteps, noise and initial weights all follow from it
    # --- how the step computes without changing the maths (the order of float operations only)
    channels_last: bool = False  # NHWC weights and batches, which oneDNN's convolutions take without reordering
    # --- when to stop (the first one reached) and what to write; free to change on resume
    epochs: float | None = None  # passes over the data; with no stop given at all, 5 epochs (the seed)
    max_steps: int | None = None  # total optimiser steps, counted from the start of the run
    max_minutes: float | None = None  # wall-clock budget of this invocation
    checkpoint_every: int = 500  # steps between checkpoints, loss CSV/plot and sample grids
    log_every: int = 10  # steps between loss readings (averaged over those steps)
    num_preview: int = 16  # images in each sample grid
    preview_steps: int = 20  # model calls of ddpm-run's default sampler for the sample grids

    MATH_FIELDS = (
        "batch_size",
        "lr",
        "warmup_steps",
        "ema_decay",
        "grad_clip",
        "bf16",
        "seed",
        "loss_weighting",
        "min_snr_gamma",
        "lr_schedule",
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingError(f"--{item.name.replace('_', '-')} must be a finite number, got {value}")

        def positive(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if value is None or value <= 0:
                raise TrainingError(f"--{name.replace('_', '-')} must be positive, got {value}")

        for name in ("batch_size", "lr", "checkpoint_every", "log_every", "num_preview", "preview_steps"):
            positive(name)
        for name in ("epochs", "max_steps", "max_minutes"):
            positive(name, allow_none=True)
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise TrainingError("--warmup-steps and --grad-clip must not be negative")
        if self.loss_weighting not in ("none", "min-snr"):
            raise TrainingError(f"--loss-weighting must be none or min-snr, got {self.loss_weighting!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise TrainingError(f"--lr-schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.min_snr_gamma <= 0:
            raise TrainingError(f"--min-snr-gamma must be positive, got {self.min_snr_gamma}")
        if self.seed < 0:
            raise TrainingError(f"--seed must be 0 or more, got {self.seed}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise TrainingError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")

    @property
    def stop_epochs(self) -> float | None:
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            return 5.0
        return self.epochs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, dict):
            raise TrainingError(f"training settings must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise TrainingError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def math_differences(self, other: TrainConfig) -> list[str]:
        return [
            f"{name} {getattr(other, name)!r} -> {getattr(self, name)!r}"
            for name in self.MATH_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]
