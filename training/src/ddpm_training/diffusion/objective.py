"""The training objective in pieces: where training puts its noise levels, and how each row's loss is weighted.

Notation (VP form of the seed's schedule): x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps, ab = alpha_bar(t),
sigma = sqrt((1 - ab) / ab) (EDM's noise level of x_t / sqrt(ab)), SNR = 1 / sigma^2.

- ``NoiseLevels`` draws each row's time t. "uniform": integer t ~ U{0..T-1}, the seed's draw with the
  seed's random numbers. "log-normal": ln sigma ~ N(p_mean, p_std^2) (Karras et al. 2022, EDM's
  training distribution), mapped to fractional t through the schedule (the exact inverse of
  ``NoiseSchedule.alpha_bar_at``, which the samplers use), clamped to [0, T-1]. "logsnr-uniform":
  log SNR uniform between the schedule's two ends (t = 0 and t = T-1), the distribution of the
  calls a sampler with logsnr spacing (ddpm-run's default) makes, mapped to fractional t the same way.
- ``diffusion_loss`` weighs each row's mean squared error of what the network predicts (its
  parameterisation, ``prediction.py``), as EDM's ``EDMLoss``. "none": no weight, the plain MSE of the
  network's own output (for epsilon the seed's L_simple; for edm EDM's lambda(sigma) loss).
  "min-snr": Min-SNR-gamma (Hang et al. 2023): the weight that makes a row's loss
  min(SNR, gamma) ||x_0 - x_0_hat||^2, whatever the network predicts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .forward import ForwardProcess
from .parameterisation import Parameterisation

NOISE_LEVELS = ("uniform", "log-normal", "logsnr-uniform")
LOSS_WEIGHTINGS = ("none", "min-snr")


class NoiseLevels:
    """Draws a batch's times t from a torch generator: int64 for "uniform", float32 for the others."""

    def __init__(self, kind: str, forward: ForwardProcess, p_mean: float = -1.2, p_std: float = 1.2):
        if kind not in NOISE_LEVELS:
            raise ValueError(f"unknown noise-level distribution {kind!r} (choose from {', '.join(NOISE_LEVELS)})")
        self.kind, self.forward, self.p_mean, self.p_std = kind, forward, p_mean, p_std

    def draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "uniform":
            return torch.randint(0, self.forward.num_timesteps, (batch_size,), generator=generator)
        if self.kind == "log-normal":
            log_sigma = self.p_mean + self.p_std * torch.randn((batch_size,), generator=generator, dtype=torch.float64)
        else:
            ends = self.forward.log_alpha_bars[[0, -1]].cpu()
            log_snr_max, log_snr_min = (ends - torch.log(-torch.expm1(ends))).tolist()  # log(ab / (1 - ab))
            u = torch.rand((batch_size,), generator=generator, dtype=torch.float64)
            log_sigma = -0.5 * (log_snr_max + u * (log_snr_min - log_snr_max))
        return self.forward.time_of_sigma(log_sigma.exp()).float()


def diffusion_loss(
    model,
    forward: ForwardProcess,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    parameterisation: Parameterisation | None = None,
    weighting: str = "none",
    gamma: float = 5.0,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean over rows of w(t) ||network output - its target||^2, in float32.

    With the seed's parameterisation (epsilon) and no weighting it is L_simple (Ho et al. 2020, eq. 14),
    computed exactly as the seed computes it. ``y``: each row's class label for a
    class-conditional model (its "no class" index where the label was dropped); None when unconditional.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r} (choose from {', '.join(LOSS_WEIGHTINGS)})")
    parameterisation = parameterisation or Parameterisation()
    x_t = forward.add_noise(x0, noise, t)
    if parameterisation.kind == "epsilon":
        inputs, target = x_t, noise
    else:
        ab = forward.alpha_bar_at(t)[:, None, None, None]
        inputs, target = parameterisation.network_input(x_t, ab), parameterisation.target(x0, noise, ab)
    prediction = model(inputs, t) if y is None else model(inputs, t, y)
    if weighting == "none":
        return F.mse_loss(prediction.float(), target)
    per_row = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))  # (B,)
    snr = forward.snr_at(t)
    if parameterisation.kind == "epsilon":
        # ||x_0 err||^2 = ||eps err||^2 / SNR; the expression min-snr runs have always computed
        return (per_row * torch.clamp(snr, max=gamma) / snr).mean()
    scale = parameterisation.x0_error_scale(forward.alpha_bar_at(t))  # x_0 error per unit of output error
    return (per_row * torch.clamp(snr, max=gamma) * scale**2).mean()
