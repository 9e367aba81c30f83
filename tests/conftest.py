"""Shared fixtures: a tiny real dataset cut from CamVid (or drawn, when ../shared is absent),
and one tiny trained run reused by the engine / inference / CLI tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

torch.set_num_threads(2)
os.environ.setdefault("PYTHONHASHSEED", "0")

ROOT = Path(__file__).resolve().parents[1]
CAMVID = (ROOT.parent / "shared" / "datasets" / "camvid").resolve()
CAMVID_NAMES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                "Pedestrian", "Bicyclist"]


def have_camvid() -> bool:
    return (CAMVID / "dataset.yaml").exists()


needs_camvid = pytest.mark.skipif(not have_camvid(), reason="../shared/datasets/camvid not present")


def write_dataset(root: Path, n_train: int = 6, n_val: int = 3, size: tuple[int, int] = (96, 128)) -> Path:
    """Real CamVid images/labels downscaled to ``size`` (labels with nearest), in a mask-folder
    layout with its dataset.yaml. Falls back to drawn shapes if CamVid is not available."""
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        if have_camvid():
            stems = sorted(p.stem for p in (CAMVID / split / "images").glob("*.jpg"))[:n]
            for s in stems:
                Image.open(CAMVID / split / "images" / f"{s}.jpg").resize((w, h), Image.BILINEAR).save(
                    root / split / "images" / f"{s}.jpg", quality=95)
                Image.open(CAMVID / split / "labels" / f"{s}.png").resize((w, h), Image.NEAREST).save(
                    root / split / "labels" / f"{s}.png")
        else:
            rng = np.random.default_rng(0 if split == "train" else 1)
            for i in range(n):
                lab = np.zeros((h, w), np.uint8)
                for c in range(1, 11):
                    y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
                    lab[y:y + rng.integers(5, 30), x:x + rng.integers(5, 40)] = c
                img = (np.stack([lab * 23, lab * 41 % 255, 255 - lab * 17], -1)).astype(np.uint8)
                Image.fromarray(img).save(root / split / "images" / f"s{i}.jpg", quality=95)
                Image.fromarray(lab).save(root / split / "labels" / f"s{i}.png")
    desc = {"path": ".", "train": "train", "val": "val", "images": "images", "labels": "labels",
            "ignore_index": 11, "names": {i: n for i, n in enumerate(CAMVID_NAMES)}}
    (root / "dataset.yaml").write_text(yaml.safe_dump(desc))
    return root / "dataset.yaml"


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> "object":
    """One real (tiny) training run: 2 epochs of 3 iterations on 96x128 CamVid crops."""
    from pixelwise.engine.trainer import train

    base = tmp_path_factory.mktemp("run")
    data = write_dataset(base / "data")
    return train(data, epochs=2, batch_size=2, project=str(base / "runs"), name="tiny",
                 augment={"crop": (64, 96), "scale_range": (0.75, 1.25)}, val_interval=1,
                 workers=0, progress=False, model={"freeze_stages": 1})


@pytest.fixture(scope="session")
def onnx_model(tiny_run) -> Path:
    """best.onnx next to the tiny run's best.pt, exported (and verified) once per session."""
    from pixelwise.export import export

    path = Path(tiny_run.best).with_suffix(".onnx")
    if not path.exists():
        export(tiny_run.best, "onnx", path)
    return path
