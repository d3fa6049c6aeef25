"""The feature network of "Fréchet LeNet Distance": a small LeNet-style classifier trained on the
labelled training data. Inception weights cannot be downloaded here and fit grey 28x28 images badly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 128


@dataclass(frozen=True)
class LeNetConfig:
    channels: int = 1
    num_classes: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


class LeNet(nn.Module):
    """conv5-pool-conv5-pool (LeNet-5's layout, wider), then a 128-d feature layer and the classifier."""

    def __init__(self, config: LeNetConfig):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(config.channels, 16, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.pool = nn.AdaptiveAvgPool2d(4)  # any image size -> (32, 4, 4)
        self.fc = nn.Linear(32 * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 16, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 32, ., .)
        return F.relu(self.fc(self.pool(x).flatten(1)))  # (B, 128): the space FID is measured in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
