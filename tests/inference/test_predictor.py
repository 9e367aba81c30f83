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
    from pixelwise.errors import CheckpointError
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "d", n_train=1, n_val=1)
    raw = yaml.safe_load(data.read_text())
    raw["names"] = {i: f"c{i}" for i in range(12)}
    raw["ignore_index"] = 255
    data.write_text(yaml.safe_dump(raw))
    with pytest.raises(CheckpointError, match="11 classes"):
        val(tiny_run.best, data, progress=False)
