"""The seed's U-Net: DownC, MidC, UpC blocks and the Unet that predicts the noise eps(x_t, t)."""

from __future__ import annotations

import torch
from torch import nn

from .config import UNetConfig
from .layers import Downsample, NormActConv, SelfAttentionBlock, TimeEmbedding, Upsample, get_time_embedding


class _ResAttnStack(nn.Module):
    """The module lists DownC, MidC and UpC share, under the seed's attribute names (state_dict keys):
    conv1/te_block/conv2/res_block form ResNet block i (the seed's "conv1 + te + conv2" with a 1x1
    residual conv); attn_block[i] is a self-attention block."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        t_emb_dim: int,
        num_resnets: int,
        num_attn: int,
        num_groups: int,
        num_heads: int,
    ):
        super().__init__()
        widths_in = [in_channels] + [out_channels] * (num_resnets - 1)
        self.conv1 = nn.ModuleList([NormActConv(c, out_channels, num_groups) for c in widths_in])
        self.conv2 = nn.ModuleList([NormActConv(out_channels, out_channels, num_groups) for _ in widths_in])
        self.te_block = nn.ModuleList([TimeEmbedding(out_channels, t_emb_dim) for _ in widths_in])
        self.attn_block = nn.ModuleList(
            [SelfAttentionBlock(out_channels, num_groups, num_heads) for _ in range(num_attn)]
        )
        self.res_block = nn.ModuleList([nn.Conv2d(c, out_channels, kernel_size=1) for c in widths_in])

    def _resnet(self, i: int, out: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        resnet_input = out
        out = self.conv1[i](out)
        out = out + self.te_block[i](t_emb)[:, :, None, None]  # (B, C) broadcast over H, W
        out = self.conv2[i](out)
        return out + self.res_block[i](resnet_input)

    def _attention(self, i: int, out: torch.Tensor) -> torch.Tensor:
        if not self.attn_block:  # a block below the config's attention_max_size has none
            return out
        return out + self.attn_block[i](out)


class DownC(_ResAttnStack):
    """num_layers x (ResNet block with time embedding, then + self-attention), then downsample."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        t_emb_dim: int = 128,
        num_layers: int = 2,
        down_sample: bool = True,
        num_groups: int = 8,
        num_heads: int = 4,
        attention: bool = True,
    ):
        num_attn = num_layers if attention else 0
        super().__init__(in_channels, out_channels, t_emb_dim, num_layers, num_attn, num_groups, num_heads)
        self.num_layers = num_layers
        self.down_block = Downsample(out_channels, out_channels) if down_sample else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(self.num_layers):
            out = self._attention(i, self._resnet(i, out, t_emb))
        # The line the printed seed code misses (see shared/seeds/README.md): without it nothing
        # downsamples and the decoder's concatenations fail. The post's diagram ("attn + dspl") and
        # results show it belongs here, after the layer loop.
        return self.down_block(out)


class MidC(_ResAttnStack):
    """A ResNet block with time embedding, then num_layers x (self-attention + ResNet block)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        t_emb_dim: int = 128,
        num_layers: int = 2,
        num_groups: int = 8,
        num_heads: int = 4,
        attention: bool = True,
    ):
        num_attn = num_layers if attention else 0
        super().__init__(in_channels, out_channels, t_emb_dim, num_layers + 1, num_attn, num_groups, num_heads)
        self.num_layers = num_layers

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        out = self._resnet(0, x, t_emb)
        for i in range(self.num_layers):
            out = self._resnet(i + 1, self._attention(i, out), t_emb)
        return out


class UpC(_ResAttnStack):
    """Upsample, concatenate the encoder's skip, then num_layers x (ResNet block + self-attention)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        t_emb_dim: int = 128,
        num_layers: int = 2,
        up_sample: bool = True,
        num_groups: int = 8,
        num_heads: int = 4,
        attention: bool = True,
    ):
        num_attn = num_layers if attention else 0
        super().__init__(in_channels, out_channels, t_emb_dim, num_layers, num_attn, num_groups, num_heads)
        self.num_layers = num_layers
        self.up_block = Upsample(in_channels, in_channels // 2) if up_sample else nn.Identity()

    def forward(self, x: torch.Tensor, down_out: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.up_block(x), down_out], dim=1)  # (B, C_up + C_skip, H, W)
        for i in range(self.num_layers):
            out = self._attention(i, self._resnet(i, out, t_emb))
        return out


class Unet(nn.Module):
    """eps_theta(x_t, t[, y]): (B, C, H, W) noisy images, (B,) timesteps and, for a class-conditional
    config, (B,) class labels -> (B, C, H, W) predicted noise."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or UNetConfig()
        groups, heads, t_dim = cfg.num_groups, cfg.num_heads, cfg.t_emb_dim
        up_sample = list(reversed(cfg.down_sample))
        down_sizes, mid_size, up_sizes = cfg.block_sizes()

        self.cv1 = nn.Conv2d(cfg.im_channels, cfg.down_ch[0], kernel_size=3, padding=1)
        self.t_proj = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.downs = nn.ModuleList(
            DownC(
                cfg.down_ch[i],
                cfg.down_ch[i + 1],
                t_dim,
                cfg.num_downc_layers,
                cfg.down_sample[i],
                groups,
                heads,
                cfg.attends(down_sizes[i]),
            )
            for i in range(len(cfg.down_ch) - 1)
        )
        self.mids = nn.ModuleList(
            MidC(cfg.mid_ch[i], cfg.mid_ch[i + 1], t_dim, cfg.num_midc_layers, groups, heads, cfg.attends(mid_size))
            for i in range(len(cfg.mid_ch) - 1)
        )
        self.ups = nn.ModuleList(
            UpC(
                cfg.up_ch[i],
                cfg.up_ch[i + 1],
                t_dim,
                cfg.num_upc_layers,
                up_sample[i],
                groups,
                heads,
                cfg.attends(up_sizes[i]),
            )
            for i in range(len(cfg.up_ch) - 1)
        )
        self.cv2 = nn.Sequential(
            nn.GroupNorm(groups, cfg.up_ch[-1]),
            nn.Conv2d(cfg.up_ch[-1], cfg.im_channels, kernel_size=3, padding=1),
        )
        if cfg.num_classes:
            # Created last, so the other weights get the same initial values as the unconditional model's.
            # K classes + the "no class" row (index K), added to the time embedding as improved-diffusion's
            # label_emb and diffusers' class_embedding do.
            self.class_emb = nn.Embedding(cfg.num_classes + 1, t_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``y``: (B,) int64 class per row, ``config.null_class`` for "no class"; only for conditional models
        (None there means "no class" for every row)."""
        out = self.cv1(x)  # (B, down_ch[0], H, W)
        t_emb = self.t_proj(get_time_embedding(t, self.config.t_emb_dim))  # (B, t_emb_dim)
        if self.config.num_classes:
            if y is None:
                y = torch.full((x.shape[0],), self.config.num_classes, dtype=torch.long, device=x.device)
            t_emb = t_emb + self.class_emb(y)  # (B, t_emb_dim)
        elif y is not None:
            raise ValueError("this U-Net is unconditional (num_classes=0); it takes no class labels y")
        down_outs = []
        for down in self.downs:
            down_outs.append(out)
            out = down(out, t_emb)
        for mid in self.mids:
            out = mid(out, t_emb)
        for up in self.ups:
            out = up(out, down_outs.pop(), t_emb)
        return self.cv2(out)  # (B, C, H, W)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
