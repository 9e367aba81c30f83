"""``half`` on a real GPU (skipped without one; CI has none, the lent GPU machine runs it): a
checkpoint loads in fp16 there, predicts like fp32, exports only from fp32, and a GPU Segmenter
exports and verifies on the CPU without being moved."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from pixelwise.engine.checkpoint import save_checkpoint
    from pixelwise.models import create_model

    model = create_model("fpn_lite", "efficientnet_lite0", num_classes=5, pretrained=None).eval()
    path = tmp_path_factory.mktemp("gpu") / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_spec": model.spec,
                           "dataset": {"names": [f"c{i}" for i in range(5)], "ignore_index": 255}})
    return path


def test_half_on_gpu_predicts_like_fp32(checkpoint):
    from pixelwise.inference.predictor import Segmenter

    full, half = Segmenter.load(checkpoint, "cuda"), Segmenter.load(checkpoint, "cuda", half=True)
    assert half.device.type == "cuda" and next(half.model.parameters()).dtype == torch.float16
    image = np.random.default_rng(0).integers(0, 255, (181, 243, 3), dtype=np.uint8)
    a, b = full.predict(image, probabilities=True), half.predict(image, probabilities=True)
    assert b.probabilities.dtype == np.float32 and np.isfinite(b.probabilities).all()
    assert (a.labels == b.labels).mean() > 0.9  # untrained weights: near-tie logits
    t = half.predict(image, tile=96, overlap=16, flip=True, confidence=True)
    assert t.labels.shape == image.shape[:2]


def test_exports_from_gpu_segmenters(checkpoint, tmp_path):
    from pixelwise.export import ExportError, export
    from pixelwise.inference.predictor import Segmenter

    with pytest.raises(ExportError, match="half=True"):
        export(Segmenter.load(checkpoint, "cuda", half=True), "onnx", tmp_path / "h.onnx")
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    seg = Segmenter.load(checkpoint, "cuda")
    res = export(seg, "onnx", tmp_path / "m.onnx", images=tmp_path / "images")
    assert (tmp_path / "m.onnx").exists() and res.report.agreement >= 0.999
    assert seg.device.type == "cuda" and next(seg.model.parameters()).device.type == "cuda"
