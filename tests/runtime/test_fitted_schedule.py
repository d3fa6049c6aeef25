"""Fitted model-call times: the search on data whose exact answer is known, the metadata that carries
them, and ddpm-run using them by default.

The eps-model is the closed form for Gaussian data x_0 ~ N(mu, s^2) per pixel (as in
test_gaussian_data.py), so each starting noise's exact image is known: the probability-flow ODE maps
x_T to mu + s z with z = (x_T - a_T mu) / sqrt(a_T^2 s^2 + b_T^2). The fit only sees a reference run;
the check is against the exact images of other noises than it was fitted on.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddpm_runtime.errors import UserError
from ddpm_runtime.generate import SamplingSettings, model_timesteps
from ddpm_runtime.metadata import FittedTimesteps, ImageSpec, ModelMetadata
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.schedule_fit import CachedEpsModel, final_images, fit_timesteps
from ddpm_runtime.timesteps import sampling_timesteps

SCHEDULE = NoiseSchedule.from_config()
SIDE, STD = 6, 0.2
MU = np.linspace(-0.5, 0.5, SIDE * SIDE).reshape(1, 1, SIDE, SIDE)


def gaussian_eps(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    alpha_bar = SCHEDULE.alpha_bar_at(t.astype(np.float64))[:, None, None, None]
    a, b = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)
    return (b * (x - a * MU) / (a * a * STD * STD + b * b)).astype(np.float32)


def exact_images(x_T: np.ndarray) -> np.ndarray:
    ab = float(SCHEDULE.alpha_bar_at(np.array(999.0)))
    z = (x_T - np.sqrt(ab) * MU) / np.sqrt(ab * STD * STD + 1 - ab)
    return np.clip(MU + STD * z, -1.0, 1.0)


def noise(seed: int, count: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 1, SIDE, SIDE))


@pytest.fixture(scope="module")
def fitted():
    trials = []
    result = fit_timesteps(gaussian_eps, SCHEDULE, noise(0), 5, sampler="dpm-solver++3m", on_trial=trials.append)
    return result, trials


def test_fitted_times_beat_every_fixed_spacing_on_noise_it_was_not_fitted_on(fitted):
    result, _ = fitted
    times = np.asarray(result.timesteps)
    assert len(times) == 5 and times[0] == 999.0 and times[-1] == 0.0 and np.all(np.diff(times) < 0)
    held_out = noise(1, 96)
    exact = exact_images(held_out)

    def error(ts):
        return float(np.mean((final_images(gaussian_eps, held_out, SCHEDULE, "dpm-solver++3m", ts) - exact) ** 2))

    fitted_error = error(times)
    fixed = {s: error(sampling_timesteps(SCHEDULE, 5, s)) for s in ("trailing", "logsnr", "karras")}
    # measured when written: fitted 2.0e-8 against logsnr 3.9e-4, karras 4.8e-3, trailing 2.2e-2 (for Gaussian
    # data the ODE is linear in x_T, so three free times can cancel nearly all of the 5-call error)
    assert fitted_error < 0.1 * min(fixed.values()), (fitted_error, fixed)
    assert result.error <= result.start_error
    assert result.start_spacing == min(fixed, key=fixed.get)  # the search starts from the best fixed spacing


def test_fit_for_a_landing_solver_frees_the_last_call():
    """options final "step" (dpm-solver++ lands on t = 0 with no call there): the fit searches S + 1 points
    whose last, t = 0, is the landing, so all S calls but the first move, the last one above 0; on noise it
    was not fitted on it beats the same solver's S calls fitted the usual way (the last call at t = 0)."""
    options = {"x0": "none", "final": "step"}
    landing = fit_timesteps(gaussian_eps, SCHEDULE, noise(0), 3, sampler="dpm-solver++", options=options)
    usual = fit_timesteps(gaussian_eps, SCHEDULE, noise(0), 3, sampler="dpm-solver++", options={"x0": "none"})
    times = np.asarray(landing.timesteps)
    assert len(times) == 3 and times[0] == 999.0 and times[-1] > 0 and np.all(np.diff(times) < 0)
    assert usual.timesteps[-1] == 0.0
    held_out = noise(1, 96)
    exact = exact_images(held_out)

    def error(ts, **opts):
        return float(np.mean((final_images(gaussian_eps, held_out, SCHEDULE, "dpm-solver++", ts, opts) - exact) ** 2))

    landed, jumped = error(times, **options), error(np.asarray(usual.timesteps), x0="none")
    # measured when written: 3 landing calls 1.9e-7 against 3 calls ending at t = 0 5.4e-3
    assert landed < 0.01 * jumped, (landed, jumped)


def test_the_search_reuses_unchanged_calls(fitted):
    result, trials = fitted
    reference_calls = 100 * 48
    naive = len(trials) * 5 * 48  # every trial's every call
    assert result.model_calls - reference_calls < 0.75 * naive, (result.model_calls, naive)


def test_cached_model_answers_repeated_states_without_a_call():
    calls = []

    def model(x, t):
        calls.append(len(x))
        return np.zeros_like(x)

    cached = CachedEpsModel(model, limit=2)
    x = np.ones((3, 1, 2, 2), np.float32)
    t = np.full((3,), 10.0, np.float32)
    cached(x, t), cached(x, t), cached(x + 1, t), cached(x, t)  # x stays most recently used
    cached(x + 2, t)  # evicts x + 1
    cached(x, t)
    assert calls == [3, 3, 3] and cached.image_calls == 9


