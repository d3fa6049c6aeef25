"""Training settings: what a run does (the maths) and when it stops and writes files."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..diffusion.objective import LOSS_WEIGHTINGS, NOISE_LEVELS
from ..diffusion.parameterisation import PREDICTIONS
from ..errors import TrainingError

LR_SCHEDULES = ("constant", "cosine")
STOP_FIELDS = ("epochs", "max_steps", "max_minutes")  # a run stops at the first of these it reaches


def option(default, help: str, choices: tuple[str, ...] | None = None, cli: bool = True):
    """A setting with its command-line help (and choices): ``ddpm train`` makes its options from these."""
    return field(default=default, metadata={"help": help, "choices": choices, "cli": cli})


@dataclass(frozen=True)
class TrainConfig:
    # --- the maths: a resumed run must keep these, or it would not continue the same run
    batch_size: int = option(128, "Global batch size, split over torchrun processes (seed: 128).")
    lr: float = option(1e-4, "Adam learning rate (seed: 1e-4).")
    adam_beta2: float = option(0.999, "Adam's beta2, the decay of its squared-gradient average (seed: 0.999).")
    warmup_steps: int = option(0, "Linear learning-rate warm-up steps from lr/warmup_steps to lr (0: none, the seed).")
    ema_decay: float = option(0.999, "Decay of the weights' EMA used for samples and export.")
    grad_clip: float = option(1.0, "Clip the global gradient norm to this (0: off; the seed does not clip).")
    bf16: bool = option(False, "bfloat16 autocast for the forward pass; the loss stays float32.", cli=False)
    noise_levels: str = option(
        "uniform",
        "Where training puts its noise levels: uniform integer t (the seed's), or log-normal: "
        "ln sigma ~ N(p-mean, p-std^2) (EDM), or logsnr-uniform: log SNR uniform over the schedule (where "
        "ddpm-run's default spacing calls the model), as fractional t.",
        NOISE_LEVELS,
    )
    p_mean: float = option(-1.2, "Mean of ln sigma for --noise-levels log-normal (EDM's).")
    p_std: float = option(1.2, "Standard deviation of ln sigma for --noise-levels log-normal (EDM's).")
    prediction: str = option(
        "epsilon",
        "What the network predicts: epsilon (the seed's), v (Salimans and Ho 2022) or edm (Karras et al. "
        "2022's preconditioning); exported models output eps whichever it is.",
        PREDICTIONS,
    )
    sigma_data: float = option(0.5, "The data's standard deviation, for --prediction edm (EDM's default).")
    loss_weighting: str = option(
        "none",
        "none: the plain MSE of what the network predicts (for epsilon the seed's L_simple); min-snr: "
        "Min-SNR-gamma (Hang et al. 2023).",
        LOSS_WEIGHTINGS,
    )
    min_snr_gamma: float = option(5.0, "gamma of --loss-weighting min-snr (the paper's).")
    lr_schedule: str = option(
        "constant",
        "After warm-up: constant (the seed's), or a cosine to 0 at the end of --max-steps/--epochs or --max-minutes.",
        LR_SCHEDULES,
    )
    seed: int = option(0, "Seed for weights, data order, timesteps and noise.")
    # --- how the step computes without changing the maths (the order of float operations only)
    channels_last: bool = option(False, "NHWC weights and batches, which oneDNN's convolutions take.", cli=False)
    # --- when to stop (the first one reached) and what to write; free to change on resume
    epochs: float | None = option(None, "Passes over the data (5, the seed's, when no stop option is given).")
    max_steps: int | None = option(None, "Stop after this many optimiser steps in total.")
    max_minutes: float | None = option(None, "Stop after this many minutes of this invocation.")
    checkpoint_every: int = option(500, "Steps between checkpoints, loss CSV/plot and sample grids.")
    log_every: int = option(10, "Steps between loss readings (averaged over those steps).")
    num_preview: int = option(16, "Images in each sample grid.")
    preview_steps: int = option(20, "Model calls per sample-grid image (ddpm-run's default sampler).")
    keep_last: int = option(
        2,
        "Checkpoints kept: the latest as checkpoint.pt and the N-1 before it as checkpoint-STEP.pt, each "
        "removed only once a newer one is written and read back whole.",
    )

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
        "adam_beta2",
        "noise_levels",
        "p_mean",
        "p_std",
        "prediction",
        "sigma_data",
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

        for name in ("batch_size", "lr", "checkpoint_every", "log_every", "num_preview", "preview_steps", "keep_last"):
            positive(name)
        for name in ("epochs", "max_steps", "max_minutes"):
            positive(name, allow_none=True)
        if self.warmup_steps < 0 or self.grad_clip < 0:
            raise TrainingError("--warmup-steps and --grad-clip must not be negative")
        for item in fields(self):
            choices = item.metadata.get("choices")
            if choices and getattr(self, item.name) not in choices:
                flag = "--" + item.name.replace("_", "-")
                raise TrainingError(f"{flag} must be one of {', '.join(choices)}, got {getattr(self, item.name)!r}")
        for name in ("min_snr_gamma", "p_std", "sigma_data"):
            positive(name)
        if not 0.0 <= self.adam_beta2 < 1.0:
            raise TrainingError(f"--adam-beta2 must be in [0, 1), got {self.adam_beta2}")
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

    @property
    def parameterisation(self):
        from ..diffusion.parameterisation import Parameterisation

        return Parameterisation(self.prediction, self.sigma_data)
