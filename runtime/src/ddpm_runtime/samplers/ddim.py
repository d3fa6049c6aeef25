"""DDIM sampling (Song, Meng and Ermon 2020, "Denoising Diffusion Implicit Models")."""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerOption, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, eps_from_x0, threshold_x0, x0_from_eps, x0_options


def ddim_step(
    x_t: np.ndarray,
    eps: np.ndarray,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    eta: float = 0.0,
    noise: np.ndarray | None = None,
    x0_mode: str = "none",
    x0_percentile: float = DEFAULT_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray]:
    """One DDIM update from x_t to x_prev. Returns (x_prev, x0_pred), both float64."""
    x_t = as_float64(x_t)
    eps = as_float64(eps)
    # 1. predicted x_0, Song et al. eq. (12), first term: (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
    x0_pred = x0_from_eps(x_t, eps, alpha_bar_t)
    if x0_mode != "none":
        # 1b. bound x_0 (thresholding.py) and take the eps that goes with it, so that the direction term
        #     agrees with the bounded x_0 (diffusers keeps the old eps; measured worse, docs/benchmarks/samplers.md)
        x0_pred = threshold_x0(x0_pred, x0_mode, x0_percentile)
        eps = eps_from_x0(x_t, x0_pred, alpha_bar_t)
    # 2. sigma_t(eta), eq. (16): eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)
    sigma = eta * np.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)) * np.sqrt(1.0 - alpha_bar_t / alpha_bar_prev)
    # 3. direction pointing to x_t, eq. (12), second term
    direction = np.sqrt(max(1.0 - alpha_bar_prev - sigma**2, 0.0)) * eps
    x_prev = np.sqrt(alpha_bar_prev) * x0_pred + direction
    # 4. random noise, eq. (12), third term (absent when eta = 0: the deterministic DDIM)
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise")
        x_prev = x_prev + sigma * as_float64(noise)
    return x_prev, x0_pred


def sample_ddim(
    eps_model: EpsModel,
    x_T: np.ndarray,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    *,
    rng=None,
    callback: Callback | None = None,
    eta: float = 0.0,
    x0: str = "none",
    x0_percentile: float = DEFAULT_PERCENTILE,
) -> np.ndarray:
    """Run DDIM over descending ``timesteps`` (see ``timesteps.py``); returns x_0 (float64).

    After the last listed timestep the sampler jumps to alpha_bar = 1, i.e. to the clean image.
    """
    if eta > 0 and rng is None:
        raise ValueError("sample_ddim with eta > 0 needs rng")
    x = as_float64(x_T)
    for i, (t, alpha_bar_t, alpha_bar_prev) in enumerate(alpha_bar_pairs(schedule, timesteps)):
        eps = call_model(eps_model, x, t)
        noise = rng.standard_normal(x.shape) if eta > 0 else None
        x, _ = ddim_step(x, eps, alpha_bar_t, alpha_bar_prev, eta, noise, x0, x0_percentile)
        if callback is not None:
            callback(i, t, x)
    return x


ETA = SamplerOption(
    "eta",
    "--eta",
    0.0,
    "DDIM noise: 0 deterministic, 1 the DDPM posterior variance.",
    check=lambda v: None if 0.0 <= v <= 1.0 else f"--eta must be in [0, 1], got {v}",
)
# Defaults measured (docs/benchmarks/samplers.md, "Clipping and spacing per sampler"): clipping x_0 (with
# the matching eps), and trailing spacing, which beats logsnr and karras for DDIM.
SPEC = SamplerSpec(
    "ddim",
    sample_ddim,
    50,
    "Song et al. 2020 (eq. 12), deterministic with --eta 0",
    (ETA, *x0_options("clip")),
    default_spacing="trailing",
)
