"""Every sampler and spacing against data whose exact noise prediction is known in closed form.

For data x_0 ~ N(mu, s^2) per pixel, x_t = a x_0 + b eps (a = sqrt(alpha_bar), b = sqrt(1 - alpha_bar))
is Gaussian too and E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2). With that as the eps-model, an
exact sampler returns N(mu, s^2): what is left is each method's own discretisation error. Here
mu runs from -0.5 to 0.5 over the 8x8 pixels and s = 0.2; 256 images per case.

Tolerances. Mean: |mean error| <= 0.006, three standard errors of a mean over 256 x 64 draws of
s = 0.2 (0.0016 each), with room for the method's bias. Std: the sample std is within 0.6% of its
true value (1 / sqrt(2 * 256 * 64)); each case must match the std ratio measured when the samplers
were written (seed fixed, so only float differences between machines move it) within 0.03. The
table documents which combinations shrink the std and by how much: "trailing" spacing at few steps
shrinks it by a quarter to a third (its last listed t is T/S - 1, and the final jump to the clean
image from there is first order), ancestral ddpm even at T steps by 2-3% (its variance beta~ is the
lower bound, Ho et al. section 3.2), karras overshoots by 6-8% with the second-order solvers, and the
third-order solver at 10 calls by 16-24%.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime.generate import SamplingSettings
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import REGISTRY
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import sampling_timesteps

SCHEDULE = NoiseSchedule.from_config()
NUM_IMAGES, SIDE, STD = 256, 8, 0.2
MU = np.linspace(-0.5, 0.5, SIDE * SIDE).reshape(1, 1, SIDE, SIDE)

# std of the samples / true std, at each sampler's default number of steps (ddpm: T = 1000).
STD_RATIO = {
    ("ddpm", "trailing"): 0.973,
    ("ddpm", "logsnr"): 0.994,
    ("ddpm", "karras"): 0.984,
    ("ddim", "trailing"): 0.874,
    ("ddim", "logsnr"): 0.956,
    ("ddim", "karras"): 0.937,
    ("dpm-solver++", "trailing"): 0.750,
    ("dpm-solver++", "logsnr"): 1.018,
    ("dpm-solver++", "karras"): 1.058,
    ("dpm-solver++-sde", "trailing"): 0.717,
    ("dpm-solver++-sde", "logsnr"): 1.019,
    ("dpm-solver++-sde", "karras"): 1.083,
    # 3M at its 10 calls: the extrapolation from three x_0 estimates overshoots on data this narrow
    # (s = 0.2: x_0's estimate turns sharply near log SNR 3); on trained models it draws the better images
    ("dpm-solver++3m", "trailing"): 0.503,
    ("dpm-solver++3m", "logsnr"): 1.162,
    ("dpm-solver++3m", "karras"): 1.241,
    # consistency sampling with the denoiser itself (not a distilled student): each call returns the
    # posterior mean E[x_0 | x_t], so the spread collapses towards the last call's
    ("consistency", "trailing"): 0.200,
    ("consistency", "logsnr"): 0.491,
    ("consistency", "karras"): 0.164,
}


def gaussian_eps(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    alpha_bar = SCHEDULE.alpha_bar_at(t.astype(np.float64))[:, None, None, None]
    a, b = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)
    return (b * (x - a * MU) / (a * a * STD * STD + b * b)).astype(np.float32)


def sample(sampler: str, spacing: str, steps: int | None = None, **options) -> np.ndarray:
    spec = REGISTRY[sampler]
    steps = steps or spec.default_steps or SCHEDULE.num_timesteps
    rng = PerImageNoise(0, 0, NUM_IMAGES)
    x_T = rng.standard_normal((NUM_IMAGES, 1, SIDE, SIDE))
    return spec.sample(gaussian_eps, x_T, SCHEDULE, sampling_timesteps(SCHEDULE, steps, spacing), rng=rng, **options)


def test_the_table_covers_every_sampler_and_spacing():
    from ddpm_runtime.timesteps import SPACINGS

    assert set(STD_RATIO) == {(name, spacing) for name in REGISTRY for spacing in SPACINGS}


@pytest.mark.parametrize("sampler,spacing", sorted(STD_RATIO))
def test_mean_and_std_of_gaussian_data(sampler, spacing):
    x0 = sample(sampler, spacing)
    mean_error = float((x0.mean(axis=0) - MU[0]).mean())
    std_ratio = float(x0.std(axis=0).mean()) / STD
    assert abs(mean_error) <= 0.006
    assert std_ratio == pytest.approx(STD_RATIO[sampler, spacing], abs=0.03)


def test_the_default_combination_keeps_the_std_within_5_percent():
    """What `ddpm-run sample` does with no options, at its default steps and x0 handling."""
    defaults = SamplingSettings()
    spec = REGISTRY[defaults.sampler]
    options = {o.name: o.default for o in spec.options}
    x0 = sample(
        defaults.sampler, defaults.resolved_spacing(), defaults.resolved_steps(SCHEDULE.num_timesteps), **options
    )
    assert float(x0.std(axis=0).mean()) / STD == pytest.approx(1.0, abs=0.05)
    assert abs(float((x0.mean(axis=0) - MU[0]).mean())) <= 0.006


def test_dpm_solver_final_step_saves_the_call_at_t0():
    """`final="step"`: after the last call a second-order step lands on t = 0 with no call there. With the
    calls of karras's S + 1 times but the last (t = 0), S calls give what the S + 1 calls give (the last
    one, at t = 0, only maps x to its x_0 at sigma 0.01): std ratios within 0.01 (measured 0.876 / 0.874
    at S = 5, 1.058 / 1.055 at 10); S calls ending at t = 0 the usual way give 0.649 at S = 5."""
    from ddpm_runtime.samplers.dpm_solver import sample_dpm_solver_2m

    rng = PerImageNoise(0, 0, NUM_IMAGES)
    x_T = rng.standard_normal((NUM_IMAGES, 1, SIDE, SIDE))

    def std_ratio(times, **options):
        x0 = sample_dpm_solver_2m(gaussian_eps, x_T, SCHEDULE, times, x0="none", **options)
        assert abs(float((x0.mean(axis=0) - MU[0]).mean())) <= 0.006
        return float(x0.std(axis=0).mean()) / STD

    for calls, measured in ((5, 0.876), (10, 1.058)):
        grid = sampling_timesteps(SCHEDULE, calls + 1, "karras")
        landed = std_ratio(grid[:-1], final="step")
        assert landed == pytest.approx(std_ratio(grid), abs=0.01)
        assert landed == pytest.approx(measured, abs=0.03)
    assert std_ratio(sampling_timesteps(SCHEDULE, 5, "karras")) == pytest.approx(0.649, abs=0.03)
    # a last call already at t = 0 has nothing to land on: the option changes nothing there
    times = sampling_timesteps(SCHEDULE, 5, "karras")
    assert std_ratio(times, final="step") == std_ratio(times)
