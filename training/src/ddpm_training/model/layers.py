"""The seed's building blocks: NormActConv, TimeEmbedding, SelfAttentionBlock, Downsample, Upsample.

Module and parameter names are the seed's, so a state_dict of this model loads into the seed's code
(and the other way round). Only the attention's kernel differs: see ``MultiheadSelfAttention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def get_time_embedding(time_steps: torch.Tensor, t_emb_dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, t_emb_dim): sin half, then cos half, base 10000.

    The frequencies are 10000^(-2i/d) for i < d/2, exactly the seed's ``get_time_embedding``.
    Timesteps may be fractional.
    """
    if t_emb_dim % 2:
        raise ValueError("time embedding dimension must be even")
    exponent = 2 * torch.arange(t_emb_dim // 2, dtype=torch.float32, device=time_steps.device) / t_emb_dim
    factor = 10000**exponent  # (d/2,)
    t_emb = time_steps.to(torch.float32)[:, None] / factor  # (B, d/2)
    return torch.cat([torch.sin(t_emb), torch.cos(t_emb)], dim=1)  # (B, d)


class NormActConv(nn.Module):
    """GroupNorm -> SiLU -> Conv2d ('same' padding)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_groups: int = 8,
        kernel_size: int = 3,
        norm: bool = True,
        act: bool = True,
    ):
        super().__init__()
        self.g_norm = nn.GroupNorm(num_groups, in_channels) if norm else nn.Identity()
        self.act = nn.SiLU() if act else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.g_norm(x)))


class TimeEmbedding(nn.Module):
    """SiLU -> Linear: maps the shared time embedding to one block's width."""

    def __init__(self, n_out: int, t_emb_dim: int = 128):
        super().__init__()
        self.te_block = nn.Sequential(nn.SiLU(), nn.Linear(t_emb_dim, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.te_block(x)


class MultiheadSelfAttention(nn.Module):
    """Self-attention with exactly the parameters and maths of ``nn.MultiheadAttention(C, heads,
    batch_first=True)`` called as ``attn(x, x, x)``, computed with ``scaled_dot_product_attention``.

    Why not ``nn.MultiheadAttention`` itself: called as the seed calls it (need_weights defaults to
    True) it materialises and averages the (B, heads, L, L) weights, and at 28x28 (L = 784) that is
    most of the training time. The fused kernel never builds that tensor. tests/test_model.py proves
    equality with ``nn.MultiheadAttention`` on the same weights.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        # Same names, shapes and initialisation as nn.MultiheadAttention (state_dict compatible).
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape  # (B, L, C)
        head_dim = channels // self.num_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3C)
        qkv = qkv.view(batch, length, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, L, d)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, L, d), scale 1/sqrt(d)
        out = out.transpose(1, 2).reshape(batch, length, channels)  # (B, L, C)
        return self.out_proj(out)


class SelfAttentionBlock(nn.Module):
    """GroupNorm over (B, C, H*W), then 4-head self-attention over the H*W positions."""

    def __init__(self, num_channels: int, num_groups: int = 8, num_heads: int = 4, norm: bool = True):
        super().__init__()
        self.g_norm = nn.GroupNorm(num_groups, num_channels) if norm else nn.Identity()
        self.attn = MultiheadSelfAttention(num_channels, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, h, w = x.shape
        x = x.reshape(batch, channels, h * w)  # (B, C, L)
        x = self.g_norm(x)
        x = self.attn(x.transpose(1, 2))  # (B, L, C)
        return x.transpose(1, 2).reshape(batch, channels, h, w)  # (B, C, H, W)


class Downsample(nn.Module):
    """Halve H and W: strided 4x4 conv branch and max-pool branch, concatenated on channels."""

    def __init__(self, in_channels: int, out_channels: int, k: int = 2, use_conv: bool = True, use_mpool: bool = True):
        super().__init__()
        self.use_conv = use_conv
        self.use_mpool = use_mpool
        branch_out = out_channels // 2 if (use_conv and use_mpool) else out_channels
        self.cv = (
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, kernel_size=1),
                nn.Conv2d(in_channels, branch_out, kernel_size=4, stride=k, padding=1),
            )
            if use_conv
            else nn.Identity()
        )
        self.mpool = (
            nn.Sequential(nn.MaxPool2d(k, k), nn.Conv2d(in_channels, branch_out, kernel_size=1))
            if use_mpool
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_conv:
            return self.mpool(x)
        if not self.use_mpool:
            return self.cv(x)
        return torch.cat([self.cv(x), self.mpool(x)], dim=1)


class Upsample(nn.Module):
    """Double H and W: transposed-conv branch and bilinear branch, concatenated on channels."""

    def __init__(
        self, in_channels: int, out_channels: int, k: int = 2, use_conv: bool = True, use_upsample: bool = True
    ):
        super().__init__()
        self.use_conv = use_conv
        self.use_upsample = use_upsample
        branch_out = out_channels // 2 if (use_conv and use_upsample) else out_channels
        self.cv = (
            nn.Sequential(
                nn.ConvTranspose2d(in_channels, branch_out, kernel_size=4, stride=k, padding=1),
                nn.Conv2d(branch_out, branch_out, kernel_size=1),
            )
            if use_conv
            else nn.Identity()
        )
        self.up = (
            nn.Sequential(
                nn.Upsample(scale_factor=k, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, branch_out, kernel_size=1),
            )
            if use_upsample
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_conv:
            return self.up(x)
        if not self.use_upsample:
            return self.cv(x)
        return torch.cat([self.cv(x), self.up(x)], dim=1)
