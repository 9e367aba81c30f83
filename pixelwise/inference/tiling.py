"""Sliding-window inference for the PyTorch ``Segmenter`` (huge images, bounded memory).

The blending itself lives in ``pixelwise.runtime.tiling`` (numpy, shared with the torch-free
runtime); this module only supplies a PyTorch scorer, so both paths give the same labels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pixelwise.runtime.tiling import tiled_labels


def torch_scorer(seg: Any, flip: bool = False):
    """uint8 NxHxWx3 tiles -> NxCxHxW float32 logits from ``seg.model``."""
    from pixelwise.engine.evaluator import normalize_batch

    @torch.no_grad()
    def score(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2)))
        x = normalize_batch(x, seg.model.mean, seg.model.std, seg.device, seg.channels_last)
        out = seg.model(x)
        if flip:
            out = (out + seg.model(x.flip(-1)).flip(-1)) / 2
        return out.float().cpu().numpy()

    return score


def tiled_predict(seg: Any, image: np.ndarray, tile: int = 512, overlap: int = 64, batch: int = 4,
                  flip: bool = False, out: np.ndarray | None = None,
                  confidence_out: np.ndarray | None = None) -> np.ndarray:
    """HxW label map of ``image`` (may be a memmap) with the torch model, tile by tile."""
    return tiled_labels(image, torch_scorer(seg, flip), seg.num_classes, tile, overlap, batch, out, confidence_out)
