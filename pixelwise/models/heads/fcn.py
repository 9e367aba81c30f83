"""FCN (Long et al., 2015) head: a 3x3 conv on the deepest feature, upsampled to the input."""
from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.blocks import ConvBNReLU


class FCNHead(nn.Module):
    output_stride_index = -1  # logits come at the deepest feature's stride

    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 256,
                 dropout: float = 0.1):
        super().__init__()
        self.block = ConvBNReLU(encoder_channels[-1], channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.block(features[-1])))
