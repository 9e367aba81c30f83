"""DeepLabV3+ (Chen et al., 2018): ASPP on the deepest feature for context, fused with a stride-4
feature for boundaries; separable convolutions keep it cheap on a CPU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.blocks import ConvBNReLU, SeparableConvBNReLU


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(cin, cout, 1)] +
                                      [SeparableConvBNReLU(cin, cout, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                                  nn.ReLU(inplace=True))
        self.project = nn.Sequential(ConvBNReLU(cout * (len(rates) + 2), cout, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        pooled = self.pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        return self.project(torch.cat(outs + [pooled], dim=1))


class DeepLabV3PlusHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 128,
                 low_level_channels: int = 48, rates: tuple[int, ...] = (2, 4, 6), low_level_index: int = 1):
        super().__init__()
        self.low_level_index = low_level_index
        self.aspp = ASPP(encoder_channels[-1], channels, rates)
        self.low = ConvBNReLU(encoder_channels[low_level_index], low_level_channels, 1)
        self.fuse = nn.Sequential(SeparableConvBNReLU(channels + low_level_channels, channels),
                                  SeparableConvBNReLU(channels, channels))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low = self.low(features[self.low_level_index])
        x = self.aspp(features[-1])
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([x, low], dim=1)))
