"""Cityscapes labelIds/instanceIds -> trainIds; ADE20K SceneParse150 shift and full `_seg.png`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format, open_source
from pixelwise.data.formats.ade20k import ADE150, decode_seg, encode_seg
from pixelwise.data.formats.cityscapes import LABEL_TO_TRAIN
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import LabelError
from tests.data.formats.helpers import camvid_pairs, save, tree_bytes

# CamVid class -> a Cityscapes labelId (sky 23, building 11, pole 17, road 7, sidewalk 8, tree 21,
# sign 20, fence 13, car 26, person 24, bicycle 33, void -> ego vehicle 1)
CAMVID_TO_LABELID = np.array([23, 11, 17, 7, 8, 21, 20, 13, 26, 24, 33, 1], np.uint8)


def _cityscapes(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for i, (_, img, lab) in enumerate(camvid_pairs(3)):
        split = "train" if i < 2 else "val"
        stem = f"aachen_{i:06d}_000019"
        ids = CAMVID_TO_LABELID[lab]
        ids[0, :3] = 9  # parking: no trainId
        save(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", img)
        save(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", ids)
        inst = ids.astype(np.int32)
        car = lab == 8
        inst[car] = 26 * 1000 + np.arange(car.sum()) % 3  # three car instances
        Image.fromarray(inst.astype(np.uint16)).save(
            root / "gtFine" / split / "aachen" / f"{stem}_gtFine_instanceIds.png")
        truth[stem] = np.asarray(LABEL_TO_TRAIN, np.uint8)[ids]
    return truth


def test_cityscapes_label_and_instance_ids_give_train_ids(tmp_path):
    truth = _cityscapes(tmp_path / "cs")
    assert detect_format(tmp_path / "cs") == "cityscapes"
    r = open_source(tmp_path / "cs")
    assert len(r.names) == 19 and r.names[13] == "car"
    ri = open_source(tmp_path / "cs", source="instanceIds")
    for it, iti in zip(r.items(), ri.items()):
        t = truth[it.key]
        assert np.array_equal(r.label(it), t)
        assert np.array_equal(ri.label(iti), t)
        assert t[0, 0] == 255 and 13 in t  # parking ignored, cars are class 13
    before = tree_bytes(tmp_path / "cs")
    y = convert(tmp_path / "cs", tmp_path / "out", workers=0)
    assert tree_bytes(tmp_path / "cs") == before
    spec = DatasetSpec.load(y)
    assert set(spec.splits) == {"train", "val"}
    k = "aachen_000002_000019"
    assert np.array_equal(read_label(spec.root / "val" / "labels" / f"{k}.png"), truth[k])


def test_cityscapes_rejects_non_label_ids(tmp_path):
    _cityscapes(tmp_path / "cs")
    f = next((tmp_path / "cs" / "gtFine" / "train").rglob("*_labelIds.png"))
    Image.fromarray(np.full((32, 48), 200, np.uint8)).save(f)
    r = open_source(tmp_path / "cs")
    with pytest.raises(LabelError, match="not Cityscapes labelIds"):
        [r.label(it) for it in r.items()]


def test_sceneparse150_zero_label_shift(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    truth = {}
    for i, (_, img, lab) in enumerate(camvid_pairs(3)):
        d = "training" if i < 2 else "validation"
        ann = (lab.astype(np.uint8) * 13) % 151  # values 0..150; 0 = "other"
        save(base / "images" / d / f"ADE_{d[:5]}_{i:08d}.jpg", img)
        save(base / "annotations" / d / f"ADE_{d[:5]}_{i:08d}.png", ann)
        truth[f"ADE_{d[:5]}_{i:08d}"] = np.where(ann == 0, 255, ann.astype(np.int64) - 1)
    assert len(ADE150) == 150
    assert detect_format(tmp_path) == "ade20k"
    r = open_source(tmp_path)
    splits = {it.key: it.split for it in r.items()}
    assert sorted(set(splits.values())) == ["train", "val"]
    for it in r.items():
        assert np.array_equal(r.label(it), truth[it.key])
        assert (r.label(it) == 255).any()


def test_ade20k_full_seg_png_encoding(tmp_path):
    root = tmp_path / "ADE20K_2021_17_01"
    names = [f"obj{i}" for i in range(1, 3001)]  # > 255 classes: 16-bit masks
    (root / "objects.txt").parent.mkdir(parents=True)
    (root / "objects.txt").write_text("\n".join(names))
    truth = {}
    for i, (_, img, lab) in enumerate(camvid_pairs(2)):
        idx = lab.astype(np.int64) * 250 + 7  # 1-based ids up to 2757
        idx[lab == 11] = 0  # unlabelled
        folder = root / "images" / "ADE" / ("training" if i == 0 else "validation") / "urban" / "street"
        save(folder / f"ADE_x_{i}.jpg", img)
        seg = encode_seg(idx)
        seg[..., 2] = 5  # instance channel: ignored
        save(folder / f"ADE_x_{i}_seg.png", seg)
        assert np.array_equal(decode_seg(seg), idx)
        truth[f"ADE_x_{i}"] = np.where(idx == 0, 65535, idx - 1)
    assert detect_format(root) == "ade20k-full"
    r = open_source(root)
    assert r.ignore_index == 65535 and len(r.names) == 3000
    for it in r.items():
        got = r.label(it)
        assert got.dtype == np.uint16 and np.array_equal(got, truth[it.key])
    y = convert(root, tmp_path / "out", workers=0)
    spec = DatasetSpec.load(y)
    assert np.array_equal(read_label(spec.root / "val" / "labels" / "ADE_x_1.png"), truth["ADE_x_1"])
