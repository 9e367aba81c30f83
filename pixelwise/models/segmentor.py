"""The segmentation model: encoder -> decoder -> logits at input size.

Pure module, no training logic (as in timm). It pads any input to a multiple of the network
stride and crops the logits back, so every image size works.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.encoder import TimmEncoder


class SegmentationModel(nn.Module):
    def __init__(self, encoder: TimmEncoder, decoder: nn.Module, num_classes: int,
                 spec: dict[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.num_classes = num_classes
        # How to rebuild this model: stored in checkpoints and export metadata.
        self.spec: dict[str, Any] = dict(spec or {})
        self.mean: tuple[float, ...] = (0.485, 0.456, 0.406)
        self.std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @property
    def stride(self) -> int:
        return self.encoder.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW float input of any size -> NxCxHxW logits of the same size."""
        h, w = x.shape[-2:]
        s = self.stride
        ph, pw = (s - h % s) % s, (s - w % s) % s
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        logits = self.decoder(self.encoder(x))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if ph or pw:
            logits = logits[..., :h, :w]
        return logits
