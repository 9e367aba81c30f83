"""Architectures by name (timm-style ``create_model``): any decoder head on any timm encoder."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

if TYPE_CHECKING:
    from pixelwise.models.segmentor import SegmentationModel

from pixelwise.errors import ModelError


@dataclass(frozen=True)
class ArchInfo:
    name: str
    head: Callable[..., nn.Module]
    description: str
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)


_REGISTRY: dict[str, ArchInfo] = {}


def register_model(name: str, description: str, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)):
    """Decorator: register a head factory ``f(encoder_channels, num_classes, **kw) -> nn.Module``.

    A factory that declares a ``reductions`` parameter also gets the encoder's strides (so it can
    upsample by constant factors, which export to cleaner graphs than sizes read at run time)."""

    def wrap(factory: Callable[..., nn.Module]):
        _REGISTRY[name] = ArchInfo(name, factory, description, out_indices)
        return factory

    return wrap


def _register_builtin() -> None:
    from pixelwise.models.heads.deeplabv3plus import DeepLabV3PlusHead
    from pixelwise.models.heads.fcn import FCNHead
    from pixelwise.models.heads.fpn import FPNHead
    from pixelwise.models.heads.fpn_lite import FPNLiteHead
    from pixelwise.models.heads.unet import UNetHead

    register_model("fcn", "FCN: conv head on the deepest feature (Long et al. 2015)")(FCNHead)
    register_model("unet", "U-Net decoder with skips at every stride, SMP-style (Ronneberger et al. 2015)")(UNetHead)
    register_model("deeplabv3plus", "DeepLabV3+: separable ASPP + stride-4 fusion (Chen et al. 2018)")(DeepLabV3PlusHead)
    register_model("fpn", "Semantic FPN: pyramid merged at stride 4 (Kirillov et al. 2019)")(FPNHead)
    register_model("fpn_lite", "FPN context merged at stride 8 + cheap stride-4 detail (CPU deployment)")(FPNLiteHead)


_register_builtin()


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def arch_info(name: str) -> ArchInfo:
    if name not in _REGISTRY:
        raise ModelError(f"Unknown architecture '{name}'.",
                         fix=f"choose one of: {', '.join(list_models())} (see 'pixelwise models')")
    return _REGISTRY[name]


def create_model(arch: str = "fpn_lite", encoder: str = "efficientnet_lite0", num_classes: int = 2,
                 pretrained: str | Path | None = None, head_kwargs: dict[str, Any] | None = None,
                 encoder_kwargs: dict[str, Any] | None = None) -> "SegmentationModel":
    """Build ``arch`` on the timm ``encoder``; ``pretrained`` is None, 'offline', 'timm' or a path."""
    from pixelwise.models.encoder import TimmEncoder
    from pixelwise.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_encoder_weights
    from pixelwise.models.segmentor import SegmentationModel

    info = arch_info(arch)
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}.", fix="pass the class count")
    enc = TimmEncoder(encoder, out_indices=info.out_indices, **(encoder_kwargs or {}))
    extra = {"reductions": list(enc.reductions)} if _accepts(info.head, "reductions") else {}
    head = info.head(enc.channels, num_classes, **extra, **(head_kwargs or {}))
    spec = {"arch": arch, "encoder": encoder, "num_classes": num_classes,
            "head_kwargs": {**getattr(head, "hparams", {}), **(head_kwargs or {})},
            "encoder_kwargs": dict(encoder_kwargs or {})}
    model = SegmentationModel(enc, head, num_classes, spec)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if pretrained:
        mean, std = load_encoder_weights(enc, encoder, pretrained)
    model.mean, model.std = tuple(mean), tuple(std)
    model.spec.update(mean=list(mean), std=list(std))
    return model


def _accepts(factory: Callable[..., nn.Module], name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def build_from_spec(spec: dict[str, Any]) -> "SegmentationModel":
    """Rebuild (without weights) the model described by a checkpoint's ``model`` record."""
    model = create_model(spec["arch"], spec["encoder"], spec["num_classes"], None,
                         spec.get("head_kwargs"), spec.get("encoder_kwargs"))
    model.mean = tuple(spec.get("mean", model.mean))
    model.std = tuple(spec.get("std", model.std))
    model.spec.update(mean=list(model.mean), std=list(model.std))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
