"""Joint image+mask augmentation (albumentations): the mask always moves with its image.

Scaling uses bilinear interpolation for the image and nearest for the mask; padding fills the
image with 0 and the mask with the ignore value, so padded pixels never count as a class.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import albumentations as A

cv2.setNumThreads(0)  # workers are processes already; OpenCV's own threads would fight them


def _albumentations():
    """albumentations, imported when a transform is built: the run's config (``AugmentConfig``)
    is read and written without it, e.g. where only inference runs."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its import-time version check goes online
    import albumentations

    return albumentations


@dataclass
class AugmentConfig:
    """Training augmentation. Sizes are (height, width) in pixels."""

    base_scale: float = 1.0  # resize every image by this factor first (training resolution)
    scale_range: tuple[float, float] = (0.5, 2.0)  # random extra scale on top of base_scale
    crop: tuple[int, int] = (360, 480)
    hflip: float = 0.5
    photometric: float = 0.5  # probability of brightness/contrast/hue jitter


def train_transform(cfg: AugmentConfig, ignore_index: int) -> A.Compose:
    A = _albumentations()
    lo, hi = cfg.scale_range
    lo, hi = lo * cfg.base_scale, hi * cfg.base_scale
    ch, cw = cfg.crop
    ops = [
        A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST_EXACT, p=1.0),
        A.PadIfNeeded(min_height=ch, min_width=cw, border_mode=cv2.BORDER_CONSTANT,
                      fill=0, fill_mask=ignore_index),
        A.RandomCrop(height=ch, width=cw),
        A.HorizontalFlip(p=cfg.hflip),
    ]
    if cfg.photometric > 0:
        ops.append(A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=1.0),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=15, p=1.0),
        ], p=cfg.photometric))
    return A.Compose(ops)


def resize_transform(scale: float) -> A.Compose | None:
    """Evaluation-time resize (labels are compared at full resolution by the evaluator)."""
    if scale == 1.0:
        return None
    A = _albumentations()
    return A.Compose([A.RandomScale(scale_limit=(scale - 1.0, scale - 1.0), p=1.0)])


def apply(transform: A.Compose | None, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if transform is None:
        return image, mask
    out = transform(image=image, mask=mask)
    return out["image"], out["mask"]
