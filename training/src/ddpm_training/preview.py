"""Sample grids during training: ddpm-run's default sampler on the EMA weights, in a few model calls."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ddpm_runtime.generate import SamplingSettings
from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.images import make_grid, to_uint8_nhwc
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import sampling_timesteps

from .config import UNetConfig
from .torch_eps import numpy_eps_model


def preview_grid(
    model: nn.Module,
    model_config: UNetConfig,
    schedule: NoiseSchedule,
    num_images: int,
    num_steps: int,
    seed: int,
    device: torch.device | str = "cpu",
    guidance_scale: float | None = None,
    sampler: str | None = None,
    timesteps: np.ndarray | None = None,
    options: dict | None = None,
) -> np.ndarray:
    """An (H, W, C) uint8 grid of ``num_images`` samples, made as `ddpm-run sample` makes them by default
    (same sampler, spacing and options) with ``num_steps`` model calls. The same seed gives the same
    noise at every checkpoint, so successive grids show how the same noise turns into images.

    A class-conditional model draws image i as class i mod K, one class per column, with
    ``guidance_scale`` (default: ddpm-run's). ``sampler`` and ``timesteps``: another sampler and its call
    times (a distilled student's), instead of ddpm-run's default with ``num_steps`` calls; ``options``: the
    sampler's options where they differ from its declared defaults (a student's, as its metadata gives them)."""
    size, channels = model_config.image_size, model_config.im_channels
    defaults = SamplingSettings()
    spec = get_sampler(sampler or defaults.sampler)
    rng = PerImageNoise(seed, 0, num_images)
    x_T = rng.standard_normal((num_images, channels, size, size))
    if timesteps is None:
        spacing = spec.default_spacing
        timesteps = sampling_timesteps(schedule, min(num_steps, schedule.num_timesteps), spacing)
    eps_model = numpy_eps_model(model, device)
    columns = None
    if model_config.num_classes:
        labels = np.arange(num_images) % model_config.num_classes
        scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        eps_model = guided_eps_model(eps_model, labels, model_config.null_class, scale)
        columns = min(num_images, model_config.num_classes)
    was_training = model.training
    model.eval()
    try:
        options = {option.name: option.default for option in spec.options} | dict(options or {})  # as ddpm-run
        x0 = spec.sample(eps_model, x_T, schedule, timesteps, rng=rng, **options)
    finally:
        model.train(was_training)
    return make_grid(to_uint8_nhwc(x0), ncols=columns)
