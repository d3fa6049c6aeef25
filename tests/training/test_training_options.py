"""Min-SNR-gamma loss weighting and the cosine learning rate, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.data import ImageData
from ddpm_training.diffusion.forward import ForwardProcess
from ddpm_training.diffusion.objective import diffusion_loss
from ddpm_training.model.config import preset
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.data_objective import data_trainer

SCHEDULE = NoiseSchedule.from_config()


def test_min_snr_weighting_is_hang_et_al_eq_for_eps():
    forward = ForwardProcess(SCHEDULE)
    torch.manual_seed(0)
    x0, noise = torch.rand(6, 1, 4, 4) * 2 - 1, torch.randn(6, 1, 4, 4)
    t = torch.tensor([0, 10, 100, 400, 800, 999])
    model = lambda x, t: 0.5 * x  # noqa: E731  any fixed prediction
    prediction = model(forward.add_noise(x0, noise, t), t)
    per_row = ((prediction - noise) ** 2).mean(dim=(1, 2, 3)).double()
    snr = torch.tensor(SCHEDULE.alpha_bars / (1 - SCHEDULE.alpha_bars))[t]
    expected = (per_row * torch.clamp(snr, max=5.0) / snr).mean()
    got = diffusion_loss(model, forward, x0, noise, t, weighting="min-snr", gamma=5.0)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # Where SNR <= gamma for every row the weights are 1: plain MSE.
    late = torch.tensor([500, 600, 700, 800, 900, 999])
    assert float(diffusion_loss(model, forward, x0, noise, late, weighting="min-snr", gamma=5.0)) == pytest.approx(
        float(diffusion_loss(model, forward, x0, noise, late)), rel=1e-6
    )


def test_cosine_learning_rate_follows_the_planned_run():
    data = ImageData(np.zeros((16, 12, 12, 1), np.uint8), None, "zeros")
    config = TrainConfig(batch_size=8, lr=1e-3, warmup_steps=4, lr_schedule="cosine", max_steps=100)
    trainer = data_trainer(preset("tiny").with_image(1, 12), ScheduleConfig(), config, data)
    assert trainer.lr_at(0) == pytest.approx(1e-3 / 4)  # warm-up first
    for progress, expected in ((0.0, 1e-3), (0.5, 0.5e-3), (0.25, 0.5e-3 * (1 + math.cos(math.pi / 4))), (1.0, 0.0)):
        trainer.progress = progress
        assert trainer.lr_at(50) == pytest.approx(expected, abs=1e-12)
    constant = data_trainer(
        preset("tiny").with_image(1, 12), ScheduleConfig(), TrainConfig(batch_size=8, lr=1e-3), data
    )
    constant.progress = 0.9
    assert constant.lr_at(50) == 1e-3
