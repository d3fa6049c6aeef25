"""The samplers against analytic cases (exact eps of a one-image data set), not against themselves. No torch."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import ddim_step, sample_ddim, sample_ddpm, sample_dpm_solver_2m
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import spaced_timesteps

SCHEDULE = NoiseSchedule.from_config()


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


def exact_eps_for(target):
    def eps(x, t):
        ab = SCHEDULE.alpha_bars[t.astype(np.int64)][:, None, None, None]
        return ((x - np.sqrt(ab) * target) / np.sqrt(1 - ab)).astype(np.float32)

    return eps


def test_dpm_solver_lands_on_the_only_data_point():
    """With the exact eps of a one-image data set every x_0 prediction is x*, so any step count lands on it."""
    target = np.random.default_rng(0).uniform(-1, 1, (1, 1, 5, 5))
    for steps in (1, 2, 10, 25):
        x_T = np.random.default_rng(steps).standard_normal((2, 1, 5, 5))
        x0 = sample_dpm_solver_2m(exact_eps_for(target), x_T, SCHEDULE, spaced_timesteps(1000, steps))
        np.testing.assert_allclose(x0, np.broadcast_to(target, x0.shape), atol=1e-4)


def test_ddpm_full_run_lands_near_the_only_data_point():
    """Ancestral sampling with exact eps ends at x* plus the last steps' small noise (sigma_1 ~ 0.01)."""
    target = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 1, 5, 5))
    x_T = np.random.default_rng(2).standard_normal((2, 1, 5, 5))
    x0 = sample_ddpm(exact_eps_for(target), x_T, SCHEDULE, spaced_timesteps(1000, 1000), rng=PerImageNoise(0, 0, 2))
    assert np.abs(x0 - target).max() < 0.05


def test_per_image_noise_does_not_depend_on_batching():
    whole = PerImageNoise(5, 0, 6).standard_normal((6, 1, 2, 2))
    parts = np.concatenate(
        [PerImageNoise(5, 0, 4).standard_normal((4, 1, 2, 2)), PerImageNoise(5, 4, 2).standard_normal((2, 1, 2, 2))]
    )
    np.testing.assert_array_equal(whole, parts)
