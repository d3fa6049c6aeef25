"""Torch references of the sampler equations, written independently of the NumPy code, for parity tests.

DDPM's reference is the seed's own DiffusionReverseProcess (tests/reference/seed_reference.py); this file adds
the seed's reverse process as a class plus DDIM and DPM-Solver++(2M) steps in torch (float64).
"""

from __future__ import annotations

import torch


class SeedReverseProcess:
    """The seed's DiffusionReverseProcess.sample_prev_timestep, with the noise z passed in."""

    def __init__(self, num_time_steps=1000, beta_start=1e-4, beta_end=0.02, dtype=torch.float64):
        self.b = torch.linspace(beta_start, beta_end, num_time_steps, dtype=dtype)
        self.a = 1 - self.b
        self.a_bar = torch.cumprod(self.a, dim=0)

    def sample_prev_timestep(self, xt, noise_pred, t, z):
        x0 = xt - (torch.sqrt(1 - self.a_bar[t]) * noise_pred)
        x0 = x0 / torch.sqrt(self.a_bar[t])
        x0 = torch.clamp(x0, -1.0, 1.0)
        mean = xt - ((1 - self.a[t]) * noise_pred) / torch.sqrt(1 - self.a_bar[t])
        mean = mean / torch.sqrt(self.a[t])
        if t == 0:
            return mean, x0
        variance = (1 - self.a_bar[t - 1]) / (1 - self.a_bar[t])
        variance = variance * self.b[t]
        sigma = variance**0.5
        return mean + sigma * z, x0


def ddpm_clipped_mean(xt, eps, a_bar_t, a_bar_prev):
    """Ho et al. eq. (7): mu~ = sqrt(ab_prev) beta / (1 - ab) x0 + sqrt(alpha) (1 - ab_prev) / (1 - ab) x_t."""
    alpha = a_bar_t / a_bar_prev
    x0 = ((xt - torch.sqrt(1 - a_bar_t) * eps) / torch.sqrt(a_bar_t)).clamp(-1, 1)
    return (a_bar_prev.sqrt() * (1 - alpha) * x0 + alpha.sqrt() * (1 - a_bar_prev) * xt) / (1 - a_bar_t)


def ddim_step(xt, eps, a_bar_t, a_bar_prev, eta, z):
    """Song et al. 2020, eq. (12) with sigma from eq. (16)."""
    x0 = (xt - torch.sqrt(1 - a_bar_t) * eps) / torch.sqrt(a_bar_t)
    sigma = eta * torch.sqrt((1 - a_bar_prev) / (1 - a_bar_t) * (1 - a_bar_t / a_bar_prev))
    return torch.sqrt(a_bar_prev) * x0 + torch.sqrt(1 - a_bar_prev - sigma**2) * eps + sigma * z


def dpm_solver_pp_2m_step(xs, x0_s, x0_prev, a_bar_s, a_bar_t, lambda_prev):
    """Lu et al. 2022, Algorithm 2, written with lambdas: x_t = sigma_t/sigma_s x_s + alpha_t (1 - e^-h) D."""
    alpha_s, sigma_s = a_bar_s.sqrt(), (1 - a_bar_s).sqrt()
    alpha_t, sigma_t = a_bar_t.sqrt(), (1 - a_bar_t).sqrt()
    lam_s, lam_t = torch.log(alpha_s) - torch.log(sigma_s), torch.log(alpha_t) - torch.log(sigma_t)
    h = lam_t - lam_s
    if x0_prev is None:
        d = x0_s
    else:
        r = (lam_s - lambda_prev) / h
        d = x0_s + (x0_s - x0_prev) / (2 * r)
    return sigma_t / sigma_s * xs + alpha_t * (1 - torch.exp(-h)) * d


def sample_ddim_torch(model, x_T, alpha_bars, timesteps):
    """Deterministic DDIM (eta 0) over descending timesteps, torch model, float32 model calls."""
    x = x_T.double()
    for i, t in enumerate(timesteps):
        t = int(t)
        prev = torch.tensor(1.0, dtype=torch.float64) if i + 1 == len(timesteps) else alpha_bars[int(timesteps[i + 1])]
        with torch.no_grad():
            eps = model(x.float(), torch.full((x.shape[0],), float(t))).double()
        x = ddim_step(x, eps, alpha_bars[t], prev, 0.0, torch.zeros_like(x))
    return x
