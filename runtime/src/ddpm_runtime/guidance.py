"""Classifier-free guidance (Ho and Salimans 2022): a class-conditional eps-model as the samplers' eps-model.

    eps~(x, t, c) = (1 + w) eps(x, t, c) - w eps(x, t, no class)        (their eq. 6)

w = 0 is the plain conditional model (one ordinary model call); larger w trades diversity for
samples that look more like their class. Both predictions come from one model call on twice the
batch (conditional rows, then the same rows with the "no class" label), not from two calls.
Pure arrays in and out: no files, no sessions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import UserError
from .samplers.interface import EpsModel

# eps_model(x, t, y): float32 (B, C, H, W), (B,), int64 (B,) class labels -> predicted noise
ConditionalEpsModel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

# The scale ddpm-run uses when --guidance-scale is not given: of the scales whose samples ddpm eval's CNN
# puts in the requested class at least as often as it classifies real images right, the smallest whose FID
# is within the seed spread of the lowest (docs/benchmarks/guidance.md, "The scale in the CNN's features").
DEFAULT_GUIDANCE_SCALE = 1.5


def default_guidance_scale(default_sampling: dict | None) -> float:
    """The scale a model samples with when none is given: its own (a guided student's 0: its guidance is
    inside), else ``DEFAULT_GUIDANCE_SCALE``."""
    return float((default_sampling or {}).get("guidance_scale", DEFAULT_GUIDANCE_SCALE))


def check_guidance_scale(scale: float) -> None:
    if not np.isfinite(scale) or scale < 0:
        raise UserError(f"--guidance-scale must be a finite number >= 0, got {scale}")


def guided_eps(conditional, plain, scale):
    """Eq. 6 from the two predictions (float64): pure arithmetic, so the generator's graph arrays, with the
    scale a graph input, go through it as NumPy arrays do."""
    return (1.0 + scale) * conditional - scale * plain


def guided_eps_model(eps_model: ConditionalEpsModel, labels: np.ndarray, null_class: int, scale: float) -> EpsModel:
    """The eps-model ``f(x, t)`` that samples row i as class ``labels[i]`` with guidance scale ``scale``.

    A row whose label is ``null_class`` is sampled unconditionally (guidance leaves it unchanged).
    """
    check_guidance_scale(scale)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one per row, got shape {labels.shape}")
    both_labels = np.concatenate([labels, np.full_like(labels, null_class)])  # made once, sent every step

    def eps(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"{x.shape[0]} rows but {labels.shape[0]} labels")
        if scale == 0:
            return eps_model(x, t, labels)
        both = eps_model(np.concatenate([x, x]), np.concatenate([t, t]), both_labels)
        both = np.asarray(both, dtype=np.float64)
        return guided_eps(both[: len(labels)], both[len(labels) :], scale)

    return eps
