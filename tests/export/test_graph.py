"""The exported graphs' label map: computed at full size without upsampling the logits."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from pixelwise.export.graph import UpsampledLabels


def _reference(y: torch.Tensor, f: int) -> torch.Tensor:
    """What the model does: bilinear (half-pixel) upsampling, then the arg-max."""
    return F.interpolate(y, scale_factor=f, mode="bilinear", align_corners=False).argmax(1)


def _smooth_logits(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Logits with regions and boundaries, like a trained model's (noise would make every
    block a boundary block)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, c, max(2, h // 6), max(2, w // 6), generator=g) * 4
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


@pytest.mark.parametrize("f", [2, 4, 8])
@pytest.mark.parametrize("shape", [(1, 11, 24, 30), (3, 5, 7, 9), (2, 300, 5, 6)])
def test_upsampled_labels_equal_the_argmax_of_upsampled_logits(f, shape):
    n, c, h, w = shape
    for y in (_smooth_logits(n, c, h, w, 0), torch.randn(shape)):  # regions, and pure noise
        with torch.no_grad():
            got = UpsampledLabels(f)(y)
        assert got.shape == (n, h * f, w * f)
        assert got.dtype == (torch.uint8 if c <= 256 else torch.int32)
        np.testing.assert_array_equal(got.long().numpy(), _reference(y, f).numpy())


def test_upsampled_labels_when_no_block_is_mixed_and_when_all_are():
    """No boundary (one class wins everywhere: NonZero finds nothing) and a checkerboard (every
    block between samples is mixed)."""
    y = torch.zeros(2, 4, 6, 8)
    y[:, 2] = 1.0
    with torch.no_grad():
        assert (UpsampledLabels(4)(y) == 2).all()
        board = torch.zeros(1, 2, 6, 8)
        board[0, 0, ::2, ::2] = board[0, 0, 1::2, 1::2] = 1.0
        board[0, 1] = 1.0 - board[0, 0]
        np.testing.assert_array_equal(UpsampledLabels(4)(board).long().numpy(), _reference(board, 4).numpy())


def test_upsampled_labels_need_an_even_factor():
    with pytest.raises(ValueError, match="even"):
        UpsampledLabels(3)


def test_upsampled_labels_in_onnx_runtime_at_sizes_other_than_traced(tmp_path):
    """One ONNX graph (traced once) for every batch and size, in ONNX Runtime."""
    path = tmp_path / "labels.onnx"
    torch.onnx.export(UpsampledLabels(4), (_smooth_logits(1, 11, 8, 12, 0),), str(path), dynamo=False,
                      opset_version=17, input_names=["y"], output_names=["labels"],
                      dynamic_axes={"y": {0: "n", 2: "h", 3: "w"}, "labels": {0: "n", 1: "H", 2: "W"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i, shape in enumerate([(1, 11, 96, 120), (3, 11, 13, 17), (1, 11, 1, 1)]):
        y = _smooth_logits(*shape, seed=i + 1)
        got = sess.run(None, {"y": y.numpy()})[0]
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, _reference(y, 4).numpy())
    flat = np.zeros((1, 11, 9, 10), np.float32)
    flat[:, 7] = 1.0
    assert (sess.run(None, {"y": flat})[0] == 7).all()  # no mixed block at all
