"""The one interface every sampler has, and the types it is written in.

A sampler is a pure function (k-diffusion's ``sample_*`` convention, our float64 NumPy state):

    sample(eps_model, x_T, schedule, timesteps, *, rng=None, callback=None, **options) -> x_0

- ``eps_model(x, t)``: float32 (B, C, H, W) and (B,) -> predicted noise; an ONNX Runtime session in
  production, a torch module in the tests.
- ``x_T``: the starting noise; ``schedule``: a ``NoiseSchedule``; ``timesteps``: the descending
  timesteps to visit (``timesteps.spaced_timesteps``). After the last one the sampler lands on the
  clean image (alpha_bar = 1).
- ``rng``: ``standard_normal(shape)`` for the noise a stochastic sampler adds (``noise.PerImageNoise``).
- ``callback(i, t, x)``: after every model call, with the step index, its timestep and the new state.
- ``options``: the sampler's own keyword options, declared in its ``SamplerSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..schedule import NoiseSchedule

EpsModel = Callable[[np.ndarray, np.ndarray], np.ndarray]
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
    default: float | bool
    help: str
    check: Callable[[object], str | None] | None = None  # returns a complaint about a value, or None

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
