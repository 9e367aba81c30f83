"""Encoders come from timm (``features_only``): any of its ~1000 backbones can feed any head."""
from __future__ import annotations

import timm
import torch
from torch import nn

from pixelwise.errors import ModelError


class TimmEncoder(nn.Module):
    """A timm backbone returning its multi-scale feature maps (strides 2, 4, 8, 16, 32)."""

    def __init__(self, name: str, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4), **kwargs):
        super().__init__()
        try:
            self.model = timm.create_model(name, features_only=True, out_indices=out_indices,
                                           pretrained=False, **kwargs)
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise ModelError(f"Unknown or unsupported timm encoder '{name}' ({exc}).",
                             fix="pick a name from timm.list_models(), e.g. efficientnet_lite0, "
                                 "resnet18, convnext_tiny") from None
        self.name = name
        info = self.model.feature_info
        self.channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())

    @property
    def stride(self) -> int:
        return max(self.reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)

    def pretrained_cfg(self) -> dict:
        return dict(getattr(self.model, "pretrained_cfg", {}) or {})
