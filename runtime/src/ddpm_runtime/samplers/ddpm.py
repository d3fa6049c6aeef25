"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) with the seed's ``DiffusionReverseProcess``.

With the full T steps this is exactly the seed's ``sample_prev_timestep``. With fewer steps the
schedule is respaced (improved-diffusion's ``space_timesteps``): step t -> t_prev uses
alpha = alpha_bar_t / alpha_bar_prev and beta = 1 - alpha, so only the schedule data changes.
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerOption, SamplerSpec


def ddpm_step(
    x_t: np.ndarray,
    eps: np.ndarray,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    noise: np.ndarray | None = None,
    mean_from_clipped_x0: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One reverse step x_t -> x_{t-1}. Returns (x_prev, x0_estimate), float64.

    ``alpha_bar_prev == 1`` is the last step: the mean, no noise (the seed's ``if t == 0``).
    """
    x_t = np.asarray(x_t, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1.0 - alpha_t
    # 1. x_0 estimate, Ho et al. eq. (15) solved for x_0, clamped to the data range as in the seed
    x0 = np.clip((x_t - np.sqrt(1.0 - alpha_bar_t) * eps) / np.sqrt(alpha_bar_t), -1.0, 1.0)
    # 2. mean of p(x_{t-1} | x_t)
    if mean_from_clipped_x0:
        # posterior mean mu~(x_t, x_0) of q(x_{t-1} | x_t, x_0), eq. (7), with the clamped x_0
        mean = (np.sqrt(alpha_bar_prev) * beta_t / (1.0 - alpha_bar_t)) * x0 + (
            np.sqrt(alpha_t) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        ) * x_t
    else:
        # the seed's mean, eq. (11): (x_t - beta_t / sqrt(1 - ab_t) * eps) / sqrt(alpha_t)
        mean = (x_t - beta_t / np.sqrt(1.0 - alpha_bar_t) * eps) / np.sqrt(alpha_t)
    if alpha_bar_prev >= 1.0:
        return mean, x0
    # 3. sigma_t^2 = beta~_t = beta_t (1 - ab_prev) / (1 - ab_t), eq. (7), as the seed
    variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t
    if noise is None:
        raise ValueError("ddpm_step needs noise except on the last step")
    return mean + np.sqrt(variance) * np.asarray(noise, dtype=np.float64), x0


def sample_ddpm(
    eps_model: EpsModel,
    x_T: np.ndarray,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    *,
    rng=None,
    callback: Callback | None = None,
    mean_from_clipped_x0: bool = False,
) -> np.ndarray:
    """Ancestral sampling over descending ``timesteps``; ``rng.standard_normal(shape)`` gives z."""
    if rng is None:
        raise ValueError("sample_ddpm needs rng")
    timesteps = np.asarray(timesteps, dtype=np.int64)
    x = np.asarray(x_T, dtype=np.float64)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        alpha_bar_prev = float(schedule.alpha_bars[t_prev]) if t_prev >= 0 else 1.0
        eps = eps_model(x.astype(np.float32), np.full((x.shape[0],), t, dtype=np.float32))
        noise = rng.standard_normal(x.shape) if t_prev >= 0 else None
        x, _ = ddpm_step(x, eps, float(schedule.alpha_bars[t]), alpha_bar_prev, noise, mean_from_clipped_x0)
        if callback is not None:
            callback(i, int(t), x)
    return x


CLIPPED_MEAN = SamplerOption(
    "mean_from_clipped_x0",
    "--ddpm-clipped-mean",
    False,
    "ddpm: compute the mean from the clamped x0 estimate (Ho et al. eq. 7) instead of the seed's eq. 11.",
)
SPEC = SamplerSpec(
    "ddpm", sample_ddpm, None, "the seed's ancestral sampler (Ho et al. 2020, Algorithm 2)", (CLIPPED_MEAN,)
)
