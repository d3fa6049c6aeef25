"""A timestep schedule fitted to one model: the S times at which a deterministic sampler's images come
closest to those of a many-step reference run from the same starting noise.

The idea of "Align Your Steps" (Sabour et al. 2024) and GITS (Chen et al. 2024): the best S times
depend on the model and the data, not only on the noise schedule, so measure them. Here the error
is the mean squared difference, per pixel, between the S-call sampler's x_0 (clipped to the data
range, as the images are) and the reference sampler's x_0 at many calls, over a few hundred
starting noises. The first and last times stay at T-1 and 0 (where every spacing starts and ends);
the S - 2 between them are searched in lambda = log(alpha / sigma), one at a time from the last to
the first (a pattern search: try a step either way, keep it if the error falls, else halve it),
starting from the best of the fixed spacings (trailing, logsnr, karras) at that step count.
With ``options={"final": "step"}`` (dpm-solver++ landing on t = 0 without a call there) the search
runs over S + 1 points whose last, t = 0, is where the sampler lands: the S calls are all free but
the first, and the last of them can sit above 0 where a call still helps.

A search that moves the k-th time leaves the first k model calls of every trial unchanged, so
``CachedEpsModel`` answers them from memory: only the calls from the k-th on are made again.
Pure: the model is a function, the noise an array, the result a ``FittedSchedule``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .images import VALUE_RANGE
from .samplers import EpsModel, get_sampler
from .schedule import NoiseSchedule
from .timesteps import SPACINGS, sampling_timesteps, times_of_lambdas

# fitted dpm-solver++ beat fitted dpm-solver++3m at 5, 8 and 10 calls (docs/benchmarks/few-calls.md,
# "Solvers, spacings and fitted times")
DEFAULT_SAMPLER = "dpm-solver++"
DEFAULT_REFERENCE = ("dpm-solver++", 100)  # sampler and calls of the reference run
DEFAULT_IMAGES = 128


@dataclass(frozen=True)
class FittedSchedule:
    sampler: str
    timesteps: tuple[float, ...]  # descending, first T-1, last 0 (above 0 with options final "step")
    error: float  # mean squared error per pixel against the reference, at the fitted times
    start_error: float  # the same at the best fixed spacing, where the search began
    start_spacing: str  # that spacing (timesteps.SPACINGS)
    model_calls: int  # model calls (images x calls) the search made, the reference run's included


class CachedEpsModel:
    """An eps-model that remembers its last ``limit`` answers by (t, x), least recently used out first:
    a deterministic sampler that revisits the same state (the unchanged prefix of a trial schedule)
    costs no model call there. Counts the image-calls made."""

    def __init__(self, eps_model: EpsModel, limit: int = 256):
        self.eps_model, self.limit = eps_model, limit
        self.cache: dict[tuple[float, bytes], np.ndarray] = {}
        self.image_calls = 0

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        key = (float(t[0]), hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest())
        if key in self.cache:
            self.cache[key] = self.cache.pop(key)  # now the most recently used
        else:
            if len(self.cache) >= self.limit:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = np.asarray(self.eps_model(x, t))
            self.image_calls += len(x)
        return self.cache[key]


def final_images(
    eps_model: EpsModel, x_T: np.ndarray, schedule: NoiseSchedule, sampler: str, timesteps, options=None
) -> np.ndarray:
    """The sampler's x_0 from x_T at these times, with its options as ddpm-run runs them by default (and
    ``options`` over them), clipped to the data range (what the images show)."""
    spec = get_sampler(sampler)
    options = {**{option.name: option.default for option in spec.options}, **(options or {})}
    x0 = spec.sample(eps_model, x_T, schedule, np.asarray(timesteps, dtype=np.float64), **options)
    return np.clip(x0, *VALUE_RANGE)


def fit_timesteps(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: np.ndarray,
    steps: int,
    sampler: str = DEFAULT_SAMPLER,
    reference: tuple[str, int] = DEFAULT_REFERENCE,
    sweeps: int = 3,
    reference_x0: np.ndarray | None = None,
    on_trial=None,
    options: dict | None = None,
) -> FittedSchedule:
    """Fit ``steps`` times for ``sampler`` (a deterministic one) on the starting noises ``x_T``.

    ``reference_x0``: the reference run's clipped x_0 for these x_T, when already computed (fitting
    several step counts shares it). ``on_trial(error)``: after each trial schedule, for progress.
    ``options``: the sampler's options to fit for, over its defaults (``{"final": "step"}``: see above)."""
    options = dict(options or {})
    land = options.get("final") == "step"
    points = steps + 1 if land else steps  # the searched grid; landing: its last point is t = 0, not a call
    spec = get_sampler(sampler)
    if any(option.name == "eta" for option in spec.options) or sampler == "ddpm" or "sde" in sampler:
        raise ValueError(f"a schedule is fitted for a deterministic sampler, not {sampler!r}")
    cached = CachedEpsModel(eps_model, limit=4 * steps + 8)
    if reference_x0 is None:
        ref_sampler, ref_steps = reference
        reference_x0 = final_images(
            cached, x_T, schedule, ref_sampler, sampling_timesteps(schedule, ref_steps, "logsnr")
        )
        cached.cache.clear()

    def calls_of(lambdas: np.ndarray) -> np.ndarray:
        times = lambdas_to_times(schedule, lambdas)
        return times[:-1] if land else times

    def error_of(lambdas: np.ndarray) -> float:
        images = final_images(cached, x_T, schedule, sampler, calls_of(lambdas), options)
        err = float(np.mean((images - reference_x0) ** 2))
        if on_trial is not None:
            on_trial(err)
        return err

    # start from the best of the fixed spacings at this step count
    starts = {spacing: schedule.log_snr(sampling_timesteps(schedule, points, spacing)) for spacing in SPACINGS}
    errors = {spacing: error_of(lambdas) for spacing, lambdas in starts.items()}
    start_spacing = min(errors, key=errors.get)
    lambdas, best = starts[start_spacing], errors[start_spacing]
    start_error = best
    if points >= 3:
        for sweep in range(sweeps):
            for k in range(points - 2, 0, -1):  # the last free time first: most of each trial's calls are cached
                low, high = lambdas[k - 1], lambdas[k + 1]
                delta = (high - low) / (4.0 * (sweep + 1))
                for _ in range(4):
                    moved = False
                    for candidate in (lambdas[k] + delta, lambdas[k] - delta):
                        if not low < candidate < high:
                            continue
                        trial = lambdas.copy()
                        trial[k] = candidate
                        err = error_of(trial)
                        if err < best:
                            best, lambdas, moved = err, trial, True
                            break
                    if not moved:
                        delta /= 2.0
    times = calls_of(lambdas)
    return FittedSchedule(
        sampler,
        tuple(float(t) for t in times),
        best,
        start_error,
        start_spacing,
        cached.image_calls,
    )


def lambdas_to_times(schedule: NoiseSchedule, lambdas: np.ndarray) -> np.ndarray:
    times = times_of_lambdas(schedule, lambdas)
    times[0], times[-1] = schedule.num_timesteps - 1, 0.0  # exact ends, as sampling_timesteps keeps them
    return times