def test_only_deterministic_samplers_are_fitted():
    with pytest.raises(ValueError, match="deterministic"):
        fit_timesteps(gaussian_eps, SCHEDULE, noise(0, 8), 4, sampler="dpm-solver++-sde")


# ---- the metadata and ddpm-run


def metadata(fitted=()) -> ModelMetadata:
    return ModelMetadata(ImageSpec(1, 4, 4), ScheduleConfig(), "epsilon", {}, {}, {}, fitted=tuple(fitted))


ENTRY = FittedTimesteps(
    sampler="dpm-solver++3m", timesteps=(999.0, 400.5, 90.25, 12.0, 0.0), fit={"error": 1e-4, "start_error": 2e-4}
)


def test_fitted_times_round_trip_and_replace_an_earlier_fit():
    meta = metadata().with_fitted(ENTRY)
    again = ModelMetadata.from_json(meta.to_json())
    assert again == meta and again.fitted_timesteps("dpm-solver++3m", 5) == ENTRY
    refit = FittedTimesteps(sampler="dpm-solver++3m", timesteps=(999.0, 500.0, 100.0, 10.0, 0.0))
    assert again.with_fitted(refit).fitted == (refit,)
    # a document without fits has no "sampling" key: files without fits read as they always did
    assert "sampling" not in json.loads(metadata().to_json())


@pytest.mark.parametrize(
    "times,problem",
    [
        ([999.0, 10.0, 20.0, 0.0], "descend"),
        ([998.0, 10.0, 0.0], "descend from 999 to at least 0"),
        ([999.0, 5.0, 0.0], None),
    ],
)
def test_malformed_fits_are_user_errors(times, problem):
    doc = json.loads(metadata().to_json())
    doc["sampling"] = {"fitted": [{"sampler": "ddim", "timesteps": times}]}
    if problem is None:
        assert ModelMetadata.from_json(json.dumps(doc)).fitted[0].timesteps == tuple(times)
        return
    with pytest.raises(UserError, match=f"m.onnx: bad metadata: .*{problem}"):
        ModelMetadata.from_json(json.dumps(doc), "m.onnx")


def test_fitted_options_round_trip_and_are_absent_where_there_are_none():
    landing = FittedTimesteps(
        sampler="dpm-solver++", timesteps=(999.0, 600.0, 80.0), fit={"error": 1e-4}, options={"final": "step"}
    )
    meta = metadata([landing])
    again = ModelMetadata.from_json(meta.to_json())
    assert again.fitted_timesteps("dpm-solver++", 3).options == {"final": "step"}
    assert "options" not in json.loads(metadata([ENTRY]).to_json())["sampling"]["fitted"][0]
    doc = json.loads(meta.to_json())
    doc["sampling"]["fitted"][0]["options"] = ["final", "step"]
    with pytest.raises(UserError, match="options must be a mapping"):
        ModelMetadata.from_json(json.dumps(doc), "m.onnx")


def test_ddpm_run_runs_fitted_times_with_their_options():
    from ddpm_runtime.generate import run_options

    landing = FittedTimesteps(sampler="dpm-solver++", timesteps=(999.0, 600.0, 80.0), fit={}, options={"final": "step"})
    meta = metadata([landing])
    fitted = SamplingSettings(sampler="dpm-solver++", steps=3)
    assert run_options(fitted, meta, SCHEDULE) == {"x0": "clip", "x0_percentile": 0.995, "final": "step"}
    # given options go over them; other times (a spacing, another count) run with the declared ones
    given = SamplingSettings(sampler="dpm-solver++", steps=3, options={"final": "x0", "x0": "none"})
    assert run_options(given, meta, SCHEDULE)["final"] == "x0"
    spaced = SamplingSettings(sampler="dpm-solver++", steps=3, spacing="karras")
    assert run_options(spaced, meta, SCHEDULE)["final"] == "x0"
    assert run_options(SamplingSettings(sampler="dpm-solver++", steps=4), meta, SCHEDULE)["final"] == "x0"


def test_ddpm_run_uses_fitted_times_unless_a_spacing_is_given():
    meta = metadata([ENTRY])
    fitted = SamplingSettings(sampler="dpm-solver++3m", steps=5)
    np.testing.assert_array_equal(model_timesteps(fitted, meta, SCHEDULE), ENTRY.timesteps)
    logsnr = SamplingSettings(sampler="dpm-solver++3m", steps=5, spacing="logsnr")
    np.testing.assert_array_equal(model_timesteps(logsnr, meta, SCHEDULE), sampling_timesteps(SCHEDULE, 5, "logsnr"))
    # another step count or sampler: the sampler's own spacing
    other = SamplingSettings(sampler="dpm-solver++3m", steps=6)
    np.testing.assert_array_equal(model_timesteps(other, meta, SCHEDULE), sampling_timesteps(SCHEDULE, 6, "karras"))
    with pytest.raises(
        UserError, match="no fitted timesteps for dpm-solver\\+\\+3m at 6 steps \\(it has: dpm-solver\\+\\+3m 5"
    ):
        model_timesteps(SamplingSettings(sampler="dpm-solver++3m", steps=6, spacing="fitted"), meta, SCHEDULE)
