"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) with the seed's ``DiffusionReverseProcess``.

With the full T steps and ``x0="none"`` this is exactly the seed's ``sample_prev_timestep``. With
fewer steps the schedule is respaced (improved-diffusion's ``space_timesteps``): step t -> t_prev
uses alpha = alpha_bar_t / alpha_bar_prev and beta = 1 - alpha, so only the schedule data changes.
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, threshold_x0, x0_from_eps, x0_options


def ddpm_step(
    x_t: np.ndarray,
    eps: np.ndarray,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    noise: np.ndarray | None = None,
    x0_mode: str = "none",
    x0_percentile: float = DEFAULT_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray]:
    """One reverse step x_t -> x_{t-1}. Returns (x_prev, x0_estimate), float64.

    ``x0_mode="none"``: the seed's mean (eq. 11), from eps. Otherwise the posterior mean (eq. 7) from
    the bounded x_0 estimate (``"clip"``: clamped to [-1, 1], as Ho et al.'s code does).
    ``alpha_bar_prev == 1`` is the last step: the mean, no noise (the seed's ``if t == 0``).
    """
    x_t = as_float64(x_t)
    eps = as_float64(eps)
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1.0 - alpha_t
    # 1. x_0 estimate, Ho et al. eq. (15) solved for x_0; the seed reports it clamped to [-1, 1]
    x0_raw = x0_from_eps(x_t, eps, alpha_bar_t)
    # 2. mean of p(x_{t-1} | x_t)
    if x0_mode == "none":
        x0 = np.clip(x0_raw, -1.0, 1.0)
        # the seed's mean, eq. (11): (x_t - beta_t / sqrt(1 - ab_t) * eps) / sqrt(alpha_t)
        mean = (x_t - beta_t / np.sqrt(1.0 - alpha_bar_t) * eps) / np.sqrt(alpha_t)
    else:
        x0 = threshold_x0(x0_raw, x0_mode, x0_percentile)
        # posterior mean mu~(x_t, x_0) of q(x_{t-1} | x_t, x_0), eq. (7), with the bounded x_0
        mean = (np.sqrt(alpha_bar_prev) * beta_t / (1.0 - alpha_bar_t)) * x0 + (
            np.sqrt(alpha_t) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        ) * x_t
    if alpha_bar_prev >= 1.0:
        return mean, x0
    # 3. sigma_t^2 = beta~_t = beta_t (1 - ab_prev) / (1 - ab_t), eq. (7), as the seed
    variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t
    if noise is None:
        raise ValueError("ddpm_step needs noise except on the last step")
    return mean + np.sqrt(variance) * as_float64(noise), x0


def sample_ddpm(
    eps_model: EpsModel,
    x_T: np.ndarray,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    *,
    rng=None,
    callback: Callback | None = None,
    x0: str = "none",
    x0_percentile: float = DEFAULT_PERCENTILE,
) -> np.ndarray:
    """Ancestral sampling over descending ``timesteps``; ``rng.standard_normal(shape)`` gives z."""
    if rng is None:
        raise ValueError("sample_ddpm needs rng")
    x = as_float64(x_T)
    for i, (t, alpha_bar_t, alpha_bar_prev) in enumerate(alpha_bar_pairs(schedule, timesteps)):
        eps = call_model(eps_model, x, t)
        noise = rng.standard_normal(x.shape) if alpha_bar_prev < 1.0 else None
        x, _ = ddpm_step(x, eps, alpha_bar_t, alpha_bar_prev, noise, x0, x0_percentile)
        if callback is not None:
            callback(i, t, x)
    return x


# The seed's sampler, unchanged by default: trailing spacing and its eq. (11) mean also measured best
# for it at 20 and 50 steps (docs/benchmarks/samplers.md, "Clipping and spacing per sampler").
SPEC = SamplerSpec(
    "ddpm", sample_ddpm, None, "the seed's ancestral sampler (Ho et al. 2020, Algorithm 2)", x0_options("none")
)
