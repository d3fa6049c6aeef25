"""Wrap a torch eps-model as the NumPy callable the runtime's samplers take."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def numpy_eps_model(model: nn.Module, device: torch.device | str | None = None):
    """``f(x, t[, y])`` on float32 NumPy arrays (B, C, H, W) and (B,) (and int64 (B,) class labels for a
    class-conditional model) -> predicted noise as float32 NumPy. The inputs go to ``device``, by default
    the one the model's weights are on."""
    device = next(model.parameters()).device if device is None else torch.device(device)

    @torch.no_grad()
    def eps_model(x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        t_t = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).to(device)
        if y is None:
            return model(x_t, t_t).float().cpu().numpy()
        y_t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)
        return model(x_t, t_t, y_t).float().cpu().numpy()

    return eps_model
