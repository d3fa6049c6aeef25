"""The benchmarks' baseline: the seed's U-Net as the seed runs it.

Our ``Unet`` has the seed's modules and parameters (tests/training/test_model.py loads its weights into
the seed's own code and compares outputs and gradients). The one place where the seed's code runs
differently is attention: the seed calls ``nn.MultiheadAttention`` as ``attn(x, x, x)`` with
``need_weights`` left at True, which builds and averages the (B, heads, L, L) weights; we call
``scaled_dot_product_attention``. ``seed_style_unet`` puts the seed's call back into every attention
block, so the baseline pays what the seed pays.
"""

from __future__ import annotations

import torch
from torch import nn

from ddpm_training.model.config import UNetConfig
from ddpm_training.model.layers import SelfAttentionBlock
from ddpm_training.model.unet import Unet


class SeedCalledAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention(C, heads, batch_first=True)`` called as the seed calls it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        out, _ = super().forward(x, x, x)  # need_weights=True, the default the seed keeps
        return out


def seed_style_unet(config: UNetConfig) -> Unet:
    model = Unet(config)
    for block in model.modules():
        if isinstance(block, SelfAttentionBlock):
            seed_attention = SeedCalledAttention(block.attn.embed_dim, block.attn.num_heads, batch_first=True)
            seed_attention.load_state_dict(block.attn.state_dict())  # same names and shapes
            block.attn = seed_attention
    return model


def seed_add_noise(alpha_bars: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The seed's DiffusionForwardProcess.add_noise, on its float32 alpha_bar table."""
    scale_x0 = torch.sqrt(alpha_bars)[t][:, None, None, None]
    scale_noise = torch.sqrt(1 - alpha_bars)[t][:, None, None, None]
    return scale_x0 * x0 + scale_noise * noise
