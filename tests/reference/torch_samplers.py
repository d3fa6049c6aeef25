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


def threshold_x0(x0, mode, percentile=0.995):
    """Bounding x_0: clamp, or Imagen's dynamic thresholding (Saharia et al. 2022, section 2.3)."""
    if mode == "none":
        return x0
    if mode == "clip":
        return x0.clamp(-1, 1)
    s = torch.quantile(x0.abs().reshape(x0.shape[0], -1), percentile, dim=1).clamp(min=1.0)[:, None, None, None]
    return torch.maximum(torch.minimum(x0, s), -s) / s


def ddim_step_bounded_x0(xt, eps, a_bar_t, a_bar_prev, eta, z, mode):
    """DDIM (eq. 12) written through x_0 alone: eps is replaced by the noise implied by the bounded x_0."""
    x0 = threshold_x0((xt - torch.sqrt(1 - a_bar_t) * eps) / torch.sqrt(a_bar_t), mode)
    sigma = eta * torch.sqrt((1 - a_bar_prev) / (1 - a_bar_t) * (1 - a_bar_t / a_bar_prev))
    implied_eps = (xt - torch.sqrt(a_bar_t) * x0) / torch.sqrt(1 - a_bar_t)
    return torch.sqrt(a_bar_prev) * x0 + torch.sqrt(1 - a_bar_prev - sigma**2) * implied_eps + sigma * z


def dpm_solver_pp_2m_sde_step_kdiffusion(x_vp, denoised, old_denoised, a_bar_s, a_bar_t, h_last, z):
    """k-diffusion's sample_dpmpp_2m_sde (eta 1, midpoint) in its own variables: x = x_vp / alpha,
    sigma = sqrt((1 - a_bar) / a_bar), t = -log(sigma); converted back to the VP scale at the end."""
    sigma_s, sigma_t = torch.sqrt((1 - a_bar_s) / a_bar_s), torch.sqrt((1 - a_bar_t) / a_bar_t)
    x = x_vp / torch.sqrt(a_bar_s)
    t, s = -torch.log(sigma_s), -torch.log(sigma_t)
    h = s - t
    eta_h = h
    x = sigma_t / sigma_s * torch.exp(-eta_h) * x + (-h - eta_h).expm1().neg() * denoised
    if old_denoised is not None:
        r = h_last / h
        x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
    x = x + z * sigma_t * (-2 * eta_h).expm1().neg().sqrt()
    return x * torch.sqrt(a_bar_t)


def classifier_free_guidance(model, x, t, y, null_class, w):
    """Ho and Salimans 2022, Algorithm 2: eps~ = (1 + w) eps(z, c) - w eps(z), two separate model calls."""
    with torch.no_grad():
        conditional = model(x, t, y).double()
        unconditional = model(x, t, torch.full_like(y, null_class)).double()
    return (1 + w) * conditional - w * unconditional


def dpm_solver_pp_multistep_torch(eps_fn, x_T, alpha_bars):
    """DPM-Solver++ multistep of order 3 as the reference code's ``sample(method="multistep", order=3,
    lower_order_final=True)`` runs it, with the last model call's data prediction as the final answer
    (``denoise_to_zero``): one model call at each of the N alpha_bars, the update of step k in
    1..N-1 of order min(3, k, N + 1 - k) (``multistep_dpm_solver_{first,second,third}_update``)."""
    a_bar = torch.as_tensor(alpha_bars, dtype=torch.float64)
    alpha, sigma = a_bar.sqrt(), (1 - a_bar).sqrt()
    lam = torch.log(alpha) - torch.log(sigma)
    n = len(a_bar)

    def data(x, i):
        eps = torch.as_tensor(eps_fn(x.float().numpy(), i), dtype=torch.float64)
        return (x - sigma[i] * eps) / alpha[i]

    x = torch.as_tensor(x_T, dtype=torch.float64)
    models = [data(x, 0)]
    for k in range(1, n):
        order = min(3, k, n + 1 - k)
        i, s = k, k - 1  # to call index i from the previous call s
        h = lam[i] - lam[s]
        phi_1 = torch.expm1(-h)
        if order == 1:
            x = sigma[i] / sigma[s] * x - alpha[i] * phi_1 * models[-1]
        elif order == 2:
            h_0 = lam[s] - lam[s - 1]
            r0 = h_0 / h
            d1 = (models[-1] - models[-2]) / r0
            x = sigma[i] / sigma[s] * x - alpha[i] * phi_1 * models[-1] - 0.5 * alpha[i] * phi_1 * d1
        else:
            h_0, h_1 = lam[s] - lam[s - 1], lam[s - 1] - lam[s - 2]
            r0, r1 = h_0 / h, h_1 / h
            d1_0 = (models[-1] - models[-2]) / r0
            d1_1 = (models[-2] - models[-3]) / r1
            d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_2 = phi_1 / h + 1.0
            phi_3 = phi_2 / h - 0.5
            x = sigma[i] / sigma[s] * x - alpha[i] * phi_1 * models[-1] + alpha[i] * phi_2 * d1 - alpha[i] * phi_3 * d2
        models.append(data(x, i))
    return models[-1]
