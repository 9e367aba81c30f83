import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.errors import DatasetError
from pixelwise.inference.predictor import Segmenter, predict


def test_predict_any_size_with_probabilities(tiny_run):
    seg = Segmenter.load(tiny_run.best, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (77, 131, 3), dtype=np.uint8)
    pred = seg.predict(image, probabilities=True)
    assert pred.labels.shape == (77, 131) and pred.labels.dtype == np.uint8
    assert pred.probabilities.shape == (11, 77, 131)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(pred.probabilities.argmax(0), pred.labels)
    areas = pred.class_areas(seg.names)
    assert abs(sum(areas.values()) - 1.0) < 1e-6


def test_tiny_images_with_tta_predict_without_warnings(tiny_run):
    """A 1x1 image resized for a TTA scale is Pillow's read-only buffer, contiguous already: torch
    warned about the non-writable array (the server logged it on every such request)."""
    import warnings

    seg = Segmenter.load(tiny_run.best, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert seg.predict(np.zeros((1, 1, 3), np.uint8), scales=(0.5, 1.0)).labels.shape == (1, 1)


def test_predict_from_path_equals_array(tiny_run, tiny_dataset: Path):
    seg = Segmenter.load(tiny_run.best, device="cpu")
    img = sorted((tiny_dataset.parent / "val" / "images").iterdir())[0]
    a = seg.predict(img).labels
    b = seg.predict(np.array(Image.open(img).convert("RGB"))).labels
    assert np.array_equal(a, b)


def test_predict_folder_and_glob_write_outputs(tiny_run, tiny_dataset: Path, tmp_path: Path):
    folder = tiny_dataset.parent / "val" / "images"
    n = len(list(folder.iterdir()))
    files = predict(tiny_run.best, folder, tmp_path / "out", progress=False)
    assert len(files) == 3 * n
    stem = sorted(folder.iterdir())[0].stem
    labels = np.array(Image.open(tmp_path / "out" / f"{stem}_labels.png"))
    assert labels.shape == (96, 128) and labels.max() < 11
    color = np.array(Image.open(tmp_path / "out" / f"{stem}_color.png"))
    assert color.shape == (96, 128, 3)
    files = predict(tiny_run.best, str(folder / "*.jpg"), tmp_path / "glob", progress=False,
                    save_color=False, save_overlay=False)
    assert len(files) == n


def test_same_predict_options_as_the_runtime(tiny_run, onnx_model):
    """tile / overlap / scales / confidence: the PyTorch predictor takes the runtime's options and
    agrees with it."""
    from pixelwise.errors import ConfigError, PixelwiseError
    from pixelwise.inference.tta import tta_logits
    from pixelwise.runtime import RuntimeSegmenter

    seg, rt = Segmenter.load(tiny_run.best, device="cpu"), RuntimeSegmenter.load(onnx_model)
    image = np.asarray(Image.open(sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0]).convert("RGB"))
    a = seg.predict(image, tile=64, overlap=16, confidence=True)
    b = rt.predict(image, tile=64, overlap=16, confidence=True)
    assert (a.labels == b.labels).mean() > 0.999 and a.probabilities is None
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-3)
    np.testing.assert_array_equal(seg.predict(image, tile=4096).labels, seg.predict(image).labels)
    ms = seg.predict(image, scales=(0.75, 1.0), flip=True, confidence=True)
    np.testing.assert_array_equal(ms.labels, tta_logits(seg, image, flip=True, scales=(0.75, 1.0))[0].argmax(0).numpy())
    assert ms.confidence.shape == image.shape[:2] and 0 < ms.confidence.min() and ms.confidence.max() <= 1
    assert (ms.labels == rt.predict(image, scales=(0.75, 1.0), flip=True).labels).mean() > 0.99
    for model, error in ((seg, ConfigError), (rt, PixelwiseError)):
        with pytest.raises(error, match="tiled mode"):
            model.predict(image, tile=64, probabilities=True)
        with pytest.raises(error, match="tiled mode"):
            model.predict(image, tile=64, scales=(0.5, 1.0))


def test_cli_predict_tiles_confidence_and_areas(tiny_run, onnx_model, tmp_path: Path):
    import csv

    folder = Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"])
    n = len(list(folder.glob("*.jpg")))
    for model in (tiny_run.best, onnx_model):
        out = tmp_path / Path(model).suffix[1:]
        proc = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(folder), "--model", str(model),
                               "--out", str(out), "--tile", "64", "--overlap", "16", "--confidence", "--areas",
                               "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        conf = [np.asarray(Image.open(f)) for f in sorted(out.glob("*_confidence.png"))]
        assert len(conf) == n and all(c.dtype == np.uint8 and c.min() >= 255 // 11 for c in conf)
        rows = list(csv.reader((out / "areas.csv").open()))
        assert rows[0] == ["file", *Segmenter.load(tiny_run.best).names] and len(rows) == n + 1
        for row in rows[1:]:
            labels = np.asarray(Image.open(out / f"{Path(row[0]).stem}_labels.png"))
            np.testing.assert_allclose([float(v) for v in row[1:]],
                                       np.bincount(labels.ravel(), minlength=11) / labels.size, atol=1e-6)
    proc = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(folder), "--model", str(onnx_model),
                           "--scales", "0,1"], capture_output=True, text=True)
    assert proc.returncode != 0 and "positive numbers" in proc.stderr


def test_nothing_to_predict(tiny_run, tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        predict(tiny_run.best, tmp_path / "none", tmp_path / "o", progress=False)


def test_cli_val_and_predict(tiny_run, tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "val"
    proc = subprocess.run([sys.executable, "-m", "pixelwise.cli", "val", "--model", str(tiny_run.best),
                           "--data", str(tiny_dataset), "--out", str(out), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pixel accuracy" in proc.stdout
    import json

    record = json.loads((out / "metrics_val.json").read_text())
    assert set(record["per_class"]) == set(Segmenter.load(tiny_run.best).names)
    assert (out / "confusion_val.png").stat().st_size > 1000
    proc = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(tiny_dataset.parent / "val" / "images"),
                           "--model", str(tiny_run.best), "--out", str(tmp_path / "p"), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "p").glob("*_overlay.png"))) == 3


def test_val_refuses_a_dataset_with_other_classes(tiny_run, tmp_path: Path):
    import yaml

    from pixelwise.engine.evaluator import val
    from pixelwise.errors import DatasetError
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "d", n_train=1, n_val=1)
    raw = yaml.safe_load(data.read_text())
    raw["names"] = {i: f"c{i}" for i in range(12)}
    raw["ignore_index"] = 255
    data.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError, match="predicts 11 classes but dataset .* has 12"):
        val(tiny_run.best, data, progress=False)
