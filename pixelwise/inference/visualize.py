"""Colour label maps and blend them over images (for overlays, legends and galleries)."""
from __future__ import annotations

import numpy as np


def colorize(labels: np.ndarray, colors: list[tuple[int, int, int]], ignore_index: int = 255,
             ignore_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 RGB using the dataset's colour table."""
    lut = np.zeros((max(256, len(colors) + 1, ignore_index + 1), 3), dtype=np.uint8)
    lut[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    if ignore_index >= 0:
        lut[ignore_index] = ignore_color
    return lut[np.clip(labels, 0, len(lut) - 1)]


def overlay(image: np.ndarray, labels: np.ndarray, colors: list[tuple[int, int, int]],
            alpha: float = 0.5, ignore_index: int = 255) -> np.ndarray:
    """Blend the colour map over the image; ignored pixels keep the image as is."""
    color = colorize(labels, colors, ignore_index).astype(np.float32)
    out = image.astype(np.float32).copy()
    mask = labels != ignore_index
    out[mask] = (1 - alpha) * out[mask] + alpha * color[mask]
    return out.clip(0, 255).astype(np.uint8)
