"""Encoders come from timm (``features_only``): any of its ~1000 backbones can feed any head."""
from __future__ import annotations

import timm
import torch
from torch import nn

from pixelwise.errors import ModelError


class TimmEncoder(nn.Module):
    """A timm backbone returning its multi-scale feature maps (strides 2, 4, 8, 16, 32), NCHW.

    Level ``i`` of ``out_indices`` is the feature map at stride 2**(i+1). Hierarchical backbones
    whose pyramid starts at stride 4 (ConvNeXt, Swin, ...) have no stride-2 map: that level is
    ``None`` with 0 channels (U-Net then has no stride-2 skip; the other heads never read it),
    and the levels are matched by stride. Backbones that give channels-last maps (Swin) are
    transposed to NCHW."""

    def __init__(self, name: str, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4), **kwargs):
        super().__init__()
        self.name = name
        self.pick: list[int | None] | None = None  # model level behind each requested one
        try:
            try:
                self.model = timm.create_model(name, features_only=True, out_indices=out_indices,
                                               pretrained=False, **kwargs)
            except IndexError:  # fewer levels than asked for: match them by stride instead
                self.model = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
                self.pick = _levels_by_stride(name, list(self.model.feature_info.reduction()), out_indices)
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise ModelError(f"Unknown or unsupported timm encoder '{name}' ({exc}).",
                             fix="pick a name from timm.list_models(), e.g. efficientnet_lite0, "
                                 "resnet18, convnext_tiny") from None
        info = self.model.feature_info
        channels, reductions = list(info.channels()), list(info.reduction())
        if self.pick is not None:
            channels = [channels[j] if j is not None else 0 for j in self.pick]
            reductions = [reductions[j] if j is not None else 2 ** (i + 1) for i, j in zip(out_indices, self.pick)]
        self.channels: list[int] = channels
        self.reductions: list[int] = reductions
        self.nhwc = str(getattr(self.model, "output_fmt", "NCHW")).endswith("NHWC")

    @property
    def stride(self) -> int:
        return max(self.reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        feats = self.model(x)
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        if self.pick is None:
            return feats
        return [feats[j] if j is not None else None for j in self.pick]

    def pretrained_cfg(self) -> dict:
        return dict(getattr(self.model, "pretrained_cfg", {}) or {})


def _levels_by_stride(name: str, reductions: list[int], out_indices: tuple[int, ...]) -> list[int | None]:
    """For each requested level (stride 2**(i+1)), the backbone level with that stride; only the
    stride-2 level may be missing."""
    pick: list[int | None] = []
    for i in out_indices:
        stride = 2 ** (i + 1)
        if stride in reductions:
            pick.append(reductions.index(stride))
        elif stride == 2:
            pick.append(None)
        else:
            raise ModelError(f"Encoder '{name}' gives feature maps at strides {reductions}; pixelwise's "
                             f"heads need a pyramid at strides 4, 8, 16 and 32 (stride {stride} is missing).",
                             fix="pick a hierarchical encoder, e.g. efficientnet_lite0, resnet18, convnext_tiny")
    return pick
