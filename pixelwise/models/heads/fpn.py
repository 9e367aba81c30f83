"""Semantic FPN (Kirillov et al., 2019): a feature pyramid merged at stride 4. Every scale sees
the deep context and the fine detail, which small classes (poles, signs, people) need.

Widths: the paper's 256/128 are sized for a GPU. Here the stride-4 3x3 conv dominates the CPU
cost of the whole model (at 128/64 it was a third of the FLOPs and the slowest int8 layer), so
the default is 64 pyramid channels and 32 segmentation channels (64 when there are more than 32
classes, so the classifier never sees fewer features than a handful per class).

Upsampling uses constant factors from the encoder's reductions (see ``blocks.upsample``)."""
from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.blocks import ConvBNReLU, default_seg_channels, level_scales, upsample


class FPNHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 64,
                 seg_channels: int | None = None, dropout: float = 0.1, first_level: int = 1,
                 reductions: list[int] | None = None):
        super().__init__()
        seg_channels = seg_channels or default_seg_channels(num_classes)
        # Resolved widths, recorded in checkpoints so a later change of defaults cannot break them.
        self.hparams = dict(channels=channels, seg_channels=seg_channels, dropout=dropout,
                            first_level=first_level)
        self.first_level = first_level  # skip the stride-2 feature: stride-4 output is enough
        chans = encoder_channels[first_level:]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in chans)
        self.smooth = nn.ModuleList(ConvBNReLU(channels, seg_channels) for _ in chans)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(seg_channels, num_classes, 1)
        self.scales = level_scales(reductions, first_level)  # None: upsample to sizes

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[self.first_level:]
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        sc = self.scales
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            step = sc[i] // sc[i - 1] if sc else None
            laterals[i - 1] = laterals[i - 1] + upsample(laterals[i], step, laterals[i - 1], "nearest")
        out = None
        for i, (sm, lat) in enumerate(zip(self.smooth, laterals)):
            y = upsample(sm(lat), sc[i] if sc else None, laterals[0], "bilinear")
            out = y if out is None else out + y
        return self.classifier(self.dropout(out))
