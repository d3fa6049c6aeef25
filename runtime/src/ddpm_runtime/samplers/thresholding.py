"""What a sampler does with its estimate of x_0 before using it: nothing, clip it to the data range,
or dynamic thresholding (Saharia et al. 2022, "Imagen", section 2.3).

A young model's early x_0 estimates can leave the data range by far; a deterministic sampler carries
such an estimate to the end (the speckle images). Pixel-space samplers commonly bound it: DDPM's
reference code clips x_0 (the seed does), diffusers' DDIM has ``clip_sample``, DPM-Solver++ has
``thresholding``. Dynamic thresholding takes, per image, s = the p-th quantile of |x_0|, s = max(s, 1),
and maps x_0 to clip(x_0, -s, s) / s: saturated pixels are pulled in, the rest rescaled.
"""

from __future__ import annotations

import numpy as np

from ..images import VALUE_RANGE
from .interface import SamplerOption, as_float64

X0_MODES = ("none", "clip", "dynamic")
DEFAULT_PERCENTILE = 0.995  # Imagen's and DPM-Solver++'s dynamic_thresholding_ratio


def threshold_x0(x0: np.ndarray, mode: str = "none", percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """(B, C, H, W) x_0 estimate -> the estimate the sampler uses, float64."""
    x0 = as_float64(x0)
    low, high = VALUE_RANGE
    if mode == "none":
        return x0
    if mode == "clip":
        return np.clip(x0, low, high)
    if mode == "dynamic":
        # The data range is symmetric ([-1, 1]), so the threshold is a scale of it.
        flat = np.abs(x0.reshape(len(x0), -1)) / high
        s = np.maximum(np.quantile(flat, percentile, axis=1), 1.0)[:, None, None, None]  # (B, 1, 1, 1)
        return np.clip(x0 / high, -s, s) / s * high
    raise ValueError(f"unknown x0 mode {mode!r} (choose from {', '.join(X0_MODES)})")


def x0_from_eps(x_t: np.ndarray, eps: np.ndarray, alpha_bar: float) -> np.ndarray:
    """The x_0 estimate: x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps solved for x_0 (Ho et al. eq. 15)."""
    return (x_t - np.sqrt(1.0 - alpha_bar) * eps) / np.sqrt(alpha_bar)


def eps_from_x0(x_t: np.ndarray, x0: np.ndarray, alpha_bar: float) -> np.ndarray:
    """The noise that, with this x_0, makes x_t: x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps, solved for eps."""
    return (x_t - np.sqrt(alpha_bar) * x0) / np.sqrt(1.0 - alpha_bar)


def x0_options(default: str) -> tuple[SamplerOption, SamplerOption]:
    """The --x0 and --x0-percentile options, with a sampler's own default mode."""
    mode = SamplerOption(
        "x0",
        "--x0",
        default,
        "What samplers do with their x_0 estimate: none, clip to [-1, 1], or dynamic thresholding "
        "(Saharia et al. 2022).",
        check=lambda v: None if v in X0_MODES else f"--x0 must be one of {', '.join(X0_MODES)}, got {v!r}",
        choices=X0_MODES,
    )
    percentile = SamplerOption(
        "x0_percentile",
        "--x0-percentile",
        DEFAULT_PERCENTILE,
        "Quantile of |x_0| per image that --x0 dynamic scales to the data range.",
        check=lambda v: None if 0.0 < v <= 1.0 else f"--x0-percentile must be in (0, 1], got {v}",
    )
    return mode, percentile
