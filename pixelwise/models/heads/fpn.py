"""Semantic FPN (Kirillov et al., 2019): a feature pyramid merged at stride 4. Every scale sees
the deep context and the fine detail, which small classes (poles, signs, people) need.

Widths: the paper's 256/128 are sized for a GPU. Here the stride-4 3x3 conv dominates the CPU
cost of the whole model (at 128/64 it was a third of the FLOPs and the slowest int8 layer), so
the default is 64 pyramid channels and 32 segmentation channels (64 when there are more than 32
classes, so the classifier never sees fewer features than a handful per class).

Upsampling uses constant scale factors (the ratios of the encoder's reductions) rather than the
target tensor's size. The model pads its input to the network stride, so both give the same
numbers, but in an exported graph ``size=`` becomes a Shape/Gather/Concat chain on every feature
map, and in an int8 graph each of those needed a full dequantized, transposed copy of the
tensor just to read its shape (about 10% of the int8 model's time at 384x480)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.blocks import ConvBNReLU


class FPNHead(nn.Module):
    def __init__(self, encoder_channels: list[int], num_classes: int, channels: int = 64,
                 seg_channels: int | None = None, dropout: float = 0.1, first_level: int = 1,
                 reductions: list[int] | None = None):
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
        # Upsampling factors from each level to the one above it and to the output level (None:
        # unknown reductions, or ratios that are not whole numbers: fall back to sizes).
        self.step_scales: list[int] | None = None
        self.out_scales: list[int] | None = None
        if reductions is not None:
            red = list(reductions)[first_level:]
            if all(b % a == 0 for a, b in zip(red, red[1:])):
                self.step_scales = [b // a for a, b in zip(red, red[1:])]
                self.out_scales = [r // red[0] for r in red]

    @staticmethod
    def _up(x: torch.Tensor, scale: int | None, like: torch.Tensor, mode: str) -> torch.Tensor:
        if scale == 1:
            return x
        extra = {} if mode == "nearest" else {"align_corners": False}
        if scale is None:
            return F.interpolate(x, size=like.shape[2:], mode=mode, **extra)
        return F.interpolate(x, scale_factor=float(scale), mode=mode, **extra)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[self.first_level:]
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        steps, outs = self.step_scales, self.out_scales
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            laterals[i - 1] = laterals[i - 1] + self._up(laterals[i], steps[i - 1] if steps else None,
                                                         laterals[i - 1], "nearest")
        out = None
        for i, (sm, lat) in enumerate(zip(self.smooth, laterals)):
            y = sm(lat)
            if outs is not None:
                y = self._up(y, outs[i], laterals[0], "bilinear")
            elif y.shape[2:] != laterals[0].shape[2:]:
                y = self._up(y, None, laterals[0], "bilinear")
            out = y if out is None else out + y
        return self.classifier(self.dropout(out))
