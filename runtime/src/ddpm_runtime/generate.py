"""Generate images: batches of x_T through a sampler to uint8 images. No files, no printing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .images import to_uint8_nhwc
from .metadata import ModelMetadata
from .noise import PerImageNoise
from .samplers import REGISTRY, all_options, get_sampler
from .schedule import NoiseSchedule
from .timesteps import DEFAULT_RHO, SPACINGS, sampling_timesteps


@dataclass(frozen=True)
class SamplingSettings:
    num_images: int = 16
    batch_size: int = 64  # images per model call; the images do not depend on it
    # The best measured at 20 model calls or fewer (BENCHMARKS.md, "Few-step sampling"): FID 21.6 on a
    # model trained with the CPU recipe, against 22.5 for the seed's ancestral sampler at 100 steps.
    sampler: str = "dpm-solver++-sde"  # a name in samplers.REGISTRY
    steps: int | None = None  # model calls per image; None: the sampler's default_steps
    seed: int = 0  # image i always gets the noise of default_rng([seed, i])
    options: dict = field(default_factory=dict)  # the sampler's keyword options that were given
    spacing: str | None = None  # how the model calls are spread over t (timesteps.SPACINGS); None: the sampler's
    rho: float = DEFAULT_RHO  # the karras spacing's exponent

    def resolved_steps(self, num_timesteps: int) -> int:
        steps = self.steps if self.steps is not None else get_sampler(self.sampler).default_steps
        return num_timesteps if steps is None else steps

    def resolved_spacing(self) -> str:
        return self.spacing if self.spacing is not None else get_sampler(self.sampler).default_spacing

    def validate(self, num_timesteps: int) -> None:
        spec = get_sampler(self.sampler)
        if self.num_images < 1:
            raise UserError(f"-n/--num-images must be at least 1, got {self.num_images}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        steps = self.resolved_steps(num_timesteps)
        if not 1 <= steps <= num_timesteps:
            raise UserError(f"--steps must be between 1 and T={num_timesteps} (the model's schedule), got {steps}")
        if self.resolved_spacing() not in SPACINGS:
            raise UserError(f"unknown --spacing {self.spacing!r} (choose from {', '.join(SPACINGS)})")
        if not self.rho > 0:
            raise UserError(f"--rho must be positive, got {self.rho}")
        known, accepted = all_options(), {option.name: option for option in spec.options}
        for name, value in self.options.items():
            if name not in known:
                raise UserError(f"unknown sampler option {name!r}")
            if name not in accepted:
                if value == known[name].default:
                    continue  # e.g. --eta 0 with ddpm: the neutral value asks for nothing
                users = [s.name for s in REGISTRY.values() if name in {o.name for o in s.options}]
                raise UserError(f"{known[name].flag} applies to the {' and '.join(users)} sampler only")
            complaint = accepted[name].check(value) if accepted[name].check else None
            if complaint:
                raise UserError(complaint)


def generate(
    eps_model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    metadata: ModelMetadata,
    settings: SamplingSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """All images as (N, H, W, C) uint8. ``on_step(batch_index, step_index)`` after every model call."""
    schedule = NoiseSchedule.from_config(metadata.schedule)
    settings.validate(schedule.num_timesteps)
    sample = get_sampler(settings.sampler).sample
    steps = settings.resolved_steps(schedule.num_timesteps)
    timesteps = sampling_timesteps(schedule, steps, settings.resolved_spacing(), settings.rho)
    image = metadata.image
    outputs = []
    for batch_index, first in enumerate(range(0, settings.num_images, settings.batch_size)):
        count = min(settings.batch_size, settings.num_images - first)
        rng = PerImageNoise(settings.seed, first, count)
        x_T = rng.standard_normal((count, image.channels, image.height, image.width))
        callback = None if on_step is None else (lambda i, t, x, b=batch_index: on_step(b, i))
        x0 = sample(eps_model, x_T, schedule, timesteps, rng=rng, callback=callback, **settings.options)
        outputs.append(to_uint8_nhwc(x0))
    return np.concatenate(outputs)
