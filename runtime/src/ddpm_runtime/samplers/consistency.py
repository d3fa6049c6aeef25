"""Consistency sampling (Song et al. 2023, "Consistency Models", Algorithm 1): for models distilled to
give the end of the probability-flow ODE's trajectory from any point (``ddpm distill``).

At each listed time t_i the model's x_0 estimate is taken as the image; before the next call it is
noised afresh to t_{i+1}: x = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) z. With one listed time it is
one call, x_0 from x_T. On an ordinary denoising model (whose x_0 estimate is the posterior mean, not
the ODE's end) it returns blurred means: use it for students, whose metadata names it.
"""

from __future__ import annotations

import numpy as np

from ..schedule import NoiseSchedule
from .interface import Callback, EpsModel, SamplerSpec, alpha_bar_pairs, as_float64, call_model
from .thresholding import DEFAULT_PERCENTILE, threshold_x0, x0_from_eps, x0_options


def consistency_step(x0: np.ndarray, alpha_bar_next: float, noise: np.ndarray | None) -> np.ndarray:
    """The state for the next call: x_0 noised to alpha_bar_next, or x_0 itself at the end (alpha_bar 1)."""
    x0 = as_float64(x0)
    if alpha_bar_next >= 1.0:
        return x0
    if noise is None:
        raise ValueError("consistency_step needs noise except on the last step")
    return np.sqrt(alpha_bar_next) * x0 + np.sqrt(1.0 - alpha_bar_next) * as_float64(noise)


def sample_consistency(
    eps_model: EpsModel,
    x_T: np.ndarray,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    *,
    rng=None,
    callback: Callback | None = None,
    x0: str = "clip",
    x0_percentile: float = DEFAULT_PERCENTILE,
) -> np.ndarray:
    """One model call per listed timestep; ``rng.standard_normal(shape)`` noises each x_0 but the last."""
    if rng is None and len(timesteps) > 1:
        raise ValueError("sample_consistency needs rng for more than one call")
    x = as_float64(x_T)
    for i, (t, alpha_bar, alpha_bar_next) in enumerate(alpha_bar_pairs(schedule, timesteps)):
        eps = call_model(eps_model, x, t)
        data = threshold_x0(x0_from_eps(x, eps, alpha_bar), x0, x0_percentile)
        noise = rng.standard_normal(x.shape) if alpha_bar_next < 1.0 else None
        x = consistency_step(data, alpha_bar_next, noise)
        if callback is not None:
            callback(i, t, x)
    return x


SPEC = SamplerSpec(
    "consistency",
    sample_consistency,
    4,
    "Song et al. 2023, multistep consistency sampling (for `ddpm distill` students)",
    x0_options("clip"),  # the student was trained on clipped teacher images
    default_spacing="karras",
)
