"""U-Net (Ronneberger et al., 2015) decoder, as in segmentation_models_pytorch: upsample, concat
the skip feature of the same stride, two 3x3 convs; logits at full resolution."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.blocks import ConvBNReLU


class UNetBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv1 = ConvBNReLU(cin + cskip, cout)
        self.conv2 = ConvBNReLU(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int,
                 channels: tuple[int, ...] = (256, 128, 64, 32, 16)):
        super().__init__()
        skips = list(reversed(encoder_channels[:-1])) + [0] * (len(channels) - len(encoder_channels) + 1)
        skips = skips[: len(channels)]
        cins = [encoder_channels[-1]] + list(channels[:-1])
        self.blocks = nn.ModuleList(UNetBlock(ci, cs, co) for ci, cs, co in zip(cins, skips, channels))
        self.classifier = nn.Conv2d(channels[-1], num_classes, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = list(reversed(features[:-1]))
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return self.classifier(x)
