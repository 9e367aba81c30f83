"""The PyTorch predictor on a real GPU (skipped without one; CI has none, the lent GPU machine runs
it): CUDA graphs give eager's outputs on every predict path and keep a bounded set of shapes;
``half`` loads in fp16 and predicts like fp32; exports come only from fp32, and a GPU Segmenter
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


def test_cuda_graphs_give_eager_outputs(checkpoint):
    from pixelwise.inference.predictor import Segmenter

    graphed, eager = Segmenter.load(checkpoint, "cuda"), Segmenter.load(checkpoint, "cuda", cuda_graphs=False)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, size, dtype=np.uint8) for size in ((181, 243, 3), (181, 243, 3), (96, 128, 3))]
    first = graphed.logits(images[0])
    for im in images:  # the same size twice: the second replays the first's graph
        for opts in ({}, {"flip": True}, {"tile": 64, "overlap": 16}, {"probabilities": True}):
            a, b = graphed.predict(im, **opts), eager.predict(im, **opts)
            assert (a.labels == b.labels).mean() > 0.999, opts
            if a.probabilities is not None:
                np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
    # a later replay of the same graph did not overwrite an earlier result
    torch.testing.assert_close(first, eager.logits(images[0]), atol=1e-4, rtol=1e-4)
    assert len(graphed.forward.shapes) >= 2 and not graphed.forward.disabled


def test_graphs_keep_few_shapes_and_run_large_inputs_eagerly():
    from pixelwise.inference.graphs import GraphedForward

    conv = torch.nn.Conv2d(3, 4, 3, padding=1).cuda().eval()
    g = GraphedForward(conv, max_shapes=2, max_input_values=3 * 64 * 64)
    with torch.no_grad():
        for side in (16, 32, 48, 32):
            x = torch.randn(1, 3, side, side, device="cuda")
            torch.testing.assert_close(g(x), conv(x))
        assert g.shapes == [(1, 3, 48, 48), (1, 3, 32, 32)]  # 16 evicted, 32 used last
        big = torch.randn(1, 3, 96, 96, device="cuda")
        torch.testing.assert_close(g(big), conv(big))
    assert (1, 3, 96, 96) not in g.shapes
