"""YOLO polygon .txt labels (Ultralytics layout) and LabelMe JSON; masks -> YOLO round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format, open_source
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError
from tests.conftest import write_dataset
from tests.data.formats.helpers import camvid_pairs, save


def _yolo(root: Path) -> Path:
    for i, (s, img, _) in enumerate(camvid_pairs(2)):
        split = "train" if i == 0 else "val"
        save(root / "images" / split / f"{s}.jpg", img)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        # a big 'road' square and a small 'car' square on top of it; w=48, h=32
        (root / "labels" / split / f"{s}.txt").write_text(
            "1 0.5 0.25 0.625 0.25 0.625 0.5 0.5 0.5\n"  # car: x 24..30, y 8..16 (listed first)
            "0 0.25 0.125 0.875 0.125 0.875 0.875 0.25 0.875\n")  # road: x 12..42, y 4..28
    save(root / "images" / "train" / "negative.jpg", np.zeros((32, 48, 3), np.uint8))
    y = root / "data.yaml"
    y.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                 "names": {0: "road", 1: "car"}}))
    return y


def test_yolo_polygons_classes_overlap_and_negatives(tmp_path):
    y = _yolo(tmp_path / "yolo")
    assert detect_format(y) == "yolo"
    r = open_source(y)
    assert r.names == ["background", "road", "car"]
    labels = {it.key: r.label(it) for it in r.items()}
    neg = labels.pop("negative")
    assert (neg == 0).all()
    for lab in labels.values():
        assert lab.shape == (32, 48)
        assert (lab[10:15, 25:30] == 2).all()  # small car on top of the road
        assert (lab[6:27, 14:22] == 1).all() and (lab[:3] == 0).all() and (lab[:, :10] == 0).all()
    out = convert(y, tmp_path / "masks", workers=0)
    spec = DatasetSpec.load(out)
    assert set(spec.splits) == {"train", "val"} and spec.names[2] == "car"


def test_yolo_bad_lines_name_file_and_line(tmp_path):
    y = _yolo(tmp_path / "yolo")
    txt = sorted((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))[0]
    txt.write_text("0 0.1 0.1 0.5 0.5 0.2 0.9\n1 0.5 0.5 0.2 0.2\n")
    r = open_source(y)
    item = next(it for it in r.items() if it.ref == txt)
    with pytest.raises(DatasetError, match=r":2: polygon with 2 point\(s\) \(a detection box"):
        r.label(item)
    txt.write_text("5 0.1 0.1 0.5 0.5 0.2 0.9\n")
    with pytest.raises(DatasetError, match=r":1: class 5 is not in the YAML's names"):
        r.label(item)
    txt.write_text("0 -0.2 0.1 0.5 0.5 0.2 1.3\n")
    with pytest.warns(UserWarning, match="outside \\[0, 1\\]; clipped"):
        assert (r.label(item) == 1).any()


def test_masks_to_yolo_round_trip_is_close(tmp_path):
    ds = write_dataset(tmp_path / "cam", n_train=2, n_val=1, size=(64, 96))
    y = convert(ds, tmp_path / "yolo", to="yolo", workers=0)
    assert yaml.safe_load(y.read_text())["names"][0] == "Sky"  # no background class to drop
    r = open_source(y)
    agree = []
    for it in r.items():
        orig = read_label(ds.parent / it.split / "labels" / f"{it.key}.png").astype(np.int64)
        back = r.label(it).astype(np.int64) - 1  # reader adds 'background' at 0
        valid = orig != 11
        agree.append((back[valid] == orig[valid]).mean())
    assert min(agree) > 0.85, agree  # lossy: boundaries, holes, thin regions


def _labelme(root: Path) -> Path:
    s, img, _ = camvid_pairs(1)[0]
    save(root / "train" / f"{s}.jpg", img)
    doc = {"version": "5.4.1", "imagePath": f"{s}.jpg", "imageHeight": 32, "imageWidth": 48,
           "imageData": None, "shapes": [
               {"label": "road", "points": [[0, 16], [47, 16], [47, 31], [0, 31]],
                "shape_type": "polygon", "group_id": None},
               {"label": "car", "points": [[5, 18], [15, 25]], "shape_type": "rectangle", "group_id": 1},
               {"label": "car", "points": [[16, 18], [20, 18], [20, 25]], "shape_type": "polygon",
                "group_id": 1},  # second part of the same car
               {"label": "__ignore__", "points": [[30, 0], [40, 0], [40, 8], [30, 8]],
                "shape_type": "polygon", "group_id": None},
               {"label": "sign", "points": [[44, 4], [46, 6]], "shape_type": "circle", "group_id": None},
               {"label": "car", "points": [[1, 1], [3, 3]], "shape_type": "line", "group_id": None}]}
    (root / "train" / f"{s}.json").write_text(json.dumps(doc))
    (root / "labels.txt").write_text("__ignore__\n_background_\nroad\ncar\nsign\n")
    return root / "train" / f"{s}.json"


def test_labelme_shapes_groups_ignore_and_order(tmp_path):
    jf = _labelme(tmp_path / "lm")
    assert detect_format(tmp_path / "lm") == "labelme"
    with pytest.warns(UserWarning, match="shape 5 .* has no area"):
        r = open_source(tmp_path / "lm")
        lab = r.label(next(r.items()))
    assert r.names == ["_background_", "road", "car", "sign"]
    assert (lab[20:31, 25:45] == 1).all()  # road
    assert (lab[18:26, 5:16] == 2).all() and lab[20, 18] == 2  # both parts of the car, over the road
    assert (lab[0:9, 30:41] == 255).all()  # __ignore__
    assert lab[4, 44] == 3 and lab[10, 10] == 0
    out = convert(tmp_path / "lm", tmp_path / "masks", workers=0)
    assert np.array_equal(read_label(out.parent / "train" / "labels" / f"{jf.stem}.png"), lab)


def test_labelme_bad_input(tmp_path):
    jf = _labelme(tmp_path / "lm")
    doc = json.loads(jf.read_text())
    doc["shapes"][0]["points"] = [[0, 0], [5, 5]]
    jf.write_text(json.dumps(doc))
    r = open_source(tmp_path / "lm")
    with pytest.raises(DatasetError, match=r"shape 0 \('road'\) is a polygon with 2 point"):
        r.label(next(r.items()))
    doc["shapes"][0]["label"] = "tram"
    jf.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"shape 0 has label 'tram' not in"):
        open_source(tmp_path / "lm")
    doc["shapes"][0]["label"] = "road"
    doc["imagePath"] = "gone.jpg"
    jf.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"image 'gone.jpg' is referenced but missing"):
        open_source(tmp_path / "lm")
    jf.write_text('{"shapes": [}')
    with pytest.raises(DatasetError, match=r"not valid JSON at line 1"):
        open_source(tmp_path / "lm")
