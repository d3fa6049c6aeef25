"""Exponential moving average of model weights, the weights that sampling and export use."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema <- d * ema + (1 - d) * param after each optimiser step.

    d = min(decay, (1 + step) / (10 + step)): the warm-up of TensorFlow's ExponentialMovingAverage
    with num_updates, so early averages are not dominated by the random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, weight)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)
