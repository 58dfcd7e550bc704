"""A model made for the benchmark: enough compute that the host pipeline's overhead has to
hide behind inference (issue 3's goal is set for a CNN of at least 1 GMAC at 256x256)."""

from __future__ import annotations

import torch
from torch import nn


class BenchCNN(nn.Module):
    """Stride-2 stem, two 3x3 convs at 64 channels on 128x128, 1x1 head, upsample back:
    (1, 3, 256, 256) -> (1, 3, 256, 256), about 1.24 GMAC."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1), nn.ReLU(),  # (1, 64, 128, 128)
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 3, 1), nn.Sigmoid(),  # (1, 3, 128, 128)
            nn.Upsample(scale_factor=2, mode="nearest"),  # (1, 3, 256, 256)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
