"""DPM-Solver++(3M): the multistep third-order solver of Lu et al. 2022 ("DPM-Solver++: Fast Solver for
Guided Sampling of Diffusion Probabilistic Models", section 4 and appendix B; the reference code's
``multistep_dpm_solver_third_update`` for ``dpmsolver++``).

With lambda = log(alpha / sigma), h = lambda_t - lambda_s and the last three x_0 estimates
D_0 (at s), D_1, D_2 (the two calls before, step sizes h_0 = lambda_s - lambda_1 and
h_1 = lambda_1 - lambda_2), r_0 = h_0 / h, r_1 = h_1 / h:

    d_0 = (D_0 - D_1) / r_0,  d_1 = (D_1 - D_2) / r_1
    first derivative  D' = d_0 + r_0 / (r_0 + r_1) (d_0 - d_1),  second  D'' = (d_0 - d_1) / (r_0 + r_1)
    phi_1 = e^{-h} - 1,  phi_2 = phi_1 / h + 1,  phi_3 = phi_2 / h - 1/2
    x_t = (sigma_t / sigma_s) x_s - alpha_t phi_1 D_0 + alpha_t phi_2 D' - alpha_t phi_3 D''

These are the reference code's coefficients (also k-diffusion's ``sample_dpmpp_3m_sde`` at eta 0 and
diffusers' third-order multistep update). Its D'' is half of h^2 times the second derivative of x_0 in
lambda, where the Taylor expansion would take all of it: on Gaussian data the local error then falls
8x per halving of h, not the 16x of a full third-order step. The full form was measured too and kept
out: on a trained model it drew worse images (docs/benchmarks/samplers.md, "DPM-Solver++(3M)").

The first step is first order and the second is DPM-Solver++(2M) (no earlier estimates yet); near
the end the order drops again as in the reference's ``lower_order_final`` (few-step runs stay stable):
the step onto the last listed time is at most second order, and the final jump onto the clean image
(sigma = 0) is D_0, as in the other solvers.
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .dpm_solver import dpm_solver_2m_step
from .interface import Callback, EpsModel, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, threshold_x0, x0_from_eps, x0_options


def dpm_solver_3m_step(
    x_s: np.ndarray,
    x0_s: np.ndarray,
    x0_prev: np.ndarray,
    x0_prev2: np.ndarray,
    alpha_bar_s: float,
    alpha_bar_t: float,
    h_prev: float,
    h_prev2: float,
) -> tuple[np.ndarray, float]:
    """The third-order step from s to t (< s, alpha_bar_t < 1): ``x0_prev``, ``x0_prev2`` are the x_0
    estimates of the two calls before s, and ``h_prev``, ``h_prev2`` the lambda steps that led from
    them (h_0 and h_1 above). Returns (x_t, h)."""
    alpha_s, sigma_s = np.sqrt(alpha_bar_s), np.sqrt(1.0 - alpha_bar_s)
    alpha_t, sigma_t = np.sqrt(alpha_bar_t), np.sqrt(1.0 - alpha_bar_t)
    h = np.log(alpha_t / sigma_t) - np.log(alpha_s / sigma_s)
    d0 = as_float64(x0_s)
    r0, r1 = h_prev / h, h_prev2 / h
    # 1. divided differences of the x_0 estimates in lambda, scaled by h
    d1_0 = (d0 - x0_prev) / r0
    d1_1 = (as_float64(x0_prev) - x0_prev2) / r1
    first = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    second = (d1_0 - d1_1) / (r0 + r1)
    # 2. the exponential integrator's coefficients
    phi_1 = np.expm1(-h)
    phi_2 = phi_1 / h + 1.0
    phi_3 = phi_2 / h - 0.5
    x_t = (
        (sigma_t / sigma_s) * as_float64(x_s)
        - alpha_t * phi_1 * d0
        + alpha_t * phi_2 * first
        - alpha_t * phi_3 * second
    )
    return x_t, h


def step_orders(num_calls: int) -> list[int]:
    """The order of the step after each of ``num_calls`` model calls: the reference's
    min(3, step, N + 1 - step) for its steps 1..N, where its step N is our final jump to the clean image.
    So 5 calls step with orders 1, 2, 3, 2 and then 1."""
    return [min(3, i + 1, num_calls - i) for i in range(num_calls - 1)] + [1]


def sample_dpm_solver_3m(
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
    """Deterministic: one model call per listed timestep, then the final jump to the clean image."""
    x = as_float64(x_T)
    history: list[tuple[np.ndarray, float]] = []  # (x_0 estimate, the lambda step that led to it), newest last
    pairs = alpha_bar_pairs(schedule, timesteps)
    orders = step_orders(len(pairs))
    h_in = None  # the lambda step that led to the current x
    for i, (t, alpha_bar_s, alpha_bar_t) in enumerate(pairs):
        eps = call_model(eps_model, x, t)
        data = threshold_x0(x0_from_eps(x, eps, alpha_bar_s), x0, x0_percentile)
        order = orders[i] if alpha_bar_t < 1.0 else 1
        if order >= 3 and len(history) >= 2:
            (x0_prev2, _), (x0_prev, h_prev2) = history[-2], history[-1]
            x, h = dpm_solver_3m_step(x, data, x0_prev, x0_prev2, alpha_bar_s, alpha_bar_t, h_in, h_prev2)
        elif order == 2 and history:
            x, h = dpm_solver_2m_step(x, data, history[-1][0], alpha_bar_s, alpha_bar_t, h_in)
        else:
            x, h = dpm_solver_2m_step(x, data, None, alpha_bar_s, alpha_bar_t, None)
        history = [*history[-1:], (data, h_in)]
        h_in = h
        if callback is not None:
            callback(i, t, x)
    return x


SPEC = SamplerSpec(
    "dpm-solver++3m",
    sample_dpm_solver_3m,
    10,
    "Lu et al. 2022, multistep third order (3M), for few calls",
    x0_options("none"),
    default_spacing="karras",  # better than logsnr at 5 and 8 calls (samplers.md, "DPM-Solver++(3M)")
)
