"""Generate images: batches of x_T through a sampler to uint8 images. No files, no printing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import UserError
from .images import to_uint8_nhwc
from .metadata import ModelMetadata
from .noise import PerImageNoise
from .samplers import SAMPLERS, sample_ddim, sample_ddpm, sample_dpm_solver_2m
from .schedule import NoiseSchedule
from .timesteps import spaced_timesteps

DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "dpm-solver++": 20}  # None: all T steps, as the seed


@dataclass(frozen=True)
class SamplingSettings:
    num_images: int = 16
    batch_size: int = 64
    sampler: str = "ddim"
    steps: int | None = None  # None: the sampler's default (DEFAULT_STEPS)
    eta: float = 0.0  # DDIM only: 0 deterministic, 1 = DDPM-like posterior variance
    seed: int = 0
    ddpm_mean_from_clipped_x0: bool = False  # DDPM only: mean from the clamped x_0 (eq. 7), not eq. 11

    def resolved_steps(self, num_timesteps: int) -> int:
        steps = self.steps if self.steps is not None else DEFAULT_STEPS[self.sampler]
        return num_timesteps if steps is None else steps

    def validate(self, num_timesteps: int) -> None:
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r} (choose {', '.join(SAMPLERS)})")
        if self.num_images < 1:
            raise UserError(f"-n/--num-images must be at least 1, got {self.num_images}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        steps = self.resolved_steps(num_timesteps)
        if not 1 <= steps <= num_timesteps:
            raise UserError(f"--steps must be between 1 and T={num_timesteps} (the model's schedule), got {steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise UserError(f"--eta must be in [0, 1], got {self.eta}")
        if self.eta > 0 and self.sampler != "ddim":
            raise UserError("--eta applies to the ddim sampler only")


def generate(
    eps_model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    metadata: ModelMetadata,
    settings: SamplingSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """All images as (N, H, W, C) uint8. ``on_step(batch_index, step_index)`` after every model call."""
    schedule = NoiseSchedule.from_config(metadata.schedule)
    settings.validate(schedule.num_timesteps)
    timesteps = spaced_timesteps(schedule.num_timesteps, settings.resolved_steps(schedule.num_timesteps))
    image = metadata.image
    outputs = []
    for batch_index, first in enumerate(range(0, settings.num_images, settings.batch_size)):
        count = min(settings.batch_size, settings.num_images - first)
        rng = PerImageNoise(settings.seed, first, count)
        x_T = rng.standard_normal((count, image.channels, image.height, image.width))
        callback = None if on_step is None else (lambda i, t, x, b=batch_index: on_step(b, i))
        if settings.sampler == "ddpm":
            x0 = sample_ddpm(eps_model, x_T, schedule, timesteps, rng, settings.ddpm_mean_from_clipped_x0, callback)
        elif settings.sampler == "ddim":
            x0 = sample_ddim(eps_model, x_T, schedule, timesteps, settings.eta, rng, callback)
        else:
            x0 = sample_dpm_solver_2m(eps_model, x_T, schedule, timesteps, callback)
        outputs.append(to_uint8_nhwc(x0))
    return np.concatenate(outputs)
