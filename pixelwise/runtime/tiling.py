"""Sliding-window inference with overlap and weighted blending, for images of any size.

Memory is bounded by the tile size: only a band of ``tile`` rows of class scores is kept
(C x tile x W floats); rows are turned into labels as soon as no later tile can touch them.
The input may be a memory-mapped array (``np.load(..., mmap_mode='r')``), read tile by tile,
and the output label map may be a memmap too. Backend-agnostic: ``score_fn`` maps a batch of
uint8 NxHxWx3 tiles to NxCxHxW scores that blend like logits.

``tiled_labels_lowres`` does the same with the network's own stride-level logits (the models
upsample theirs bilinearly by 4 or 8): tiles are placed on that grid and blended there, and
labels come from ``upsampled_argmax``, which interpolates only the cells whose corner samples
disagree. Blending at stride f holds and moves f*f times fewer scores: an 8000x8000 image took
2.7x less time (benchmarks/tiling.py: the full-resolution upsampling and blending had cost more
than the network).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pixelwise.errors import ConfigError

ScoreFn = Callable[[np.ndarray], np.ndarray]
# uint8 NxHxWx3 tiles (H, W multiples of the graph's input multiple) and the (rows, cols) of each
# that lie inside the image -> NxCx(H/f)x(W/f) logits, the part outside treated as the model's padding.
LowResScoreFn = Callable[[np.ndarray, Sequence[tuple[int, int]]], np.ndarray]


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


MAX_SCALE = 4.0  # scale 4 of an 8000x8000 tile is already 1 G pixels
DEFAULT_OVERLAP = 64


def _whole(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def checked_scales(scales: object) -> tuple[float, ...] | None:
    """``scales`` as a tuple of floats: a number, a list/tuple or a 1-D array of numbers (None or
    empty: no multi-scale TTA). A string or None inside was a bare TypeError deep in the resize."""
    if scales is None:
        return None
    values = (scales,) if isinstance(scales, (int, float, np.number)) else scales
    try:
        items = list(np.asarray(values, dtype=object).ravel()) if not isinstance(values, (str, bytes)) else None
    except Exception:  # an object numpy cannot lay out
        items = None
    if items is None or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                                for v in items):
        raise ConfigError(f"scales={scales!r} is not a list of numbers.",
                          fix="pass scales as numbers, e.g. scales=(0.75, 1.0, 1.25) (the CLI takes 0.75,1,1.25)")
    return tuple(float(v) for v in items) or None


def check_options(*, probabilities: bool, scales: Sequence[float] | None, tile: int | None,
                  overlap: int | None, stride: int, batch: int = 4, **switches: object) -> int:
    """Refuse prediction options that cannot work, before any pixel is computed, with ConfigError
    from both predictors, so a checkpoint and its export refuse the same things in the same words
    (``switches``: flip, confidence... must be booleans; "no" is truthy).

    Returns the tile overlap to use: ``overlap``, or when None 64 pixels (at most half the tile)."""
    for name, value in (("probabilities", probabilities), *switches.items()):
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f"{name}={value!r} is not True or False.", fix=f"pass {name}=True or {name}=False")
    scales = checked_scales(scales)
    for name, value in (("tile", tile), ("overlap", overlap)):
        if value is not None and not _whole(value):
            raise ConfigError(f"{name}={value!r} is not a whole number of pixels.", fix=f"pass {name} as an int, e.g. "
                              + ("1024" if name == "tile" else "64"))
    if tile is not None and (not _whole(batch) or batch < 1):
        raise ConfigError(f"batch={batch!r} is not a positive number of tiles per call.",
                          fix="use batch=4 (tiles run together; more uses more memory)")
    for s in scales or ():
        if not 0 < s <= MAX_SCALE:
            raise ConfigError(f"Test-time scale {s:g} is outside (0, {MAX_SCALE:g}]: the image would be predicted "
                              f"at {s:g}x its size.", fix="use scales around 1, e.g. 0.75,1,1.25")
    if tile is None:
        if overlap is not None:
            raise ConfigError(f"overlap={overlap} applies to tiled prediction only.",
                              fix="pass tile=SIZE as well (e.g. 1024), or drop overlap")
        return 0
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 2)
    if tile < stride:
        raise ConfigError(f"Tile size {tile} is below the network's stride ({stride}).",
                          fix=f"use tiles of at least {stride} pixels (512-1024 is typical), or whole-image mode (no tile)")
    if not 0 <= overlap <= tile // 2:
        raise ConfigError(f"Tile overlap {overlap} is outside 0..{tile // 2} (half the tile of {tile}).",
                          fix="use an overlap of at most half the tile (default: 64, or half a smaller tile)")
    # Tiled mode keeps no CxHxW map and runs one scale: refuse what needs them.
    if probabilities:
        raise ConfigError("probabilities=True is not available in tiled mode "
                          "(a full CxHxW map would defeat the memory bound).",
                          fix="use confidence=True, or whole-image mode (no tile)")
    if scales:
        raise ConfigError("Multi-scale TTA (scales) is not available in tiled mode.",
                          fix="use flip=True, or whole-image mode (no tile)")
    return overlap


def _slide_band(acc: np.ndarray, wsum: np.ndarray, d: int) -> None:
    """Drop the band's first ``d`` rows (turned into labels) and open ``d`` empty rows below."""
    rows = wsum.shape[0]
    acc[:, :rows - d] = acc[:, d:]
    acc[:, rows - d:] = 0
    wsum[:rows - d] = wsum[d:]
    wsum[rows - d:] = 0


