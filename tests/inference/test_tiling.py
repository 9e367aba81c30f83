"""PyTorch tiled inference and TTA agree with the torch-free runtime on real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def test_torch_tiling_and_tta_match_runtime(tiny_run, tmp_path):
    from pixelwise.export import export
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.tiling import logits_stride, tiled_predict
    from pixelwise.inference.tta import tta_logits
    from pixelwise.runtime import RuntimeSegmenter
    from pixelwise.runtime.imageio import read_image

    seg = Segmenter.load(tiny_run.best, device="cpu")
    image = read_image(sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0])
    path = Path(tiny_run.best).with_suffix(".onnx")
    rt = RuntimeSegmenter.load(path if path.exists() else export(tiny_run.best, "onnx", path).path)
    assert logits_stride(seg) == 4  # both blend the stride-4 logits
    a = tiled_predict(seg, image, tile=64, overlap=16)
    b = rt.predict(image, tile=64, overlap=16).labels
    assert (a == b).mean() > 0.999
    np.testing.assert_array_equal(tiled_predict(seg, image, tile=4096), seg.predict(image).labels)
    t = tta_logits(seg, image, flip=True, scales=(0.75, 1.0)).numpy()
    r = rt.logits(image, flip=True, scales=(0.75, 1.0))
    assert t.shape == r.shape and (t.argmax(1) == r.argmax(1)).mean() > 0.99
