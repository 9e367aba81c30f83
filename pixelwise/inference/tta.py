"""Flip + multi-scale test-time augmentation for the PyTorch ``Segmenter``.

Logits of every view are resized back to the image and averaged (as the runtime does)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def tta_logits(seg: Any, image: np.ndarray, flip: bool = True, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """1xCxHxW averaged logits of ``image`` (HxWx3 uint8) over scales x (identity, flip)."""
    from pixelwise.runtime.imageio import resize_image

    h, w = image.shape[:2]
    total, n = None, 0
    for s in scales:
        im = image if s == 1.0 else resize_image(image, (max(1, round(h * s)), max(1, round(w * s))))
        out = seg.logits(im, flip=flip) * (2 if flip else 1)
        if out.shape[-2:] != (h, w):  # antialias: a scale above 1 is shrunk back as Pillow does in the runtime
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        total = out if total is None else total + out
        n += 2 if flip else 1
    return total / n
