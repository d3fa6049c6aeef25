"""The float64 schedule and the forward process against the seed's float32 torch code."""

from __future__ import annotations

import numpy as np
import torch

from ddpm_runtime.schedule import NoiseSchedule
from ddpm_training.diffusion.forward import ForwardProcess

from reference import seed_reference as seed


def test_linear_schedule_matches_the_seed():
    ours = NoiseSchedule.from_config()
    reference = seed.DiffusionForwardProcess()
    # The seed computes in float32; 1e-6 relative is float32's precision over a 1000-term product.
    np.testing.assert_allclose(ours.betas, reference.betas.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.alpha_bars, reference.alpha_bars.double().numpy(), rtol=2e-5)
    assert ours.betas.dtype == np.float64
    assert ours.betas[0] == 1e-4 and ours.betas[-1] == 0.02


def test_forward_process_matches_the_seed():
    schedule = NoiseSchedule.from_config()
    x0, noise = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    ours = ForwardProcess(schedule).add_noise(x0, noise, t)
    torch.testing.assert_close(ours, seed.DiffusionForwardProcess().add_noise(x0, noise, t), rtol=1e-5, atol=1e-5)
