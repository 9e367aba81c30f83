"""fp16 prediction and scoring of a checkpoint (``half``): the same outputs as fp32 up to rounding,
on every path that feeds the model (whole image, TTA, tiles, val); refused for exports, and at
load on a CPU (about 70x slower there). CI has no GPU, so the fp16 path runs here on the CPU
through the constructor, which allows it."""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from pixelwise.errors import ConfigError
from pixelwise.inference.predictor import Segmenter


@pytest.fixture(scope="module")
def pair(tiny_run):
    full = Segmenter.load(tiny_run.best, device="cpu")
    with pytest.warns(UserWarning, match="far slower than fp32"):
        half = Segmenter(copy.deepcopy(full.model), full.names, full.colors, full.ignore_index, "cpu",
                         full._dataset, full.checkpoint, half=True)
    return full, half


def _image(tiny_dataset):
    from PIL import Image

    return np.array(Image.open(sorted((tiny_dataset.parent / "val" / "images").iterdir())[0]).convert("RGB"))


def test_half_predicts_in_fp16_with_fp32_outputs(pair, tiny_dataset):
    full, half = pair
    assert next(half.model.parameters()).dtype == torch.float16 and "half" in repr(half)
    assert next(full.model.parameters()).dtype == torch.float32  # the copy was cast, not the original
    image = _image(tiny_dataset)
    a, b = full.predict(image, probabilities=True), half.predict(image, probabilities=True)
    assert b.probabilities.dtype == np.float32
    np.testing.assert_allclose(b.probabilities.sum(0), 1.0, atol=1e-3)
    np.testing.assert_allclose(b.probabilities, a.probabilities, atol=2e-2)
    assert (a.labels == b.labels).mean() > 0.98


@pytest.mark.parametrize("opts", [{"flip": True, "scales": (0.75, 1.0)}, {"tile": 64, "overlap": 16},
                                  {"tile": 64, "overlap": 16, "flip": True, "confidence": True}])
def test_half_on_tta_and_tiles(pair, tiny_dataset, opts):
    full, half = pair
    image = _image(tiny_dataset)
    a, b = full.predict(image, **opts), half.predict(image, **opts)
    assert b.labels.shape == image.shape[:2] and (a.labels == b.labels).mean() > 0.98


def test_half_val_scores_like_fp32(pair, tiny_dataset):
    from pixelwise.engine.validate import val

    a, b = (val(seg, tiny_dataset, progress=False) for seg in pair)
    assert abs(a.miou - b.miou) < 0.02 and b.images == a.images


def test_half_refused_on_cpu_for_exports_and_loaded_predictors(tiny_run, onnx_model, pair):
    from pixelwise.engine.validate import val
    from pixelwise.runtime.batch import load_predictor

    with pytest.raises(ConfigError, match="needs a GPU"):
        Segmenter.load(tiny_run.best, device="cpu", half=True)
    for call in (lambda: load_predictor(onnx_model, half=True), lambda: load_predictor(pair[0], half=True),
                 lambda: val(onnx_model, half=True, progress=False)):
        with pytest.raises(ConfigError, match="--half applies to checkpoints"):
            call()
    with pytest.raises(ConfigError, match="already loaded in its own precision"):  # was scored in fp32, silently
        val(pair[0], half=True, progress=False)


def test_half_segmenter_is_not_exported_as_fp32(pair, tmp_path):
    """Its weights are rounded to fp16: the export would have claimed to be the checkpoint's fp32
    model (and the verification cast the caller's model back to fp32 in place)."""
    from pixelwise.export import ExportError, export

    with pytest.raises(ExportError, match="half=True"):
        export(pair[1], "onnx", tmp_path / "m.onnx")
    assert next(pair[1].model.parameters()).dtype == torch.float16 and not (tmp_path / "m.onnx").exists()


def test_metrics_record_half(pair, tiny_dataset, tmp_path):
    import json

    from pixelwise.engine.validate import val

    for seg, name in zip(pair, ("full", "half")):
        val(seg, tiny_dataset, progress=False, out_dir=tmp_path / name)
    assert [json.loads((tmp_path / n / "metrics_val.json").read_text())["half"] for n in ("full", "half")] == [False, True]


def test_cli_half_is_one_line_errors(tiny_run, tiny_dataset, onnx_model, tmp_path):
    cli = [sys.executable, "-m", "pixelwise.cli"]
    images = tiny_dataset.parent / "val" / "images"
    for args, says in ((["predict", str(images), "--model", str(tiny_run.best), "--device", "cpu",
                         "--out", str(tmp_path / "p")], "needs a GPU"),
                       (["val", "--model", str(tiny_run.best), "--data", str(tiny_dataset), "--device", "cpu",
                         "--out", str(tmp_path / "v")], "needs a GPU"),
                       (["val", "--model", str(onnx_model), "--data", str(tiny_dataset), "--out", str(tmp_path / "v")],
                        "--fp16")):
        r = subprocess.run(cli + args + ["--half", "--quiet"], capture_output=True, text=True)
        assert r.returncode != 0 and "Traceback" not in r.stderr and says in r.stderr, r.stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "v").exists()

