"""The DDPM forward process and training objective in torch, on the runtime's float64 schedule."""

from __future__ import annotations

import numpy as np
import torch

from ddpm_runtime.schedule import NoiseSchedule


class ForwardProcess:
    """q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I) (Ho et al. 2020, eq. 4), one t per batch row.

    Integer t (the seed's draw) index the tables; fractional t interpolate log(alpha_bar) linearly
    between integers in float64, as ``NoiseSchedule.alpha_bar_at`` does for the samplers."""

    def __init__(self, schedule: NoiseSchedule, device: torch.device | str = "cpu"):
        self.schedule = schedule
        self.num_timesteps = schedule.num_timesteps
        # Square roots taken in float64, cast to float32 only here, where they are used.
        self.sqrt_alpha_bars = torch.tensor(schedule.alpha_bars**0.5, dtype=torch.float32, device=device)
        self.sqrt_one_minus_alpha_bars = torch.tensor(
            (1.0 - schedule.alpha_bars) ** 0.5, dtype=torch.float32, device=device
        )
        # SNR_t = alpha_bar_t / (1 - alpha_bar_t), for loss weightings
        self.snr = torch.tensor(schedule.alpha_bars / (1.0 - schedule.alpha_bars), dtype=torch.float32, device=device)
        self.log_alpha_bars = torch.tensor(np.log(schedule.alpha_bars), dtype=torch.float64, device=device)

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar of each row's t (B,), float32; exact table values at integer t."""
        if not t.is_floating_point():
            return torch.tensor(self.schedule.alpha_bars, dtype=torch.float32, device=t.device)[t]
        table = self.log_alpha_bars.to(t.device)
        t = t.double().clamp(0.0, self.num_timesteps - 1.0)
        low = t.floor().clamp(max=self.num_timesteps - 2)
        index = low.long()
        return (table[index] + (t - low) * (table[index + 1] - table[index])).exp().float()

    def snr_at(self, t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return self.snr[t]
        ab = self.alpha_bar_at(t).double()
        return (ab / (1.0 - ab)).float()

    def time_of_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """The (fractional, float64) t whose sigma = sqrt((1 - ab) / ab) is this: the exact inverse of
        ``alpha_bar_at``'s interpolation, clamped to [0, T-1]."""
        rising = -self.log_alpha_bars.to(sigma.device)  # -log(alpha_bar) increases with t
        target = torch.log1p(sigma.double() ** 2)  # -log(alpha_bar) = log(1 + sigma^2)
        upper = torch.searchsorted(rising, target).clamp(1, self.num_timesteps - 1)
        low, high = rising[upper - 1], rising[upper]
        t = (upper - 1).double() + (target - low) / (high - low)
        return t.clamp(0.0, self.num_timesteps - 1.0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps for (B, C, H, W) x_0 and (B,) t."""
        if t.is_floating_point():
            ab = self.alpha_bar_at(t).double()
            scale_x0 = ab.sqrt().float()[:, None, None, None]
            scale_eps = (1.0 - ab).sqrt().float()[:, None, None, None]
        else:
            scale_x0 = self.sqrt_alpha_bars[t][:, None, None, None]  # (B, 1, 1, 1)
            scale_eps = self.sqrt_one_minus_alpha_bars[t][:, None, None, None]
        return scale_x0 * x0 + scale_eps * noise
