"""Small building blocks shared by the decoder heads."""
from __future__ import annotations

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
