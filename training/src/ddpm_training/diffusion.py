"""The DDPM forward process and training objective in torch, on the runtime's float64 schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddpm_runtime.schedule import NoiseSchedule


class ForwardProcess:
    """q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I) (Ho et al. 2020, eq. 4), one t per batch row."""

    def __init__(self, schedule: NoiseSchedule, device: torch.device | str = "cpu"):
        self.schedule = schedule
        # Square roots taken in float64, cast to float32 only here, where they are used.
        self.sqrt_alpha_bars = torch.tensor(schedule.alpha_bars**0.5, dtype=torch.float32, device=device)
        self.sqrt_one_minus_alpha_bars = torch.tensor(
            (1.0 - schedule.alpha_bars) ** 0.5, dtype=torch.float32, device=device
        )
        # SNR_t = alpha_bar_t / (1 - alpha_bar_t), for loss weightings
        self.snr = torch.tensor(schedule.alpha_bars / (1.0 - schedule.alpha_bars), dtype=torch.float32, device=device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps for (B, C, H, W) x_0 and integer (B,) t."""
        scale_x0 = self.sqrt_alpha_bars[t][:, None, None, None]  # (B, 1, 1, 1)
        scale_eps = self.sqrt_one_minus_alpha_bars[t][:, None, None, None]
        return scale_x0 * x0 + scale_eps * noise


LOSS_WEIGHTINGS = ("none", "min-snr")


def noise_prediction_loss(
    model, forward: ForwardProcess, x0, noise, t, weighting: str = "none", min_snr_gamma: float = 5.0, y=None
) -> torch.Tensor:
    """L_simple (Ho et al. 2020, eq. 14): MSE between the true and the predicted noise, in float32.

    ``weighting="min-snr"``: each row's MSE weighted by min(SNR_t, gamma) / SNR_t, Min-SNR-gamma for the
    eps objective (Hang et al. 2023, eq. 7 with eq. 4's eps form): the nearly clean timesteps, whose
    noise is hard to predict and matters little for samples, no longer dominate the gradient.

    ``y``: the class label of each row for a class-conditional model (its "no class" index where the
    label was dropped); None for an unconditional one.
    """
    x_t = forward.add_noise(x0, noise, t)
    prediction = model(x_t, t) if y is None else model(x_t, t, y)
    if weighting == "none":
        return F.mse_loss(prediction.float(), noise)
    per_row = F.mse_loss(prediction.float(), noise, reduction="none").mean(dim=(1, 2, 3))  # (B,)
    snr = forward.snr[t]
    return (per_row * torch.clamp(snr, max=min_snr_gamma) / snr).mean()
