"""Which of the T training timesteps a sampler with fewer steps visits.

Fewer sampling steps change the schedule data a sampler is given, never the sampler's code
(the idea of improved-diffusion's ``space_timesteps``).
"""

from __future__ import annotations

import numpy as np

from .errors import UserError


def spaced_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
    """Descending integer timesteps, "trailing" spacing (Lin et al. 2024, table 2).

    ``t_i = round(T - i * T / steps) - 1`` for i = 0 .. steps-1. The first step is always T-1, the
    fully noised step the model was trained on, so sampling starts from pure noise as in training;
    with steps == T this is T-1, T-2, ..., 0, the seed's full reverse process.
    """
    if int(num_steps) != num_steps or not 1 <= num_steps <= num_timesteps:
        raise UserError(f"number of sampling steps must be between 1 and T={num_timesteps}, got {num_steps}")
    ts = np.round(np.arange(num_timesteps, 0, -num_timesteps / num_steps)).astype(np.int64) - 1
    return ts[:num_steps]
