"""DDIM checked against an analytic case, not against itself."""

from __future__ import annotations

import numpy as np
import pytest
from ddpm_runtime.samplers import ddim_step, sample_ddim
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import spaced_timesteps


def test_deterministic_ddim_lands_on_the_only_data_point():
    """If the data is a single image x*, the exact eps is (x_t - sqrt(ab_t) x*) / sqrt(1 - ab_t);
    DDIM with eta = 0 must then reach x* from any x_T, for any number of steps."""
    schedule = NoiseSchedule.from_config()
    target = np.random.default_rng(0).uniform(-1, 1, (1, 1, 6, 6))

    def exact_eps(x, t):
        ab = schedule.alpha_bars[t.astype(np.int64)][:, None, None, None]
        return ((x - np.sqrt(ab) * target) / np.sqrt(1 - ab)).astype(np.float32)

    for steps in (1, 10, 50):
        x_T = np.random.default_rng(steps).standard_normal((3, 1, 6, 6))
        x0 = sample_ddim(exact_eps, x_T, schedule, spaced_timesteps(1000, steps))
        # float32 model outputs bound the error.
        np.testing.assert_allclose(x0, np.broadcast_to(target, x0.shape), atol=1e-4)


def test_ddim_step_with_full_eta_has_ddpm_posterior_variance():
    """eta = 1 and consecutive steps give sigma^2 = beta~_t (Song et al., below eq. 16)."""
    schedule = NoiseSchedule.from_config()
    t = 400
    x = np.zeros((1, 1, 2, 2))
    eps = np.zeros_like(x)
    noise = np.ones_like(x)
    x_prev, _ = ddim_step(x, eps, schedule.alpha_bars[t], schedule.alpha_bars[t - 1], eta=1.0, noise=noise)
    assert x_prev[0, 0, 0, 0] == pytest.approx(np.sqrt(schedule.posterior_variance[t]), rel=1e-12)


def test_stochastic_ddim_needs_rng_and_is_reproducible():
    schedule = NoiseSchedule.from_config()
    model = lambda x, t: np.zeros_like(x)  # noqa: E731
    x_T = np.ones((2, 1, 4, 4))
    with pytest.raises(ValueError, match="rng"):
        sample_ddim(model, x_T, schedule, spaced_timesteps(1000, 5), eta=0.5)
    a = sample_ddim(model, x_T, schedule, spaced_timesteps(1000, 5), eta=0.5, rng=np.random.default_rng(3))
    b = sample_ddim(model, x_T, schedule, spaced_timesteps(1000, 5), eta=0.5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
