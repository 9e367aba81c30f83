"""Tiling at the network's stride: the label maths against torch, the tile bookkeeping against
the whole image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelwise.runtime.tiling import tiled_labels, tiled_labels_lowres, upsampled_argmax, upsampled_confidence


def _reference(scores: np.ndarray, f: int, size: tuple[int, int]) -> np.ndarray:
    up = F.interpolate(torch.from_numpy(scores)[None], scale_factor=f, mode="bilinear", align_corners=False)
    return up[0, :, :size[0], :size[1]].argmax(0).numpy()


@pytest.mark.parametrize("f", [2, 4, 8])
@pytest.mark.parametrize("kind", ["smooth", "noise"])
def test_upsampled_argmax_equals_the_argmax_of_torch_upsampling(f, kind):
    rng = np.random.default_rng(f)
    c, h, w = 7, 23, 31
    if kind == "smooth":  # large regions: most cells uniform
        scores = F.interpolate(torch.randn(1, c, 4, 5), size=(h, w), mode="bilinear").numpy()[0] * 5
    else:  # every cell mixed
        scores = rng.standard_normal((c, h, w)).astype(np.float32)
    H, W = h * f - 3, w * f - 1  # cropped, as images off the stride are
    ref = _reference(scores, f, (H, W))
    # the whole height at once (edge rows clamped by repeating the first and last sample rows)
    rows = np.concatenate([scores[:, :1], scores, scores[:, -1:]], axis=1)
    got = upsampled_argmax(rows, f, W)[f // 2:f // 2 + H]
    assert got.shape == ref.shape
    assert (got == ref).mean() > 0.9999  # float rounding may flip an exact near-tie
    if kind == "smooth":
        a = scores.argmax(0)
        assert (a[:-1, :-1] == a[1:, 1:]).mean() > 0.5  # the shortcut was really taken


@pytest.mark.parametrize("f", [2, 4, 8])
def test_upsampled_confidence_is_the_softmax_max_of_torch_upsampling(f):
    rng = np.random.default_rng(f)
    c, h, w = 7, 23, 31
    scores = rng.standard_normal((c, h, w)).astype(np.float32) * 3
    H, W = h * f - 3, w * f - 1
    up = F.interpolate(torch.from_numpy(scores)[None], scale_factor=f, mode="bilinear", align_corners=False)
    ref = up[0, :, :H, :W].softmax(0).max(0).values.numpy()
    rows = np.concatenate([scores[:, :1], scores, scores[:, -1:]], axis=1)
    got = upsampled_confidence(rows, f, W)[f // 2:f // 2 + H]
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def _block_scorer(protos: np.ndarray, f: int):
    """Low-res scores that depend only on each f x f block's mean colour (padding counted as
    zeros), nearest of ``protos`` first: any tiling on the stride grid must then reproduce the
    whole image exactly."""
    def score(tiles: np.ndarray, valid) -> np.ndarray:
        x = tiles.astype(np.float32) / 255
        for k, (vh, vw) in enumerate(valid):
            x[k, vh:] = 0
            x[k, :, vw:] = 0
        n, h, w, _ = x.shape
        blocks = x.reshape(n, h // f, f, w // f, f, 3).mean((2, 4))
        return -((blocks[:, None] - protos[None, :, None, None]) ** 2).sum(-1)

    return score


@pytest.mark.parametrize("shape,tile,overlap,batch", [((203, 317), 64, 16, 3), ((160, 96), 32, 0, 1),
                                                      ((97, 130), 1000, 64, 2), ((300, 250), 96, 40, 8)])
def test_lowres_tiling_bookkeeping_is_exact(shape, tile, overlap, batch):
    f, multiple = 4, 32
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (shape[0] // 6 + 1, shape[1] // 6 + 1, 3), dtype=np.uint8)
    image = coarse.repeat(6, 0).repeat(6, 1)[:shape[0], :shape[1]]  # patches off the stride grid
    score = _block_scorer(rng.random((5, 3), dtype=np.float32), f)
    H, W = shape
    hp, wp = -(-H // multiple) * multiple, -(-W // multiple) * multiple
    whole = score(np.pad(image, ((0, hp - H), (0, wp - W), (0, 0)))[None], [(H, W)])[0]
    ref = _reference(whole, f, (H, W))
    calls = []
    got = tiled_labels_lowres(image, lambda t, v: calls.append(len(t)) or score(t, v), 5, f, multiple,
                              tile, overlap, batch)
    assert (got == ref).mean() > 0.9999
    assert (ref[1:] != ref[:-1]).mean() > 0.05  # labels that a shift would move
    if tile < min(shape):
        assert sum(calls) > 1


def test_lowres_tiling_refuses_odd_strides():
    with pytest.raises(ValueError):
        tiled_labels_lowres(np.zeros((8, 8, 3), np.uint8), lambda t, v: t, 2, 3, 32)


def test_full_resolution_tiles_are_rounded_down_to_the_stride():
    """A 100-pixel tile fed to a stride-32 network was padded inside to 128: its labels came from
    less image than the tile (a pipeline export's tiles agreed with the checkpoint's on 90% of a
    CamVid image at tile=100, overlap=0). Tiles are now rounded down to the stride, as the
    stride-level blending rounds them; an image side below the tile stays whole."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (250, 70, 3), dtype=np.uint8)
    sizes = []

    def score(tiles: np.ndarray) -> np.ndarray:  # depends on where in its tile a pixel is, as a network's do
        sizes.append(tiles.shape[1:3])
        rows = np.arange(tiles.shape[1], dtype=np.float32)[None, None, :, None]
        return np.moveaxis(tiles.astype(np.float32), -1, 1) + rows * np.array([3.0, 0, -3.0])[None, :, None, None]

    got = tiled_labels(image, score, 3, tile=100, overlap=0, multiple=32)
    assert set(sizes) == {(96, 70)}
    np.testing.assert_array_equal(got, tiled_labels(image, score, 3, tile=96, overlap=0))
    assert (got != tiled_labels(image, score, 3, tile=100, overlap=0)).any()  # the tile placement shows
    sizes.clear()
    tiled_labels(image, score, 3, tile=20, overlap=0, multiple=32)  # below the stride: one stride
    assert set(sizes) == {(32, 32)}
