"""FPN-Lite: the FPN's context pyramid merged at stride 8, stride-4 detail added cheaply.

Why (measured on a 2-core CPU, int8 through ONNX Runtime, 384x480, see BENCHMARKS.md): in the
Semantic FPN every level is upsampled to stride 4 and the top-down sum is smoothed there by a
dense 3x3 conv, so the decoder moved four full stride-4 tensors and ran its largest conv at
the highest resolution; it cost about a quarter of the whole int8 model. Here the pyramid
(strides 8, 16, 32) is smoothed and summed at stride 8, and the stride-4 encoder feature joins
through a 1x1 projection followed by one depthwise-separable 3x3 conv (DeepLabV3+'s way of
adding low-level detail), so the only stride-4 work is a few cheap layers.
"""
from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.blocks import (ConvBNReLU, SeparableConvBNReLU, default_seg_channels, level_scales,
                                      upsample)


class FPNLiteHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 64,
                 seg_channels: int | None = None, dropout: float = 0.1, fine_level: int = 1,
                 reductions: list[int] | None = None):
        super().__init__()
        seg_channels = seg_channels or default_seg_channels(num_classes)
        self.hparams = dict(channels=channels, seg_channels=seg_channels, dropout=dropout,
                            fine_level=fine_level)
        if len(encoder_channels) < fine_level + 2:
            raise ValueError("FPN-Lite needs at least two encoder levels from fine_level on")
        self.fine_level = fine_level
        deep = encoder_channels[fine_level + 1:]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in deep)
        self.smooth = nn.ModuleList(ConvBNReLU(channels, seg_channels) for _ in deep)
        self.fine_proj = ConvBNReLU(encoder_channels[fine_level], seg_channels, k=1)
        self.fuse = SeparableConvBNReLU(seg_channels, seg_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(seg_channels, num_classes, 1)
        self.scales = level_scales(reductions, fine_level)  # None: upsample to sizes

    def _up(self, x: torch.Tensor, level: int, to_level: int, like: torch.Tensor, mode: str) -> torch.Tensor:
        """Upsample level ``level`` (0 = the fine level) to ``to_level``."""
        return upsample(x, self.scales[level] // self.scales[to_level] if self.scales else None, like, mode)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        fine = features[self.fine_level]
        laterals = [lat(f) for lat, f in zip(self.lateral, features[self.fine_level + 1:])]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway, strides 32 -> 8
            laterals[i - 1] = laterals[i - 1] + self._up(laterals[i], i + 1, i, laterals[i - 1], "nearest")
        context = None
        for i, (sm, lat) in enumerate(zip(self.smooth, laterals)):
            y = self._up(sm(lat), i + 1, 1, laterals[0], "bilinear")
            context = y if context is None else context + y
        x = self.fine_proj(fine) + self._up(context, 1, 0, fine, "bilinear")
        return self.classifier(self.dropout(self.fuse(x)))
