"""The one interface every sampler has, and the types it is written in.

A sampler is a pure function (k-diffusion's ``sample_*`` convention, our float64 NumPy state):

    sample(eps_model, x_T, schedule, timesteps, *, rng=None, callback=None, **options) -> x_0

- ``eps_model(x, t)``: float32 (B, C, H, W) and (B,) -> predicted noise; an ONNX Runtime session in
  production, a torch module in the tests.
- ``x_T``: the starting noise; ``schedule``: a ``NoiseSchedule``; ``timesteps``: the descending,
  possibly fractional times to visit (``timesteps.sampling_timesteps``; ``schedule.alpha_bar_at(t)``
  gives alpha_bar there). After the last one the sampler lands on the clean image (alpha_bar = 1).
- ``rng``: ``standard_normal(shape)`` for the noise a stochastic sampler adds (``noise.PerImageNoise``).
- ``callback(i, t, x)``: after every model call, with the step index, its timestep and the new state.
- ``options``: the sampler's own keyword options, declared in its ``SamplerSpec``.

Array states go through ``as_float64`` and ``call_model`` and otherwise meet only arithmetic, slicing
and NumPy functions that dispatch to their arguments (``np.clip``, ``np.abs``, ``np.quantile``,
``np.maximum``). So a stand-in array that records what is done to it (ddpm-export's generator, which
writes a sampler into an ONNX graph) runs through the very same sampler code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..arrays import as_float64
from ..schedule import NoiseSchedule

EpsModel = Callable[[np.ndarray, np.ndarray], np.ndarray]
# callback(i, t, x): step index, the (possibly fractional) timestep of that model call, the new state
Callback = Callable[[int, int, np.ndarray], None]


class Sampler(Protocol):
    def __call__(
        self,
        eps_model: EpsModel,
        x_T: np.ndarray,
        schedule: NoiseSchedule,
        timesteps: np.ndarray,
        *,
        rng=None,
        callback: Callback | None = None,
        **options,
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class SamplerOption:
    """A keyword option of one or more samplers, and the command-line flag that sets it."""

    name: str  # the sampler function's keyword argument
    flag: str  # e.g. "--eta"; options of the same name share one flag
    default: float | bool | str
    help: str
    check: Callable[[object], str | None] | None = None  # returns a complaint about a value, or None
    choices: tuple[str, ...] | None = None  # for string options: what the CLI offers

    @property
    def is_flag(self) -> bool:
        return isinstance(self.default, bool)


@dataclass(frozen=True)
class SamplerSpec:
    """What the registry knows of a sampler: its function, default step count, help and options."""

    name: str  # what users type after --sampler
    sample: Sampler
    default_steps: int | None  # model calls per image when --steps is not given; None: all T (the seed's)
    summary: str  # one line for --help: what it is and where it comes from
    options: tuple[SamplerOption, ...] = ()
    default_spacing: str = "trailing"  # timesteps.SPACINGS: where its model calls fall when --spacing is not given


def alpha_bar_pairs(
    schedule: NoiseSchedule, timesteps: np.ndarray, end: float = 1.0
) -> list[tuple[float, float, float]]:
    """(t, alpha_bar_t, alpha_bar_next) for each listed timestep; after the last one alpha_bar is ``end``:
    1, the clean image, unless a sampler lands elsewhere (dpm-solver++ with ``final="step"``)."""
    timesteps = np.asarray(timesteps, dtype=np.float64)
    alpha_bars = np.append(schedule.alpha_bar_at(timesteps), end)
    return [(float(t), float(alpha_bars[i]), float(alpha_bars[i + 1])) for i, t in enumerate(timesteps)]


def call_model(eps_model: EpsModel, x: np.ndarray, t: float) -> np.ndarray:
    """One model call at time t for every row: float32 in, float64 out."""
    eps = eps_model(x.astype(np.float32), np.full((x.shape[0],), t, dtype=np.float32))
    return as_float64(eps)
