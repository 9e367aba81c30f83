"""Small building blocks shared by the decoder heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, dilation: int = 1, groups: int = 1):
        pad = dilation * (k - 1) // 2
        super().__init__(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise + pointwise: a 3x3 conv at a fraction of the FLOPs (DeepLabV3+'s choice)."""

    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def default_seg_channels(num_classes: int) -> int:
    """Width of the pyramid heads' segmentation features: 32, or 64 past 32 classes so the
    classifier never sees fewer features than a handful per class."""
    return 32 if num_classes <= 32 else 64


def level_scales(reductions: list[int] | None, first_level: int) -> list[int] | None:
    """Each encoder level's reduction relative to ``first_level`` (e.g. strides 4, 8, 16, 32 ->
    1, 2, 4, 8), or None when unknown or when a ratio between levels is not a whole number."""
    if reductions is None:
        return None
    red = list(reductions)[first_level:]
    if not all(b % a == 0 for a, b in zip(red, red[1:])):
        return None
    return [r // red[0] for r in red]


def upsample(x: torch.Tensor, factor: int | None, like: torch.Tensor, mode: str) -> torch.Tensor:
    """Upsample by a constant whole ``factor``, or (None) to ``like``'s size.

    Why constant factors: the models pad their input to the network stride, so both give the
    same numbers, but in an exported graph a size becomes a Shape/Gather/Concat chain on the
    feature map, and in an int8 graph each of those needed a full dequantized, transposed copy
    of the tensor just to read its shape (about 10% of the int8 model's time at 384x480)."""
    extra = {} if mode == "nearest" else {"align_corners": False}
    if factor is None:
        if x.shape[2:] == like.shape[2:]:
            return x
        return F.interpolate(x, size=like.shape[2:], mode=mode, **extra)
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode=mode, **extra)
