"""COCO instances via pycocotools: polygons, multi-part polygons, both RLE kinds, crowd,
overlaps, category remapping, bad input; COCO panoptic; masks <-> COCO round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format, open_source
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError
from tests.conftest import write_dataset
from tests.data.formats.helpers import camvid_pairs, save, tree_bytes

CATS = [{"id": 3, "name": "building"}, {"id": 7, "name": "road"}, {"id": 18, "name": "car"},
        {"id": 44, "name": "person"}]


def _rle(mask: np.ndarray, compressed: bool = True) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": r["size"], "counts": r["counts"].decode()}
    flat = mask.astype(np.uint8).ravel(order="F")  # uncompressed: run lengths, column-major
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    return {"size": list(mask.shape), "counts": runs}


def _coco(root: Path) -> tuple[Path, list]:
    """instances_train.json over real CamVid crops; returns the file and the label crops."""
    pairs = camvid_pairs(2)
    images, anns = [], []
    for i, (s, img, lab) in enumerate(pairs):
        save(root / "train" / f"{s}.jpg", img)
        h, w = lab.shape
        images.append({"id": i + 1, "file_name": f"{s}.jpg", "height": h, "width": w})
        base = 10 * i
        anns += [
            {"id": base + 1, "image_id": i + 1, "category_id": 3, "iscrowd": 0,
             "segmentation": _rle(lab == 1)},  # compressed RLE
            {"id": base + 2, "image_id": i + 1, "category_id": 18, "iscrowd": 0,
             "segmentation": _rle(lab == 8, compressed=False)},  # uncompressed RLE
            {"id": base + 3, "image_id": i + 1, "category_id": 7, "iscrowd": 0,  # two-part polygon
             "segmentation": [[2, 2, 12, 2, 12, 9, 2, 9], [30, 20, 44, 20, 44, 30, 30, 30]]},
            {"id": base + 4, "image_id": i + 1, "category_id": 18, "iscrowd": 0,  # small, on top
             "segmentation": [[14, 3, 20, 3, 20, 8, 14, 8]]},
            {"id": base + 5, "image_id": i + 1, "category_id": 44, "iscrowd": 1,
             "segmentation": _rle(np.pad(np.ones((8, 10), bool), ((h - 8, 0), (0, w - 10))), False)},
        ]
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "instances_train.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}, indent=1))
    return path, pairs


def _expected(path: Path, image_id: int, crowd: str = "ignore") -> np.ndarray:
    """The documented rule, painted with pycocotools' own COCO API as the oracle."""
    api = COCO(str(path))
    info = api.imgs[image_id]
    out = np.zeros((info["height"], info["width"]), np.uint8)
    cls = {3: 1, 7: 2, 18: 3, 44: 4}
    anns = api.loadAnns(api.getAnnIds(imgIds=[image_id]))
    if crowd == "ignore":
        for a in anns:
            if a["iscrowd"]:
                out[api.annToMask(a) > 0] = 255
        anns = [a for a in anns if not a["iscrowd"]]
    masks = sorted(((a, api.annToMask(a) > 0) for a in anns), key=lambda am: (-am[1].sum(), am[0]["id"]))
    for a, m in masks:
        out[m] = cls[a["category_id"]]
    return out


def test_coco_polygons_rle_crowd_overlap_and_category_remap(tmp_path):
    path, pairs = _coco(tmp_path / "coco")
    assert detect_format(path) == "coco" and detect_format(tmp_path / "coco") == "coco"
    r = open_source(path)
    assert r.names == ["background", "building", "road", "car", "person"]
    items = list(r.items())
    assert [it.split for it in items] == ["train", "train"]
    for i, it in enumerate(items):
        got = r.label(it)
        assert np.array_equal(got, _expected(path, i + 1))
        lab = pairs[i][2]
        car = got[lab == 8]  # uncompressed RLE: car, unless a smaller road polygon lies on top
        assert np.isin(car, [2, 3]).all() and (car == 3).mean() > 0.5
        assert (got[3:8, 14:20] == 3).all()  # the small car polygon is painted over the rest
        assert (got[-8:, :10][~np.isin(got[-8:, :10], [1, 2, 3])] == 255).all()  # crowd = ignore
    r2 = open_source(path, crowd="class")
    assert np.array_equal(r2.label(items[0]), _expected(path, 1, crowd="class"))


def test_coco_convert_to_masks_and_round_trip_masks_coco(tmp_path):
    path, _ = _coco(tmp_path / "coco")
    before = tree_bytes(tmp_path / "coco")
    y = convert(path, tmp_path / "masks", workers=0)
    assert tree_bytes(tmp_path / "coco") == before
    spec = DatasetSpec.load(y)
    assert spec.names[0] == "background"
    first = sorted((spec.root / "train" / "labels").glob("*.png"))[0]
    assert np.array_equal(read_label(first), _expected(path, 1))
    # masks -> COCO -> masks is exact (ignore pixels stay ignore)
    ds = write_dataset(tmp_path / "cam", n_train=2, n_val=1, size=(32, 48))
    ann = convert(ds, tmp_path / "as_coco", to="coco", workers=0)
    assert (ann / "instances_train.json").exists() and (ann / "instances_val.json").exists()
    COCO(str(ann / "instances_train.json"))  # loads with the reference API
    back = open_source(tmp_path / "as_coco")
    assert back.names == DatasetSpec.load(ds).names and back.ignore_index == 11
    for it in back.items():
        orig = read_label(ds.parent / it.split / "labels" / f"{it.key}.png")
        assert np.array_equal(back.label(it), orig)


def _bad(tmp_path: Path, edit) -> Path:
    path, _ = _coco(tmp_path / "coco")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))
    return path


