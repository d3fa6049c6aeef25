"""Sample grids during training: the EMA weights sampled as ddpm-run samples the model's export by default."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ddpm_runtime.default_sampling import resolve_default
from ddpm_runtime.guidance import DEFAULT_GUIDANCE_SCALE, guided_eps_model
from ddpm_runtime.images import make_grid, to_uint8_nhwc
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import sampling_timesteps

from ..diffusion.torch_eps import numpy_eps_model
from ..model.config import UNetConfig


def preview_grid(
    model: nn.Module,
    model_config: UNetConfig,
    schedule: NoiseSchedule,
    num_images: int,
    num_steps: int,
    seed: int,
    device: torch.device | str = "cpu",
    default: dict | None = None,
    timesteps: np.ndarray | None = None,
    guidance_scale: float | None = None,
) -> np.ndarray:
    """An (H, W, C) uint8 grid of ``num_images`` samples, made as `ddpm-run sample` makes them on the
    model's export by default: ``default`` is the model's default sampling (``default_sampling``), read
    by the runtime's own ``resolve_default`` (same sampler, spacing and options), with ``num_steps``
    model calls, or at ``timesteps`` where the model has its own call times (a distilled student's).
    The same seed gives the same noise at every checkpoint, so successive grids show how the same
    noise turns into images.

    A class-conditional model draws image i as class i mod K, one class per column, with
    ``guidance_scale`` (default: the model's default, else ddpm-run's)."""
    size, channels = model_config.image_size, model_config.im_channels
    sampler, _, own_options = resolve_default(default, None, None)
    spec = get_sampler(sampler)
    rng = PerImageNoise(seed, 0, num_images)
    x_T = rng.standard_normal((num_images, channels, size, size))
    if timesteps is None:
        spacing = spec.default_spacing
        timesteps = sampling_timesteps(schedule, min(num_steps, schedule.num_timesteps), spacing)
    eps_model = numpy_eps_model(model, device)
    columns = None
    if model_config.num_classes:
        labels = np.arange(num_images) % model_config.num_classes
        if guidance_scale is None:
            guidance_scale = (default or {}).get("guidance_scale", DEFAULT_GUIDANCE_SCALE)
        eps_model = guided_eps_model(eps_model, labels, model_config.null_class, guidance_scale)
        columns = min(num_images, model_config.num_classes)
    was_training = model.training
    model.eval()
    try:
        options = {option.name: option.default for option in spec.options} | own_options  # as ddpm-run
        x0 = spec.sample(eps_model, x_T, schedule, timesteps, rng=rng, **options)
    finally:
        model.train(was_training)
    return make_grid(to_uint8_nhwc(x0), ncols=columns)
