"""What the network is trained to predict, and the one wrapper that turns it into the samplers' eps.

The U-Net is unchanged; a parameterisation only says what goes in, what it is trained to output, and
how that output becomes the predicted noise (the idea of EDM's ``EDMPrecond`` and k-diffusion's
``external.py`` wrappers). Every function takes ab = alpha_bar(t) broadcast to the image's shape, so
the training loss (on the float64 schedule) and the exported wrapper (on a float32 table, as ONNX
runs it) share the maths. With sigma^2 = (1 - ab) / ab and x = x_t / sqrt(ab) = x_0 + sigma eps:

- "epsilon" (Ho et al. 2020, the seed): the network sees x_t and predicts eps.
- "v" (Salimans and Ho 2022): it sees x_t and predicts v = sqrt(ab) eps - sqrt(1 - ab) x_0;
  eps = sqrt(ab) v + sqrt(1 - ab) x_t.
- "edm" (Karras et al. 2022, table 1, with sigma_data): it sees c_in x and predicts F, with
  D = c_skip x + c_out F the denoised image; c_in = 1/sqrt(sigma^2 + sd^2), c_skip = sd^2/(sigma^2 + sd^2),
  c_out = sigma sd/sqrt(sigma^2 + sd^2); eps = (x - D)/sigma = x sigma/(sigma^2 + sd^2) - F sd/sqrt(sigma^2 + sd^2),
  finite at sigma -> 0. The network keeps the seed's time input t (EDM's c_noise is a function of it).
  With sd = 1 it is "v" with the output's sign flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PREDICTIONS = ("epsilon", "v", "edm")


@dataclass(frozen=True)
class Parameterisation:
    kind: str = "epsilon"
    sigma_data: float = 0.5  # "edm" only: the data's standard deviation (EDM's default)

    def __post_init__(self) -> None:
        if self.kind not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.kind!r} (choose from {', '.join(PREDICTIONS)})")
        if not self.sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {self.sigma_data}")

    def network_input(self, x_t: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        if self.kind != "edm":
            return x_t
        sigma2 = (1.0 - ab) / ab
        return x_t * torch.rsqrt(ab * (sigma2 + self.sigma_data**2))  # c_in x, x = x_t / sqrt(ab)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """What the network should output for these x_0 and noise."""
        if self.kind == "epsilon":
            return noise
        if self.kind == "v":
            return ab.sqrt() * noise - (1.0 - ab).sqrt() * x0
        # (x_0 - c_skip x) / c_out, written without its cancellation at small sigma
        sigma2 = (1.0 - ab) / ab
        scale = torch.rsqrt(sigma2 + self.sigma_data**2) / self.sigma_data
        return (sigma2.sqrt() * x0 - self.sigma_data**2 * noise) * scale

    def eps(self, output: torch.Tensor, x_t: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The predicted noise from the network's output."""
        if self.kind == "epsilon":
            return output
        if self.kind == "v":
            return ab.sqrt() * output + (1.0 - ab).sqrt() * x_t
        sd2 = self.sigma_data**2
        sigma2 = (1.0 - ab) / ab
        x = x_t * torch.rsqrt(ab)
        return x * (sigma2.sqrt() / (sigma2 + sd2)) - output * (self.sigma_data * torch.rsqrt(sigma2 + sd2))

    def x0_error_scale(self, ab: torch.Tensor) -> torch.Tensor:
        """s with x_0_hat - x_0 = s (output - target) up to sign, for loss weights defined on x_0."""
        sigma2 = (1.0 - ab) / ab
        if self.kind == "epsilon":
            return sigma2.sqrt()
        if self.kind == "v":
            return (1.0 - ab).sqrt()
        return (sigma2.sqrt() * self.sigma_data) * torch.rsqrt(sigma2 + self.sigma_data**2)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sigma_data": self.sigma_data} if self.kind == "edm" else {"kind": self.kind}


class EpsNetwork(nn.Module):
    """network(x_t, t[, y]) in any parameterisation -> eps(x_t, t[, y]), the model contract's output.

    alpha_bar at (fractional) t comes from the schedule's float32 log(alpha_bar) table, interpolated
    linearly between integers as ``NoiseSchedule.alpha_bar_at`` does, in ops ONNX and TorchScript take.
    """

    def __init__(self, network: nn.Module, parameterisation: Parameterisation, alpha_bars: np.ndarray):
        super().__init__()
        self.network = network
        self.parameterisation = parameterisation
        self.register_buffer("log_alpha_bars", torch.tensor(np.log(alpha_bars), dtype=torch.float32))

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        last = self.log_alpha_bars.shape[0] - 1
        t = t.float().clamp(0.0, float(last))
        low = t.floor().clamp(max=last - 1)
        index = low.long()
        table = self.log_alpha_bars
        log_ab = table[index] + (t - low) * (table[index + 1] - table[index])
        return log_ab.exp()

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        ab = self.alpha_bar(t)[:, None, None, None]
        inputs = self.parameterisation.network_input(x, ab)
        output = self.network(inputs, t) if y is None else self.network(inputs, t, y)
        return self.parameterisation.eps(output.float(), x, ab)


def eps_network(network: nn.Module, parameterisation: Parameterisation, alpha_bars: np.ndarray) -> nn.Module:
    """The model that outputs eps: the network itself for "epsilon" (the seed's), else the wrapper."""
    if parameterisation.kind == "epsilon":
        return network
    # The alpha_bar table goes where the network's weights are (a network on CUDA indexed a CPU table).
    device = next(network.parameters()).device
    return EpsNetwork(network, parameterisation, alpha_bars).to(device).train(network.training)
