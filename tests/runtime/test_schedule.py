"""The float64 noise schedule and the timestep spacing (the seed comparison is in tests/parity/). No torch."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime.errors import UserError
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import sampling_timesteps, spaced_timesteps


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


def test_alpha_bar_at_is_the_table_at_integers_and_monotone_between():
    s = NoiseSchedule.from_config()
    t = np.arange(1000)
    np.testing.assert_array_equal(s.alpha_bar_at(t), s.alpha_bars)  # bit for bit: golden samples rely on it
    fine = np.linspace(0, 999, 9991)
    values = s.alpha_bar_at(fine)
    assert np.all(np.diff(values) < 0)
    # Between two integers log(alpha_bar) is linear: the midpoint is the geometric mean.
    assert s.alpha_bar_at(10.5) == pytest.approx(np.sqrt(s.alpha_bars[10] * s.alpha_bars[11]), rel=1e-12)
    with pytest.raises(ValueError):
        s.alpha_bar_at(999.5)


@pytest.mark.parametrize("steps", [2, 10, 20, 50])
def test_logsnr_spacing_is_even_in_log_snr(steps):
    s = NoiseSchedule.from_config()
    ts = sampling_timesteps(s, steps, "logsnr")
    assert ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    expected = np.linspace(s.log_snr(999), s.log_snr(0), steps)
    # The times invert alpha_bar_at exactly, so lambda lands on the grid to rounding.
    np.testing.assert_allclose(s.log_snr(ts), expected, atol=1e-9)


@pytest.mark.parametrize("steps,rho", [(10, 7.0), (20, 7.0), (20, 3.0)])
def test_karras_spacing_follows_eq5(steps, rho):
    """Karras et al. 2022, eq. 5, in EDM's sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    s = NoiseSchedule.from_config()
    ts = sampling_timesteps(s, steps, "karras", rho)
    sigma = lambda t: np.sqrt((1 - s.alpha_bar_at(t)) / s.alpha_bar_at(t))  # noqa: E731
    sigma_max, sigma_min = sigma(999.0), sigma(0.0)
    ramp = np.arange(steps) / (steps - 1)
    expected = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    np.testing.assert_allclose(sigma(ts), expected, rtol=1e-9)
    assert np.all(np.diff(ts) < 0)


@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_spreads_on_the_cosine_schedule_start_from_sigma_160(spacing):
    """The cosine schedule's sigma(T-1) is about 2e4: the spread starts from sigma = 160 instead, the first
    call staying at T-1 (karras: eq. 5 with sigma_max 160; logsnr: even from lambda = -log 160). The
    linear schedule (sigma(T-1) = 157, under the cap) keeps the uncapped formulas, tested above."""
    s = NoiseSchedule.from_config(ScheduleConfig(kind="cosine"))
    sigma = lambda t: np.sqrt((1 - s.alpha_bar_at(t)) / s.alpha_bar_at(t))  # noqa: E731
    assert sigma(999.0) > 1e4 and sigma(999.0 - 1) < 1e3
    ts = sampling_timesteps(s, 8, spacing)
    assert ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    if spacing == "karras":
        ramp, rho = np.arange(8) / 7, 7.0
        expected = (160 ** (1 / rho) + ramp * (sigma(0.0) ** (1 / rho) - 160 ** (1 / rho))) ** rho
        np.testing.assert_allclose(sigma(ts[1:]), expected[1:], rtol=1e-9)
    else:
        expected = np.linspace(-np.log(160.0), s.log_snr(0), 8)
        np.testing.assert_allclose(s.log_snr(ts[1:]), expected[1:], atol=1e-9)
    assert sigma(ts[1]) < 160  # the second call already sees some image (uncapped: t = 998.7, sigma 2e3)


def test_trailing_is_unchanged_and_one_step_starts_at_T_minus_1():
    s = NoiseSchedule.from_config()
    np.testing.assert_array_equal(sampling_timesteps(s, 10, "trailing"), spaced_timesteps(1000, 10))
    for spacing in ("trailing", "logsnr", "karras"):
        np.testing.assert_array_equal(sampling_timesteps(s, 1, spacing), [999.0])


def test_cosine_schedule_is_nichol_and_dhariwals_alpha_bar():
    """alpha_bar after step t (index t) is f(t + 1) / f(0), f(u) = cos^2(((u / T + s) / (1 + s)) pi / 2)
    (Nichol and Dhariwal 2021, eq. 17), wherever the betas are not clipped at 0.999 (only the last)."""
    import math

    T, s = 1000, 0.008
    sched = NoiseSchedule.from_config(ScheduleConfig(kind="cosine", num_timesteps=T))

    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    expected = np.array([f(t + 1) / f(0) for t in range(T - 1)])
    np.testing.assert_allclose(sched.alpha_bars[: T - 1], expected, rtol=1e-12)
    assert sched.betas[-1] == 0.999  # f(T) = cos^2(pi / 2) = 0: clipped
    # two values by hand: half way, sigma = sqrt((1 - ab) / ab) is about 1; near t = 793, about 3
    assert sched.alpha_bars[499] == pytest.approx(0.4938, abs=2e-4)
    sigma = np.sqrt((1 - sched.alpha_bars) / sched.alpha_bars)
    assert 1.0 < sigma[499] < 1.03 and int(np.argmax(sigma > 3.0)) == pytest.approx(793, abs=2)
