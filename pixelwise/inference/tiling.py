"""Sliding-window inference for the PyTorch ``Segmenter`` (huge images, bounded memory).

The blending itself lives in ``pixelwise.runtime.tiling`` (numpy, shared with the torch-free
runtime); this module only supplies a PyTorch scorer, so both paths give the same labels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pixelwise.runtime.tiling import lowres_blend_exact, tiled_labels, tiled_labels_lowres


@torch.no_grad()
def _tile_logits(seg: Any, net: Any, tiles: np.ndarray, flip: bool, valid: Any = ()) -> np.ndarray:
    """``net`` on a batch of uint8 NxHxWx3 tiles, normalised as the model expects; the part of each
    tile outside ``valid`` (rows, cols) is zero after normalisation, as the model's own padding."""
    x = seg.to_input(torch.from_numpy(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))))
    for k, (vh, vw) in enumerate(valid):
        x[k, :, vh:] = 0
        x[k, :, :, vw:] = 0
    out = net(x)
    if flip:
        out = (out + net(x.flip(-1)).flip(-1)) / 2
    return out.float().cpu().numpy()


def torch_scorer(seg: Any, flip: bool = False):
    """uint8 NxHxWx3 tiles -> NxCxHxW float32 logits from ``seg.model`` (through ``seg.forward``)."""
    return lambda tiles: _tile_logits(seg, seg.forward, tiles, flip)


def logits_stride(seg: Any) -> int | None:
    """How much smaller than its (stride-padded) input the decoder's logits are, when tiles can be
    blended at that stride (even, dividing the encoder stride); None otherwise (e.g. U-Net)."""
    model = seg.model
    s = model.stride
    with torch.no_grad():
        x = torch.zeros(1, 3, 2 * s, 2 * s, device=seg.device, dtype=seg.dtype)
        h = model.decoder(model.encoder(x)).shape[-2]
    f = 2 * s // h if h and (2 * s) % h == 0 else 0
    return f if f >= 2 and f % 2 == 0 and s % f == 0 else None


def torch_lowres_scorer(seg: Any, flip: bool = False):
    """Tiles (sizes multiples of the encoder stride) and their (rows, cols) inside the image -> the
    decoder's stride-level logits."""
    return lambda tiles, valid: _tile_logits(seg, seg.lowres_forward, tiles, flip, valid)


def tiled_predict(seg: Any, image: np.ndarray, tile: int = 512, overlap: int = 64, batch: int = 4,
                  flip: bool = False, out: np.ndarray | None = None,
                  confidence_out: np.ndarray | None = None) -> np.ndarray:
    """HxW label map of ``image`` (may be a memmap) with the torch model, tile by tile."""
    f = logits_stride(seg) if lowres_blend_exact(image.shape[1], seg.model.stride, flip) else None
    if f:  # blend the decoder's stride-level logits, as the runtime does for exported models
        return tiled_labels_lowres(image, torch_lowres_scorer(seg, flip), seg.num_classes, f, seg.model.stride,
                                   tile, overlap, batch, out, confidence_out=confidence_out)
    return tiled_labels(image, torch_scorer(seg, flip), seg.num_classes, tile, overlap, batch, out, confidence_out,
                        multiple=int(seg.model.stride))