def test_coco_bad_input_names_file_line_and_annotation(tmp_path):
    path, _ = _coco(tmp_path / "c1")
    text = path.read_text().splitlines()
    text[5] = text[5] + ",,"
    path.write_text("\n".join(text))
    with pytest.raises(DatasetError, match=r"instances_train.json is not valid JSON at line 6"):
        open_source(path)
    with pytest.raises(DatasetError, match=r"annotation 4 has a polygon with 2 point"):
        open_source(_bad(tmp_path / "c2", lambda d: d["annotations"][3].update(segmentation=[[1, 1, 5, 5]])))
    with pytest.raises(DatasetError, match=r"annotation 2 has unknown category id 99"):
        open_source(_bad(tmp_path / "c3", lambda d: d["annotations"][1].update(category_id=99)))
    with pytest.raises(DatasetError, match=r"image id 2 references .*missing"):
        open_source(_bad(tmp_path / "c4", lambda d: d["images"][1].update(file_name="nope.jpg")))
    with pytest.raises(DatasetError, match=r"annotation 1 refers to unknown image id 77"):
        open_source(_bad(tmp_path / "c5", lambda d: d["annotations"][0].update(image_id=77)))
    p6 = _bad(tmp_path / "c6", lambda d: d["annotations"][3].update(
        segmentation=[[14, -5, 60, 3, 20, 8, 14, 8]]))
    with pytest.warns(UserWarning, match=r"annotation 4 has points outside its 48x32 image; clipped"):
        r = open_source(p6)
    assert r.label(next(r.items())).shape == (32, 48)


def test_coco_panoptic_png_and_json(tmp_path):
    root = tmp_path / "pan"
    cats = [{"id": 1, "name": "sky", "isthing": 0}, {"id": 5, "name": "building", "isthing": 0},
            {"id": 9, "name": "car", "isthing": 1}]
    images, anns, truth = [], [], {}
    for i, (s, img, lab) in enumerate(camvid_pairs(2)):
        save(root / "val2017" / f"{s}.jpg", img)
        seg = np.zeros(lab.shape, np.int64)
        seg[lab == 0] = 1 + 256 * 3  # sky segment, id 769
        seg[lab == 1] = 70000  # building, id needs all three channels
        seg[lab == 8] = 12
        seg[lab == 9] = 13  # a crowd of cars
        rgb = np.stack([seg % 256, seg // 256 % 256, seg // 65536], -1).astype(np.uint8)
        save(root / "annotations" / "panoptic_val2017" / f"{s}.png", rgb)
        images.append({"id": i, "file_name": f"{s}.jpg", "height": 32, "width": 48})
        anns.append({"image_id": i, "file_name": f"{s}.png", "segments_info": [
            {"id": 769, "category_id": 1, "iscrowd": 0}, {"id": 70000, "category_id": 5, "iscrowd": 0},
            {"id": 12, "category_id": 9, "iscrowd": 0}, {"id": 13, "category_id": 9, "iscrowd": 1}]})
        t = np.full(lab.shape, 255, np.uint8)
        t[lab == 0], t[lab == 1], t[lab == 8] = 0, 1, 2
        truth[s] = t
    jp = root / "annotations" / "panoptic_val2017.json"
    jp.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    assert detect_format(jp) == "coco-panoptic"
    r = open_source(jp)
    assert r.names == ["sky", "building", "car"]
    for it in r.items():
        assert it.split == "val" and np.array_equal(r.label(it), truth[it.key])
    anns[0]["segments_info"].pop(0)  # a PNG segment missing from the JSON
    jp.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    r = open_source(jp)
    with pytest.raises(Exception, match=r"segment id\(s\) \[769\] missing from the JSON"):
        r.label(next(r.items()))


def test_convert_warns_when_a_coco_size_is_not_the_displayed_image_size(tmp_path):
    """A tool that ignores EXIF records a phone photo's stored size: the converted label was only
    refused later, by training. Converting now says which image and why, and still converts."""
    from PIL import Image

    root = tmp_path / "coco"
    (root / "train").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 20 high, displayed turned: 20 wide x 40 high
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(root / "train" / "phone.jpg", exif=exif.tobytes())
    save(root / "train" / "plain.jpg", np.zeros((20, 40, 3), np.uint8))
    images = [{"id": 1, "file_name": "phone.jpg", "height": 20, "width": 40},
              {"id": 2, "file_name": "plain.jpg", "height": 20, "width": 40}]
    anns = [{"id": i, "image_id": i, "category_id": 3, "iscrowd": 0, "segmentation": [[2, 2, 12, 2, 12, 9]]}
            for i in (1, 2)]
    (root / "annotations").mkdir()
    path = root / "annotations" / "instances_train.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    with pytest.warns(UserWarning) as caught:
        out = convert(path, tmp_path / "masks", workers=0)
    messages = [str(w.message) for w in caught if "displayed" in str(w.message)]
    assert len(messages) == 1 and "phone.jpg" in messages[0] and "40x20" in messages[0] \
        and "EXIF orientation" in messages[0], messages
    assert (out.parent / "train" / "labels" / "phone.png").exists()


def test_a_coco_folder_with_images_beside_annotations_is_detected_as_coco(tmp_path):
    """annotations/instances_train.json + images/: the ADE20K test (annotations/ + images/) ran
    first and claimed it, and the conversion then found no labelled image."""
    from pixelwise.data.formats import detect_format

    path, _ = _coco(tmp_path / "coco")
    (tmp_path / "coco" / "train").rename(tmp_path / "coco" / "images")
    assert detect_format(tmp_path / "coco") == "coco"
    y = convert(tmp_path / "coco", tmp_path / "masks", workers=0)
    first = sorted((DatasetSpec.load(y).root / "train" / "labels").glob("*.png"))[0]
    assert np.array_equal(read_label(first), _expected(path, 1))
