"""Which times a sampler with fewer steps visits: the spacing of its model calls.

Fewer sampling steps change the schedule data a sampler is given, never the sampler's code
(the idea of improved-diffusion's ``space_timesteps``). Every spacing starts at t = T-1, where
training put (nearly) pure noise, and lists descending times; after the last one every sampler
lands on the clean image (alpha_bar = 1). Times may be fractional: the model takes float t and
``NoiseSchedule.alpha_bar_at`` interpolates the schedule.

- ``trailing`` (Lin et al. 2024, table 2): integers ``round(T - i T / S) - 1``. With S = T it is the
  seed's T-1 ... 0. Its steps are even in t, so the last listed t is T/S - 1 (49 for 20 steps), and
  the final jump to the clean image from there is large.
- ``logsnr``: even steps in lambda = log(alpha/sigma) from lambda(T-1) to lambda(0), the spacing
  DPM-Solver's authors recommend for low-resolution pixel models (Lu et al. 2022, section 3.3).
- ``karras``: EDM's sigma spacing, sigma_i = (s_max^(1/rho) + i/(S-1) (s_min^(1/rho) - s_max^(1/rho)))^rho
  with sigma = sqrt((1 - alpha_bar) / alpha_bar) (Karras et al. 2022, eq. 5; rho = 7).
Both logsnr and karras put their last call at t = 0 and crowd steps near it. Both start their
spread at sigma = min(sigma(T-1), SIGMA_MAX) (the first call stays at T-1): the cosine schedule
reaches sigma 2e4 at T-1 (alpha_bar 2.4e-9), and a spread from there spent most calls where the
image is all noise.
"""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .schedule import NoiseSchedule

SPACINGS = ("trailing", "logsnr", "karras")
DEFAULT_RHO = 7.0  # Karras et al. 2022's choice
# The largest sigma = sqrt((1 - alpha_bar) / alpha_bar) the logsnr and karras spreads start from: the
# cosine schedule's own sigma(T-1) = 2.0e4 would put most calls where nothing is left to decide
# (docs/benchmarks/few-calls.md, "Where a spacing starts on the cosine schedule"). 160 is above the
# linear schedule's sigma(T-1) = 157, so its times keep their old values.
SIGMA_MAX = 160.0


def spaced_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
    """Descending integer timesteps, "trailing" spacing: ``t_i = round(T - i * T / steps) - 1``."""
    if int(num_steps) != num_steps or not 1 <= num_steps <= num_timesteps:
        raise UserError(f"number of sampling steps must be between 1 and T={num_timesteps}, got {num_steps}")
    ts = np.round(np.arange(num_timesteps, 0, -num_timesteps / num_steps)).astype(np.int64) - 1
    return ts[:num_steps]


def _times_for(schedule: NoiseSchedule, log_alpha_bar: np.ndarray) -> np.ndarray:
    """The times at which ``schedule.alpha_bar_at`` gives these log(alpha_bar): its exact inverse, since it
    interpolates log(alpha_bar) linearly between integers (and log(alpha_bar) decreases with t)."""
    table = np.log(schedule.alpha_bars)
    return np.interp(log_alpha_bar, table[::-1], np.arange(schedule.num_timesteps, dtype=np.float64)[::-1])


def times_of_lambdas(schedule: NoiseSchedule, lambdas) -> np.ndarray:
    """The times whose lambda = log(alpha / sigma) (``schedule.log_snr``) are these, clamped to [0, T-1]."""
    # alpha_bar = 1 / (1 + e^{-2 lambda}), so log(alpha_bar) = -log(1 + e^{-2 lambda})
    return _times_for(schedule, -np.log1p(np.exp(-2.0 * np.asarray(lambdas, dtype=np.float64))))


def sampling_timesteps(
    schedule: NoiseSchedule, num_steps: int, spacing: str = "trailing", rho: float = DEFAULT_RHO
) -> np.ndarray:
    """``num_steps`` descending float64 times in [0, T-1], the first always T-1."""
    if spacing not in SPACINGS:
        raise UserError(f"unknown spacing {spacing!r} (choose from {', '.join(SPACINGS)})")
    T = schedule.num_timesteps
    trailing = spaced_timesteps(T, num_steps).astype(np.float64)  # also validates num_steps
    if spacing == "trailing" or num_steps == 1:
        return trailing
    lambda_max = schedule.log_snr(0.0)
    lambda_min = max(schedule.log_snr(T - 1.0), -np.log(SIGMA_MAX))  # sigma = e^-lambda
    if spacing == "logsnr":
        lambdas = np.linspace(lambda_min, lambda_max, num_steps)
    else:
        if not rho > 0:
            raise UserError(f"--rho must be positive, got {rho}")
        sigma_max, sigma_min = np.exp(-lambda_min), np.exp(-lambda_max)  # sigma = e^-lambda
        ramp = np.linspace(0.0, 1.0, num_steps)
        sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
        lambdas = -np.log(sigmas)
    times = times_of_lambdas(schedule, lambdas)
    times[0], times[-1] = T - 1, 0.0  # exact ends, whatever the interpolation rounds to
    return times
