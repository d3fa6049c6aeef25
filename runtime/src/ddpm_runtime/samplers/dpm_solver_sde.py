"""DPM-Solver++(2M) SDE: the stochastic multistep second-order solver of Lu et al. 2022 ("DPM-Solver++",
appendix: SDE-DPM-Solver++), as k-diffusion's ``sample_dpmpp_2m_sde`` and diffusers'
``sde-dpmsolver++`` (midpoint) run it.

With lambda = log(alpha / sigma) and h = lambda_t - lambda_s > 0, one step from s to t is

    x_t = (sigma_t / sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) D + sigma_t sqrt(1 - e^{-2h}) z,

D = x0_s (first order) or x0_s + (x0_s - x0_prev) / (2 r) with r = h_prev / h (second order). Half of
each step's way in lambda is taken by fresh noise, so an early bad x_0 estimate is forgotten rather
than carried to the end, as the ancestral sampler does, at the cost of one model call per step like
DPM-Solver++(2M). The first step is first order, and the last lands on D (sigma = 0).
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, threshold_x0, x0_from_eps, x0_options


def dpm_solver_2m_sde_step(
    x_s: np.ndarray,
    x0_s: np.ndarray,
    x0_prev: np.ndarray | None,
    alpha_bar_s: float,
    alpha_bar_t: float,
    h_prev: float | None,
    noise: np.ndarray | None,
) -> tuple[np.ndarray, float]:
    """From time s to t (< s); returns (x_t, h). ``noise`` is needed except on the last step."""
    x0_s = as_float64(x0_s)
    if alpha_bar_t >= 1.0:
        # 0. onto the clean image (sigma_t = 0, h = inf): x_t = D, taken first order as k-diffusion does
        return x0_s, np.inf
    alpha_s, sigma_s = np.sqrt(alpha_bar_s), np.sqrt(1.0 - alpha_bar_s)
    alpha_t, sigma_t = np.sqrt(alpha_bar_t), np.sqrt(1.0 - alpha_bar_t)
    h = np.log(alpha_t / sigma_t) - np.log(alpha_s / sigma_s)
    # 1. D: first order, or the midpoint correction with the previous x_0 estimate (r = h_prev / h)
    d = x0_s if x0_prev is None or h_prev is None else x0_s + (x0_s - x0_prev) * h / (2.0 * h_prev)
    if noise is None:
        raise ValueError("dpm_solver_2m_sde_step needs noise except on the last step")
    # 2. the update above: decay of x_s, pull towards D, and fresh noise of variance sigma_t^2 (1 - e^{-2h})
    x_t = (
        (sigma_t / sigma_s) * np.exp(-h) * as_float64(x_s)
        - alpha_t * np.expm1(-2.0 * h) * d
        + sigma_t * np.sqrt(-np.expm1(-2.0 * h)) * as_float64(noise)
    )
    return x_t, h


def sample_dpm_solver_2m_sde(
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
    """One model call per listed timestep; ``rng.standard_normal(shape)`` gives each step's z."""
    if rng is None:
        raise ValueError("sample_dpm_solver_2m_sde needs rng")
    x = as_float64(x_T)
    x0_prev, h_prev = None, None
    for i, (t, alpha_bar_s, alpha_bar_t) in enumerate(alpha_bar_pairs(schedule, timesteps)):
        eps = call_model(eps_model, x, t)
        data = threshold_x0(x0_from_eps(x, eps, alpha_bar_s), x0, x0_percentile)
        noise = rng.standard_normal(x.shape) if alpha_bar_t < 1.0 else None
        x, h = dpm_solver_2m_sde_step(x, data, x0_prev, alpha_bar_s, alpha_bar_t, h_prev, noise)
        x0_prev, h_prev = data, h
        if callback is not None:
            callback(i, t, x)
    return x


SPEC = SamplerSpec(
    "dpm-solver++-sde",
    sample_dpm_solver_2m_sde,
    20,
    "Lu et al. 2022, stochastic multistep second order (2M SDE)",
    x0_options("none"),  # clipping measured worse here (samplers.md, "Clipping and spacing per sampler")
    # karras scored as well but overshoots a Gaussian's std more than logsnr does (the same section)
    default_spacing="logsnr",
)
