"""Semantic FPN (Kirillov et al., 2019): a feature pyramid merged at stride 4. Every scale sees
the deep context and the fine detail, which small classes (poles, signs, people) need.

Widths: the paper's 256/128 are sized for a GPU. Here the stride-4 3x3 conv dominates the CPU
cost of the whole model (at 128/64 it was a third of the FLOPs and the slowest int8 layer), so
the default is 64 pyramid channels and 32 segmentation channels (64 when there are more than 32
classes, so the classifier never sees fewer features than a handful per class)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.blocks import ConvBNReLU


class FPNHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 64,
                 seg_channels: int | None = None, dropout: float = 0.1, first_level: int = 1):
        super().__init__()
        seg_channels = seg_channels or (32 if num_classes <= 32 else 64)
        # Resolved widths, recorded in checkpoints so a later change of defaults cannot break them.
        self.hparams = dict(channels=channels, seg_channels=seg_channels, dropout=dropout,
                            first_level=first_level)
        self.first_level = first_level  # skip the stride-2 feature: stride-4 output is enough
        chans = encoder_channels[first_level:]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in chans)
        self.smooth = nn.ModuleList(ConvBNReLU(channels, seg_channels) for _ in chans)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(seg_channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[self.first_level:]
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        size = laterals[0].shape[2:]
        out = None
        for sm, lat in zip(self.smooth, laterals):
            y = sm(lat)
            if y.shape[2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return self.classifier(self.dropout(out))