def _add_tiles(acc: np.ndarray, wsum: np.ndarray, xs: list[int], scores: np.ndarray, window: np.ndarray) -> None:
    """Add each tile's scores, weighted by ``window``, to the band at its column ``x``."""
    w = window.shape[1]
    weighted = np.empty(scores.shape[1:], np.float32)
    for x, sc in zip(xs, scores):
        np.multiply(sc, window, out=weighted)
        acc[:, :, x:x + w] += weighted
        wsum[:, x:x + w] += window


def _tile_side(length: int, tile: int, multiple: int) -> int:
    """``tile`` rounded down to a multiple of ``multiple`` (at least one), at most ``length``: a
    tile that is not a multiple of the network's stride would be padded inside by the model, and
    its labels would come from less image than the tile holds."""
    return min(length, max(multiple, tile // multiple * multiple))


def tiled_labels(image: np.ndarray, score_fn: ScoreFn, num_classes: int, tile: int = 512,
                 overlap: int = 64, batch: int = 4, out: np.ndarray | None = None,
                 confidence_out: np.ndarray | None = None, progress: Callable[[int], None] | None = None,
                 multiple: int = 1) -> np.ndarray:
    """Label map (HxW uint8) of ``image`` (HxWx3 uint8, may be a memmap) computed tile by tile.

    ``confidence_out`` (HxW float32, optional) receives the max softmax probability of the blended
    scores (logits, or a pipeline export's log-probabilities: ``RuntimeSegmenter.additive_scores``).
    ``multiple``: the network's stride; tiles are rounded down to it, as ``tiled_labels_lowres``
    rounds them, so the two blendings see the same tiles' worth of image.
    """
    H, W = image.shape[:2]
    th, tw = _tile_side(H, tile, multiple), _tile_side(W, tile, multiple)
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
                top = scores.max(0, keepdims=True)
                confidence_out[band_top + r:band_top + r1] = 1.0 / np.exp(scores - top).sum(0)

    for y in ys:
        if y > band_top:  # rows above y are final: no later tile starts above y
            flush(y - band_top)
            _slide_band(acc, wsum, y - band_top)
            band_top = y
        for i in range(0, len(xs), batch):
            group = xs[i:i + batch]
            tiles = np.stack([np.asarray(image[y:y + th, x:x + tw, :3]) for x in group])
            _add_tiles(acc, wsum, group, score_fn(tiles), window)
            if progress is not None:
                progress(len(group))
    flush(min(th, H - band_top))
    return out


def tile_count(shape: tuple[int, int], tile: int, overlap: int, multiple: int = 1) -> int:
    th, tw = _tile_side(shape[0], tile, multiple), _tile_side(shape[1], tile, multiple)
    overlap = max(0, min(overlap, min(th, tw) // 2))
    return len(tile_starts(shape[0], th, max(1, th - overlap))) * len(tile_starts(shape[1], tw, max(1, tw - overlap)))


def upsampled_argmax(rows: np.ndarray, factor: int, width: int) -> np.ndarray:
    """Labels between consecutive low-resolution rows, as the arg-max of their upsampling.

    ``rows``: C x (n+1) x w scores at stride ``factor`` (even). Returns the n*factor full-resolution
    rows whose samples lie between them, ``width`` pixels wide, equal to the arg-max of a bilinear
    x``factor`` upsampling with half-pixel centres and clamped edges (``F.interpolate(...,
    align_corners=False)``, Pillow's BILINEAR). The columns are edge-extended; a cell whose four
    corner samples share one arg-max takes it without interpolating (a convex combination of score
    vectors that peak at one class peaks there too), only the others are interpolated.
    """
    f = factor
    c, n1, w = rows.shape
    n = n1 - 1
    ext = np.concatenate([rows[:, :, :1], rows, rows[:, :, -1:]], axis=2)
    a = ext.argmax(0)
    a00 = a[:-1, :-1]
    uniform = (a00 == a[1:, :-1]) & (a00 == a[:-1, 1:]) & (a00 == a[1:, 1:])
    dtype = np.uint8 if c <= 256 else np.int32
    canvas = np.empty((n, f, w + 1, f), dtype)
    canvas[:] = a00.astype(dtype)[:, None, :, None]
    ci, cj = np.nonzero(~uniform)
    if len(ci):
        corners = np.stack([ext[:, ci, cj], ext[:, ci + 1, cj], ext[:, ci, cj + 1], ext[:, ci + 1, cj + 1]], -1)
        t = (np.arange(f, dtype=np.float32) + 0.5) / f
        wy, wx = t[:, None], t[None, :]
        weights = np.stack([(1 - wy) * (1 - wx), wy * (1 - wx), (1 - wy) * wx, wy * wx]).reshape(4, f * f)
        canvas[ci, :, cj, :] = (corners @ weights).argmax(0).reshape(-1, f, f).astype(dtype)
    return canvas.reshape(n * f, (w + 1) * f)[:, f // 2:f // 2 + width]


def upsampled_confidence(rows: np.ndarray, factor: int, width: int) -> np.ndarray:
    """The max softmax probability of the same bilinear upsampling ``upsampled_argmax`` takes the
    arg-max of (same rows, same half-pixel samples, same crop), so tiled confidence comes from
    the very scores the tiled labels do."""
    f = factor
    c, n1, w = rows.shape
    n = n1 - 1
    ext = np.concatenate([rows[:, :, :1], rows, rows[:, :, -1:]], axis=2).astype(np.float32, copy=False)
    t = (np.arange(f, dtype=np.float32) + 0.5) / f
    # Separable, one sample offset at a time, so every loop runs along a whole row.
    vert = np.empty((c, n, f, w + 2), np.float32)
    for k in range(f):
        np.multiply(ext[:, :-1], 1 - t[k], out=vert[:, :, k])
        vert[:, :, k] += ext[:, 1:] * t[k]
    vert = vert.reshape(c, n * f, w + 2)
    full = np.empty((c, n * f, w + 1, f), np.float32)
    for k in range(f):
        np.multiply(vert[:, :, :-1], 1 - t[k], out=full[..., k])
        full[..., k] += vert[:, :, 1:] * t[k]
    full = full.reshape(c, n * f, (w + 1) * f)[:, :, f // 2:f // 2 + width]
    top = full.max(0)
    np.subtract(full, top, out=full)
    np.exp(full, out=full)
    return np.reciprocal(full.sum(0), dtype=np.float32)


def lowres_blend_exact(width: int, multiple: int, flip: bool) -> bool:
    """Whether flip TTA can be blended at the logits' stride and still equal the whole image's.

    A tile that reaches past the right edge is zero-padded there; mirrored, its padding would sit
    on the left and shift the image on the stride grid (98.8% label agreement with whole-image
    flip at 250 pixels wide). Such images blend at full resolution, where each tile is mirrored
    before it is padded."""
    return not flip or width % multiple == 0


def tiled_labels_lowres(image: np.ndarray, score_fn: LowResScoreFn, num_classes: int, factor: int,
                        multiple: int, tile: int = 512, overlap: int = 64, batch: int = 4,
                        out: np.ndarray | None = None, progress: Callable[[int], None] | None = None,
                        confidence_out: np.ndarray | None = None) -> np.ndarray:
    """Label map (HxW) of ``image`` tile by tile, blending the network's stride-``factor`` logits.

    Tiles are ``tile`` rounded down to a multiple of ``multiple`` (the graph's input multiple, so
    nothing is padded inside them) and start on the stride grid; a tile reaching past the image
    edge gets the model's zero padding there, as the whole image would. One tile that covers the
    image gives the whole-image labels. ``confidence_out`` (HxW float32) receives the max softmax
    probability of the upsampled blended logits: asking for it does not change the labels.
    """
    if factor < 2 or factor % 2 or multiple % factor:
        raise ValueError(f"needs an even stride dividing the input multiple, got {factor} and {multiple}")
    H, W = image.shape[:2]
    f = factor

    # at most the side padded to the multiple, as the whole-image graph pads it
    th, tw = (_tile_side(-(-n // multiple) * multiple, tile, multiple) for n in (H, W))
    thl, twl = th // f, tw // f
    # Sample rows/columns that reach the image: one past the last that holds pixels, because the
    # whole-image graph pads to ``multiple`` and interpolates the last pixels towards that one.
    hl = min(-(-H // f) + 1, -(-H // multiple) * multiple // f)
    wl = min(-(-W // f) + 1, -(-W // multiple) * multiple // f)
    ovl = max(0, min(overlap // f, min(thl, twl) // 2))
    ys = tile_starts(hl, thl, max(1, thl - ovl))
    xs = tile_starts(wl, twl, max(1, twl - ovl))
    window = blend_window(thl, twl, ovl if (len(ys) > 1 or len(xs) > 1) else 0)
    if out is None:
        out = np.empty((H, W), np.uint8 if num_classes <= 256 else np.int32)
    acc = np.zeros((num_classes, thl, max(wl, twl)), np.float32)  # the band: low-res rows [top, top + thl)
    wsum = np.zeros((thl, max(wl, twl)), np.float32)
    top = ys[0]  # the band's first low-res row
    prev = None  # the last low-res row turned into labels: the next rows' upper halo

    def emit(rows: np.ndarray, first_cell: int) -> None:
        """Labels of the cells between consecutive ``rows``, the first one being cell ``first_cell``."""
        labels = upsampled_argmax(rows, f, W)
        y0 = first_cell * f - f // 2
        lo, hi = max(0, y0), min(H, y0 + labels.shape[0])
        if hi > lo:
            out[lo:hi] = labels[lo - y0:hi - y0]
            if confidence_out is not None:
                confidence_out[lo:hi] = upsampled_confidence(rows, f, W)[lo - y0:hi - y0]

    def flush(n_rows: int, chunk: int = 16) -> None:
        nonlocal prev
        for r in range(0, n_rows, chunk):  # a few rows at a time: temporaries stay small
            r1 = min(r + chunk, n_rows)
            scores = acc[:, r:r1, :wl] / wsum[None, r:r1, :wl]
            halo = prev if prev is not None else scores[:, :1]  # top edge: clamped
            emit(np.concatenate([halo, scores], axis=1), top + r)
            prev = scores[:, -1:].copy()

    for y in ys:
        if y > top:  # low-res rows above y are final: no later tile starts above y
            flush(y - top)
            _slide_band(acc, wsum, y - top)
            top = y
        for i in range(0, len(xs), batch):
            group = xs[i:i + batch]
            tiles = np.zeros((len(group), th, tw, 3), np.uint8)
            valid = []
            for k, x in enumerate(group):
                part = np.asarray(image[y * f:y * f + th, x * f:x * f + tw, :3])
                tiles[k, :part.shape[0], :part.shape[1]] = part
                valid.append(part.shape[:2])
            scores = score_fn(tiles, valid)
            if scores.shape[-2:] != (thl, twl):
                raise ValueError(f"expected {thl}x{twl} logits for {th}x{tw} tiles at stride {f}, "
                                 f"got {scores.shape[-2]}x{scores.shape[-1]}")
            _add_tiles(acc, wsum, group, scores, window)
            if progress is not None:
                progress(len(group))
    flush(min(thl, hl - top))
    emit(np.concatenate([prev, prev], axis=1), hl)  # below the last sample row: clamped
    return out
