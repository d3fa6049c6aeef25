"""Sample grids during training: a short deterministic DDIM run of the EMA weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ddpm_runtime.images import make_grid, to_uint8_nhwc
from ddpm_runtime.samplers import sample_ddim
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import spaced_timesteps

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
) -> np.ndarray:
    """An (H, W, C) uint8 grid of ``num_images`` samples. The same seed gives the same x_T at every
    checkpoint, so successive grids show how the same noise turns into images as training goes on."""
    size, channels = model_config.image_size, model_config.im_channels
    x_T = np.random.default_rng(seed).standard_normal((num_images, channels, size, size))
    was_training = model.training
    model.eval()
    try:
        timesteps = spaced_timesteps(schedule.num_timesteps, min(num_steps, schedule.num_timesteps))
        x0 = sample_ddim(numpy_eps_model(model, device), x_T, schedule, timesteps, eta=0.0)
    finally:
        model.train(was_training)
    return make_grid(to_uint8_nhwc(x0))
