"""DPM-Solver++(2M): the multistep second-order solver of Lu et al. 2022
("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models", Algorithm 2).

It integrates the diffusion ODE in the data-prediction form with lambda_t = log(alpha_t / sigma_t),
alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t). The first step is first order (there is
no earlier x_0 prediction yet) and so is the last one, onto the clean image (sigma = 0, lambda = inf),
as in the reference implementation's "lower_order_final".

``final="step"`` ends differently: after the last model call one more second-order step lands on
t = 0 (alpha_bar(0) < 1, no model call there) and that state is the image, as the reference code
counts its calls (``denoise_to_zero=False``). Listed times that end at t = 0 spend their last call
on x_0 at sigma(0) ~ 0.006, almost the identity; with ``final="step"`` the last call can sit where it
still helps (a distilled student's or fitted times, whose last call lies above 0;
docs/benchmarks/few-calls.md, "No model call at t = 0").
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerOption, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, threshold_x0, x0_from_eps, x0_options


def dpm_solver_2m_step(
    x_s: np.ndarray,
    x0_s: np.ndarray,
    x0_prev: np.ndarray | None,
    alpha_bar_s: float,
    alpha_bar_t: float,
    h_prev: float | None,
) -> tuple[np.ndarray, float]:
    """From time s to t (< s). ``x0_prev``/``h_prev``: the previous step's x_0 prediction and step size
    in lambda, or None for a first-order step. Returns (x_t, h) with h = lambda_t - lambda_s."""
    alpha_s, sigma_s = np.sqrt(alpha_bar_s), np.sqrt(1.0 - alpha_bar_s)
    if alpha_bar_t >= 1.0:
        # 0. onto the clean image: sigma_t = 0, e^{-h} = 0, so x_t = D (first order: x0_s)
        return as_float64(x0_s), np.inf
    alpha_t, sigma_t = np.sqrt(alpha_bar_t), np.sqrt(1.0 - alpha_bar_t)
    lambda_s, lambda_t = np.log(alpha_s / sigma_s), np.log(alpha_t / sigma_t)
    h = lambda_t - lambda_s
    # 1. D: x0_s (first order), or the second-order correction of Algorithm 2:
    #    r = h_prev / h, D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev
    if x0_prev is None or h_prev is None:
        d = x0_s
    else:
        r = h_prev / h
        d = (1.0 + 1.0 / (2.0 * r)) * x0_s - (1.0 / (2.0 * r)) * x0_prev
    # 2. x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D   (Algorithm 2, update line)
    x_t = (sigma_t / sigma_s) * as_float64(x_s) - alpha_t * np.expm1(-h) * d
    return x_t, h


def sample_dpm_solver_2m(
    eps_model: EpsModel,
    x_T: np.ndarray,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    *,
    rng=None,
    callback: Callback | None = None,
    x0: str = "none",
    x0_percentile: float = DEFAULT_PERCENTILE,
    final: str = "x0",
) -> np.ndarray:
    """Deterministic: one model call per listed timestep, then the final jump to the clean image
    (``final="x0"``) or a last step onto t = 0 (``final="step"``)."""
    x = as_float64(x_T)
    x0_prev, h_prev = None, None
    # a last call already at t = 0 has nowhere left to step to: it jumps onto the clean image either way
    end = float(schedule.alpha_bar_at(0.0)) if final == "step" and float(timesteps[-1]) > 0 else 1.0
    for i, (t, alpha_bar_s, alpha_bar_t) in enumerate(alpha_bar_pairs(schedule, timesteps, end)):
        eps = call_model(eps_model, x, t)
        # the data prediction D, thresholded as in Lu et al. 2022, section 4.2
        data = threshold_x0(x0_from_eps(x, eps, alpha_bar_s), x0, x0_percentile)
        x, h = dpm_solver_2m_step(x, data, x0_prev, alpha_bar_s, alpha_bar_t, h_prev)
        x0_prev, h_prev = data, h
        if callback is not None:
            callback(i, t, x)
    return x


# Defaults measured (docs/benchmarks/samplers.md, "Clipping and spacing per sampler"): x_0 clipped, karras
# spacing.
FINAL_MODES = ("x0", "step")
FINAL = SamplerOption(
    "final",
    "--final",
    "x0",
    "After the last model call: x0 jumps onto the clean image with its x_0 estimate; step lands on t = 0 "
    "with one more solver step and no model call (for times whose last call lies above 0).",
    check=lambda v: None if v in FINAL_MODES else f"--final must be one of {', '.join(FINAL_MODES)}, got {v!r}",
    choices=FINAL_MODES,
)
SPEC = SamplerSpec(
    "dpm-solver++",
    sample_dpm_solver_2m,
    20,
    "Lu et al. 2022, multistep second order (2M)",
    (*x0_options("clip"), FINAL),
    default_spacing="karras",
)
