"""The float64 noise schedule and the timestep spacing (the seed comparison is in tests/parity/). No torch."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime.errors import UserError
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import spaced_timesteps


def test_posterior_variance_is_eq7_and_zero_at_t0():
    s = NoiseSchedule.from_config()
    assert s.posterior_variance[0] == 0.0
    t = 500
    expected = s.betas[t] * (1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t])
    assert s.posterior_variance[t] == pytest.approx(expected, rel=1e-15)
    assert np.all(s.posterior_variance[1:] < s.betas[1:])


def test_cosine_schedule_is_monotone_and_clipped():
    s = NoiseSchedule.from_config(ScheduleConfig(kind="cosine", num_timesteps=200))
    assert np.all(np.diff(s.alpha_bars) < 0)
    assert s.betas.max() <= 0.999 and s.betas.min() > 0


def test_schedule_config_round_trip_and_validation():
    config = ScheduleConfig(kind="linear", num_timesteps=500, beta_start=2e-4, beta_end=0.03)
    assert ScheduleConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError):
        ScheduleConfig(kind="quadratic")
    with pytest.raises(UserError):
        ScheduleConfig(beta_start=0.5, beta_end=0.1)


def test_spaced_timesteps():
    np.testing.assert_array_equal(spaced_timesteps(1000, 1000), np.arange(999, -1, -1))
    ten = spaced_timesteps(1000, 10)
    np.testing.assert_array_equal(ten, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
    for steps in (1, 3, 7, 20, 999):
        ts = spaced_timesteps(1000, steps)
        assert len(ts) == steps and ts[0] == 999 and np.all(np.diff(ts) < 0) and ts[-1] >= 0
    for bad in (0, 1001):
        with pytest.raises(UserError, match="between 1 and T=1000"):
            spaced_timesteps(1000, bad)
