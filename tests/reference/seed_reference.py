"""The seed's code (shared/seeds/000_dc0b172efa6ebbab.txt), transcribed as the reference for the
tests. Kept deliberately as the seed wrote it: nn.MultiheadAttention
called with its default need_weights=True, the seed's forward process, its reverse step.

``fixed=True`` adds the one line the printed seed misses (DownC calls its down_block).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class DiffusionForwardProcess:
    def __init__(self, num_time_steps=1000, beta_start=1e-4, beta_end=0.02):
        self.betas = torch.linspace(beta_start, beta_end, num_time_steps)
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.sqrt_alpha_bars = torch.sqrt(self.alpha_bars)
        self.sqrt_one_minus_alpha_bars = torch.sqrt(1 - self.alpha_bars)

    def add_noise(self, original, noise, t):
        sqrt_alpha_bar_t = self.sqrt_alpha_bars.to(original.device)[t][:, None, None, None]
        sqrt_one_minus_alpha_bar_t = self.sqrt_one_minus_alpha_bars.to(original.device)[t][:, None, None, None]
        return (sqrt_alpha_bar_t * original) + (sqrt_one_minus_alpha_bar_t * noise)


def get_time_embedding(time_steps, t_emb_dim):
    assert t_emb_dim % 2 == 0
    factor = 2 * torch.arange(start=0, end=t_emb_dim // 2, dtype=torch.float32, device=time_steps.device) / t_emb_dim
    factor = 10000**factor
    t_emb = time_steps[:, None]
    t_emb = t_emb / factor
    return torch.cat([torch.sin(t_emb), torch.cos(t_emb)], dim=1)


class NormActConv(nn.Module):
    def __init__(self, in_channels, out_channels, num_groups=8, kernel_size=3, norm=True, act=True):
        super().__init__()
        self.g_norm = nn.GroupNorm(num_groups, in_channels) if norm is True else nn.Identity()
        self.act = nn.SiLU() if act is True else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x):
        return self.conv(self.act(self.g_norm(x)))


class TimeEmbedding(nn.Module):
    def __init__(self, n_out, t_emb_dim=128):
        super().__init__()
        self.te_block = nn.Sequential(nn.SiLU(), nn.Linear(t_emb_dim, n_out))

    def forward(self, x):
        return self.te_block(x)


class SelfAttentionBlock(nn.Module):
    def __init__(self, num_channels, num_groups=8, num_heads=4, norm=True):
        super().__init__()
        self.g_norm = nn.GroupNorm(num_groups, num_channels) if norm is True else nn.Identity()
        self.attn = nn.MultiheadAttention(num_channels, num_heads, batch_first=True)

    def forward(self, x):
        batch_size, channels, h, w = x.shape
        x = x.reshape(batch_size, channels, h * w)
        x = self.g_norm(x)
        x = x.transpose(1, 2)
        x, _ = self.attn(x, x, x)
        return x.transpose(1, 2).reshape(batch_size, channels, h, w)


class Downsample(nn.Module):
    def __init__(self, in_channels, out_channels, k=2, use_conv=True, use_mpool=True):
        super().__init__()
        self.use_conv, self.use_mpool = use_conv, use_mpool
        self.cv = (
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, kernel_size=1),
                nn.Conv2d(
                    in_channels, out_channels // 2 if use_mpool else out_channels, kernel_size=4, stride=k, padding=1
                ),
            )
            if use_conv
            else nn.Identity()
        )
        self.mpool = (
            nn.Sequential(
                nn.MaxPool2d(k, k),
                nn.Conv2d(
                    in_channels, out_channels // 2 if use_conv else out_channels, kernel_size=1, stride=1, padding=0
                ),
            )
            if use_mpool
            else nn.Identity()
        )

    def forward(self, x):
        if not self.use_conv:
            return self.mpool(x)
        if not self.use_mpool:
            return self.cv(x)
        return torch.cat([self.cv(x), self.mpool(x)], dim=1)


class Upsample(nn.Module):
    def __init__(self, in_channels, out_channels, k=2, use_conv=True, use_upsample=True):
        super().__init__()
        self.use_conv, self.use_upsample = use_conv, use_upsample
        half = out_channels // 2 if use_upsample else out_channels
        self.cv = (
            nn.Sequential(
                nn.ConvTranspose2d(in_channels, half, kernel_size=4, stride=k, padding=1),
                nn.Conv2d(half, half, kernel_size=1, stride=1, padding=0),
            )
            if use_conv
            else nn.Identity()
        )
        self.up = (
            nn.Sequential(
                nn.Upsample(scale_factor=k, mode="bilinear", align_corners=False),
                nn.Conv2d(
                    in_channels, out_channels // 2 if use_conv else out_channels, kernel_size=1, stride=1, padding=0
                ),
            )
            if use_upsample
            else nn.Identity()
        )

    def forward(self, x):
        if not self.use_conv:
            return self.up(x)
        if not self.use_upsample:
            return self.cv(x)
        return torch.cat([self.cv(x), self.up(x)], dim=1)


class DownC(nn.Module):
    def __init__(
        self, in_channels, out_channels, t_emb_dim=128, num_layers=2, down_sample=True, num_groups=8, fixed=True
    ):
        super().__init__()
        self.num_layers, self.fixed = num_layers, fixed
        g = num_groups
        self.conv1 = nn.ModuleList(
            [NormActConv(in_channels if i == 0 else out_channels, out_channels, g) for i in range(num_layers)]
        )
        self.conv2 = nn.ModuleList([NormActConv(out_channels, out_channels, g) for _ in range(num_layers)])
        self.te_block = nn.ModuleList([TimeEmbedding(out_channels, t_emb_dim) for _ in range(num_layers)])
        self.attn_block = nn.ModuleList([SelfAttentionBlock(out_channels, g) for _ in range(num_layers)])
        self.down_block = Downsample(out_channels, out_channels) if down_sample else nn.Identity()
        self.res_block = nn.ModuleList(
            [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=1) for i in range(num_layers)]
        )

    def forward(self, x, t_emb):
        out = x
        for i in range(self.num_layers):
            resnet_input = out
            out = self.conv1[i](out)
            out = out + self.te_block[i](t_emb)[:, :, None, None]
            out = self.conv2[i](out)
            out = out + self.res_block[i](resnet_input)
            out_attn = self.attn_block[i](out)
            out = out + out_attn
        if self.fixed:
            out = self.down_block(out)  # the line missing from the printed seed
        return out


class MidC(nn.Module):
    def __init__(self, in_channels, out_channels, t_emb_dim=128, num_layers=2, num_groups=8):
        super().__init__()
        self.num_layers = num_layers
        g = num_groups
        self.conv1 = nn.ModuleList(
            [NormActConv(in_channels if i == 0 else out_channels, out_channels, g) for i in range(num_layers + 1)]
        )
        self.conv2 = nn.ModuleList([NormActConv(out_channels, out_channels, g) for _ in range(num_layers + 1)])
        self.te_block = nn.ModuleList([TimeEmbedding(out_channels, t_emb_dim) for _ in range(num_layers + 1)])
        self.attn_block = nn.ModuleList([SelfAttentionBlock(out_channels, g) for _ in range(num_layers)])
        self.res_block = nn.ModuleList(
            [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=1)
                for i in range(num_layers + 1)
            ]
        )

    def forward(self, x, t_emb):
        out = x
        resnet_input = out
        out = self.conv1[0](out)
        out = out + self.te_block[0](t_emb)[:, :, None, None]
        out = self.conv2[0](out)
        out = out + self.res_block[0](resnet_input)
        for i in range(self.num_layers):
            out_attn = self.attn_block[i](out)
            out = out + out_attn
            resnet_input = out
            out = self.conv1[i + 1](out)
            out = out + self.te_block[i + 1](t_emb)[:, :, None, None]
            out = self.conv2[i + 1](out)
            out = out + self.res_block[i + 1](resnet_input)
        return out


class UpC(nn.Module):
    def __init__(self, in_channels, out_channels, t_emb_dim=128, num_layers=2, up_sample=True, num_groups=8):
        super().__init__()
        self.num_layers = num_layers
        g = num_groups
        self.conv1 = nn.ModuleList(
            [NormActConv(in_channels if i == 0 else out_channels, out_channels, g) for i in range(num_layers)]
        )
        self.conv2 = nn.ModuleList([NormActConv(out_channels, out_channels, g) for _ in range(num_layers)])
        self.te_block = nn.ModuleList([TimeEmbedding(out_channels, t_emb_dim) for _ in range(num_layers)])
        self.attn_block = nn.ModuleList([SelfAttentionBlock(out_channels, g) for _ in range(num_layers)])
        self.up_block = Upsample(in_channels, in_channels // 2) if up_sample else nn.Identity()
        self.res_block = nn.ModuleList(
            [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=1) for i in range(num_layers)]
        )

    def forward(self, x, down_out, t_emb):
        x = self.up_block(x)
        x = torch.cat([x, down_out], dim=1)
        out = x
        for i in range(self.num_layers):
            resnet_input = out
            out = self.conv1[i](out)
            out = out + self.te_block[i](t_emb)[:, :, None, None]
            out = self.conv2[i](out)
            out = out + self.res_block[i](resnet_input)
            out_attn = self.attn_block[i](out)
            out = out + out_attn
        return out


class Unet(nn.Module):
    """The seed's Unet; defaults are the reduced configuration the seed trains."""

    def __init__(
        self,
        im_channels=1,
        down_ch=(32, 64, 128),
        mid_ch=(128, 128),
        up_ch=(128, 64, 16),
        down_sample=(True, True),
        t_emb_dim=128,
        num_downc_layers=1,
        num_midc_layers=1,
        num_upc_layers=1,
        num_groups=8,
        fixed=True,
    ):
        super().__init__()
        self.t_emb_dim = t_emb_dim
        up_sample = list(reversed(down_sample))
        self.cv1 = nn.Conv2d(im_channels, down_ch[0], kernel_size=3, padding=1)
        self.t_proj = nn.Sequential(nn.Linear(t_emb_dim, t_emb_dim), nn.SiLU(), nn.Linear(t_emb_dim, t_emb_dim))
        self.downs = nn.ModuleList(
            [
                DownC(down_ch[i], down_ch[i + 1], t_emb_dim, num_downc_layers, down_sample[i], num_groups, fixed)
                for i in range(len(down_ch) - 1)
            ]
        )
        self.mids = nn.ModuleList(
            [MidC(mid_ch[i], mid_ch[i + 1], t_emb_dim, num_midc_layers, num_groups) for i in range(len(mid_ch) - 1)]
        )
        self.ups = nn.ModuleList(
            [
                UpC(up_ch[i], up_ch[i + 1], t_emb_dim, num_upc_layers, up_sample[i], num_groups)
                for i in range(len(up_ch) - 1)
            ]
        )
        self.cv2 = nn.Sequential(
            nn.GroupNorm(num_groups, up_ch[-1]), nn.Conv2d(up_ch[-1], im_channels, kernel_size=3, padding=1)
        )

    def forward(self, x, t):
        out = self.cv1(x)
        t_emb = get_time_embedding(t, self.t_emb_dim)
        t_emb = self.t_proj(t_emb)
        down_outs = []
        for down in self.downs:
            down_outs.append(out)
            out = down(out, t_emb)
        for mid in self.mids:
            out = mid(out, t_emb)
        for up in self.ups:
            down_out = down_outs.pop()
            out = up(out, down_out, t_emb)
        return self.cv2(out)


def seed_unet_from_config(config, fixed: bool = True) -> Unet:
    """The seed's Unet with the widths of one of our UNetConfigs (4 heads, as the seed hard-codes)."""
    return Unet(
        config.im_channels,
        config.down_ch,
        config.mid_ch,
        config.up_ch,
        config.down_sample,
        config.t_emb_dim,
        config.num_downc_layers,
        config.num_midc_layers,
        config.num_upc_layers,
        config.num_groups,
        fixed,
    )
