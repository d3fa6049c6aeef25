"""The headline feature network of `ddpm eval`: a VGG-style CNN with batch norm, trained with light
augmentation, which sees more of an image than the LeNet (docs/benchmarks/README.md says how accurate
each is on Fashion-MNIST). Its features are the globally pooled last convolution: 4 x width values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    channels: int = 1
    num_classes: int = 10
    width: int = 32  # channels of the first stage; the stages have width, 2 width, 4 width

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]


class FeatureCNN(nn.Module):
    """conv-conv-pool, conv-conv-pool, conv, global average pool: (B, C, H, W) -> (B, 4 width) features,
    then a linear classifier. Any image size (the pool is global)."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            *_conv(config.channels, w),
            *_conv(w, w),
            nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            *_conv(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 4w): the space FID and KID are measured in
        )
        self.classify = nn.Linear(4 * w, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
