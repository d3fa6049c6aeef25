"""The noise schedule of DDPM (Ho et al. 2020), defined once for the whole project.

Everything is float64 NumPy; callers cast to float32 (or to torch tensors) only where they use it.
Index ``t`` runs from 0 to T-1, as in the seed code: ``betas[0]`` is the paper's beta_1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import UserError

SCHEDULE_KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "linear"  # "linear" as in the seed and Ho et al.; "cosine" as in Nichol & Dhariwal 2021
    num_timesteps: int = 1000  # T: the seed's num_time_steps
    beta_start: float = 1e-4  # beta_1 (linear only), the seed's value
    beta_end: float = 0.02  # beta_T (linear only), the seed's value
    cosine_s: float = 0.008  # offset s of the cosine schedule (Nichol & Dhariwal 2021, eq. 17)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise UserError(f"unknown schedule kind {self.kind!r} (choose from {', '.join(SCHEDULE_KINDS)})")
        if int(self.num_timesteps) != self.num_timesteps or self.num_timesteps < 2:
            raise UserError(f"num_timesteps must be an integer >= 2, got {self.num_timesteps!r}")
        if self.kind == "linear" and not (0.0 < self.beta_start <= self.beta_end < 1.0):
            raise UserError(
                f"linear schedule needs 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        if self.kind == "cosine" and not self.cosine_s > 0:
            raise UserError(f"cosine_s must be positive, got {self.cosine_s}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScheduleConfig:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise UserError(f"unknown schedule field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def _linear_betas(cfg: ScheduleConfig) -> np.ndarray:
    # The seed: torch.linspace(beta_start, beta_end, num_time_steps).
    return np.linspace(cfg.beta_start, cfg.beta_end, cfg.num_timesteps, dtype=np.float64)


def _cosine_betas(cfg: ScheduleConfig) -> np.ndarray:
    # Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2),
    # betas = 1 - alpha_bar(t) / alpha_bar(t-1), clipped at 0.999 to avoid the singularity at t = T.
    steps = np.arange(cfg.num_timesteps + 1, dtype=np.float64) / cfg.num_timesteps
    f = np.cos((steps + cfg.cosine_s) / (1.0 + cfg.cosine_s) * math.pi / 2.0) ** 2
    alpha_bar = f / f[0]
    return np.clip(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.0, 0.999)


@dataclass(frozen=True)
class NoiseSchedule:
    """Precomputed float64 arrays of length T, indexed by the integer timestep t in [0, T)."""

    config: ScheduleConfig
    betas: np.ndarray = field(repr=False)
    alphas: np.ndarray = field(repr=False)  # 1 - beta_t
    alpha_bars: np.ndarray = field(repr=False)  # prod_{s<=t} alpha_s (Ho et al., eq. 4)
    alpha_bars_prev: np.ndarray = field(repr=False)  # alpha_bar_{t-1}, with alpha_bar_{-1} = 1
    posterior_variance: np.ndarray = field(repr=False)  # beta~_t = beta_t (1 - ab_{t-1}) / (1 - ab_t) (eq. 7)

    @property
    def num_timesteps(self) -> int:
        return self.config.num_timesteps

    def alpha_bar_at(self, t) -> np.ndarray:
        """alpha_bar at timesteps t in [0, T-1], fractional ones too (float64, t's shape).

        At integers: the table itself, bit for bit. Between them: log(alpha_bar) linear in t, as
        DPM-Solver's discrete-time ``NoiseScheduleVP`` interpolates log(alpha_t) (Lu et al. 2022).
        """
        t = np.asarray(t, dtype=np.float64)
        if np.any((t < 0) | (t > self.num_timesteps - 1)):
            raise ValueError(f"timesteps must lie in [0, {self.num_timesteps - 1}]")
        index = np.rint(t).astype(np.int64)
        on_grid = t == index
        steps = np.arange(self.num_timesteps, dtype=np.float64)
        between = np.exp(np.interp(t, steps, np.log(self.alpha_bars)))
        return np.where(on_grid, self.alpha_bars[np.clip(index, 0, self.num_timesteps - 1)], between)

    def log_snr(self, t) -> np.ndarray:
        """lambda_t = log(alpha_t / sigma_t) = 0.5 log(alpha_bar / (1 - alpha_bar)) (Lu et al. 2022, eq. 2.3)."""
        alpha_bar = self.alpha_bar_at(t)
        return 0.5 * (np.log(alpha_bar) - np.log1p(-alpha_bar))

    @classmethod
    def from_config(cls, config: ScheduleConfig | None = None) -> NoiseSchedule:
        config = config or ScheduleConfig()
        betas = _linear_betas(config) if config.kind == "linear" else _cosine_betas(config)
        alphas = 1.0 - betas
        alpha_bars = np.cumprod(alphas)
        alpha_bars_prev = np.concatenate([[1.0], alpha_bars[:-1]])
        # At t = 0 this is 0: the seed adds no noise on the last reverse step.
        posterior_variance = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
        arrays = dict(
            betas=betas,
            alphas=alphas,
            alpha_bars=alpha_bars,
            alpha_bars_prev=alpha_bars_prev,
            posterior_variance=posterior_variance,
        )
        for array in arrays.values():
            array.setflags(write=False)
        return cls(config=config, **arrays)
