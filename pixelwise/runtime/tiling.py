"""Sliding-window inference with overlap and weighted blending, for images of any size.

Memory is bounded by the tile size: only a band of ``tile`` rows of class scores is kept
(C x tile x W floats); rows are turned into labels as soon as no later tile can touch them.
The input may be a memory-mapped array (``np.load(..., mmap_mode='r')``), read tile by tile,
and the output label map may be a memmap too. Backend-agnostic: ``score_fn`` maps a batch of
uint8 NxHxWx3 tiles to NxCxHxW scores (logits or probabilities).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile``; the last one ends at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def blend_window(h: int, w: int, overlap: int) -> np.ndarray:
    """Weights that fall linearly to a small positive value over ``overlap`` pixels at tile edges,
    so overlapping tiles cross-fade and their border predictions (little context) count less."""

    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n, np.float32)
        i = np.arange(n, dtype=np.float32)
        r = np.minimum(i + 1, n - i) / float(overlap + 1)
        return np.clip(r, 1.0 / (overlap + 1), 1.0).astype(np.float32)

    return np.outer(ramp(h), ramp(w))


def tiled_labels(image: np.ndarray, score_fn: ScoreFn, num_classes: int, tile: int = 512,
                 overlap: int = 64, batch: int = 4, out: np.ndarray | None = None,
                 confidence_out: np.ndarray | None = None, progress: Callable[[int], None] | None = None
                 ) -> np.ndarray:
    """Label map (HxW uint8) of ``image`` (HxWx3 uint8, may be a memmap) computed tile by tile.

    ``confidence_out`` (HxW float32, optional) receives the blended max softmax probability.
    """
    H, W = image.shape[:2]
    th, tw = min(tile, H), min(tile, W)
    overlap = max(0, min(overlap, min(th, tw) // 2))
    ys = tile_starts(H, th, max(1, th - overlap))
    xs = tile_starts(W, tw, max(1, tw - overlap))
    window = blend_window(th, tw, overlap if (len(ys) > 1 or len(xs) > 1) else 0)
    if out is None:
        out = np.empty((H, W), np.uint8 if num_classes <= 256 else np.int32)
    acc = np.zeros((num_classes, th, W), np.float32)  # the band: rows [band_top, band_top + th)
    wsum = np.zeros((th, W), np.float32)
    band_top = ys[0]

    def flush(n_rows: int, chunk: int = 16) -> None:
        for r in range(0, n_rows, chunk):  # a few rows at a time: temporaries stay small
            r1 = min(r + chunk, n_rows)
            scores = acc[:, r:r1] / wsum[None, r:r1]
            out[band_top + r:band_top + r1] = scores.argmax(0)
            if confidence_out is not None:
                e = np.exp(scores - scores.max(0, keepdims=True))
                confidence_out[band_top + r:band_top + r1] = 1.0 / e.sum(0)

    for y in ys:
        if y > band_top:  # rows above y are final: no later tile starts above y
            d = y - band_top
            flush(d)
            acc[:, :th - d] = acc[:, d:]
            acc[:, th - d:] = 0
            wsum[:th - d] = wsum[d:]
            wsum[th - d:] = 0
            band_top = y
        for i in range(0, len(xs), batch):
            group = xs[i:i + batch]
            tiles = np.stack([np.asarray(image[y:y + th, x:x + tw, :3]) for x in group])
            scores = score_fn(tiles)
            weighted = np.empty((num_classes, th, tw), np.float32)
            for x, s in zip(group, scores):
                np.multiply(s, window, out=weighted)
                acc[:, :, x:x + tw] += weighted
                wsum[:, x:x + tw] += window
            if progress is not None:
                progress(len(group))
    flush(min(th, H - band_top))
    return out


def tile_count(shape: tuple[int, int], tile: int, overlap: int) -> int:
    th, tw = min(tile, shape[0]), min(tile, shape[1])
    overlap = max(0, min(overlap, min(th, tw) // 2))
    return len(tile_starts(shape[0], th, max(1, th - overlap))) * len(tile_starts(shape[1], tw, max(1, tw - overlap)))
