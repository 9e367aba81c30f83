"""VOC palette PNGs and RGB colour-coded masks (known tables, auto-detection, unknown colours)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format, open_source
from pixelwise.data.formats.colors import CAMVID11, CAMVID32, ColorTable
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec, default_palette
from pixelwise.errors import LabelError, PixelwiseError
from tests.data.formats.helpers import camvid_pairs, save, tree_bytes


def _voc(root: Path) -> dict[str, np.ndarray]:
    base = root / "VOCdevkit" / "VOC2012"
    truth = {}
    pal = [v for c in default_palette(256) for v in c]
    for i, (_, img, lab) in enumerate(camvid_pairs(3)):
        voc = lab.astype(np.uint8) + 1  # classes 1..12
        voc[lab == 11] = 255  # borders / void
        voc[:2, :] = 0
        save(base / "JPEGImages" / f"2007_{i:06d}.jpg", img)
        p = Image.fromarray(voc, "L").convert("P")
        p.putpalette(pal)
        (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        p.save(base / "SegmentationClass" / f"2007_{i:06d}.png")
        truth[f"2007_{i:06d}"] = voc
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000000\n2007_000001\n")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000002\n")
    return truth


def test_voc_palette_indices_splits_and_convert(tmp_path):
    truth = _voc(tmp_path / "voc")
    assert detect_format(tmp_path / "voc") == "voc"
    r = open_source(tmp_path / "voc")
    assert len(r.names) == 21 and r.ignore_index == 255
    assert {it.key: it.split for it in r.items()} == {"2007_000000": "train", "2007_000001": "train",
                                                      "2007_000002": "val"}
    for it in r.items():
        assert np.array_equal(r.label(it), truth[it.key])
    before = tree_bytes(tmp_path / "voc")
    y = convert(tmp_path / "voc", tmp_path / "out", workers=2)
    assert tree_bytes(tmp_path / "voc") == before
    spec = DatasetSpec.load(y)
    assert spec.names[15] == "person" and spec.ignore_index == 255
    assert np.array_equal(read_label(spec.root / "val" / "labels" / "2007_000002.png"), truth["2007_000002"])


def test_voc_grey_palette_class_stays_an_index(tmp_path):
    """VOC's car (index 7) is drawn (128, 128, 128): a label of only background and car."""
    _voc(tmp_path / "voc")
    lab = tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000000.png"
    arr = np.zeros((32, 48), np.uint8)
    arr[5:20, 5:30] = 7
    p = Image.fromarray(arr, "L").convert("P")
    p.putpalette([v for c in default_palette(256) for v in c])
    p.save(lab)
    r = open_source(tmp_path / "voc")
    item = next(it for it in r.items() if it.key == "2007_000000")
    assert np.array_equal(r.label(item), arr)


def test_voc_missing_listed_image_names_the_line(tmp_path):
    _voc(tmp_path / "voc")
    lst = tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt"
    lst.write_text("2007_000002\n2007_999999\n")
    with pytest.raises(Exception, match=r"val.txt:2: image 2007_999999.jpg"):
        list(open_source(tmp_path / "voc").items())


def _colour_dataset(root: Path, table: list, with_colors: bool = False, jpeg: bool = False):
    colors = [c for c, _ in table]
    pairs = camvid_pairs(3)
    truth = {}
    camvid11 = [c for c, _ in CAMVID11]
    for s, img, lab in pairs:
        rgb = np.asarray(camvid11 + [(0, 0, 0)] * 245, np.uint8)[lab]  # CamVid colours (void black)
        if table is not CAMVID11:
            idx = np.asarray([i for i in range(len(colors))], np.int64)
            rgb = np.asarray(colors, np.uint8)[idx[lab % len(colors)]]
        save(root / "train" / "images" / f"{s}.png", img)
        save(root / "train" / "labels" / f"{s}.png", rgb)
        truth[s] = lab
    desc = {"path": ".", "train": "train", "format": "colors", "names": ["x"]}
    if with_colors:
        desc["names"] = [n for _, n in table]
        desc["colors"] = [list(c) for c, _ in table]
    (root / "dataset.yaml").write_text(yaml.safe_dump(desc))
    return truth


def test_colour_masks_autodetect_camvid_table(tmp_path):
    truth = _colour_dataset(tmp_path / "c", CAMVID11)
    r = open_source(tmp_path / "c")
    assert r.format == "colors" and r.table.name == "camvid11"
    assert r.names[:3] == ["Sky", "Building", "Pole"]
    for it in r.items():
        expect = truth[it.key].copy()
        expect[expect == 11] = r.ignore_index
        assert np.array_equal(r.label(it), expect)


def test_colour_masks_camvid32_table_file_and_yaml_colours(tmp_path):
    _colour_dataset(tmp_path / "c", CAMVID32)
    r = open_source(tmp_path / "c", table="camvid32")
    assert len(r.names) == 31  # Void is ignore, not a class
    txt = tmp_path / "label_colors.txt"
    txt.write_text("\n".join(f"{c[0]} {c[1]} {c[2]} {n}" for c, n in CAMVID32))
    r2 = open_source(tmp_path / "c", table=str(txt))
    for it in r.items():
        assert np.array_equal(r.label(it), r2.label(it))
        # every label value maps back to the colour written
        lab = r.label(it)
        shown = np.asarray(Image.open(it.ref).convert("RGB"))
        void = lab == r.ignore_index
        assert np.array_equal(np.asarray(r.colors, np.uint8)[lab[~void]], shown[~void])
    assert ColorTable.load(txt).void == [(0, 0, 0)]


def test_unknown_colours_are_listed_with_counts(tmp_path):
    _colour_dataset(tmp_path / "c", CAMVID11)
    lab = sorted((tmp_path / "c" / "train" / "labels").glob("*.png"))[1]
    arr = np.asarray(Image.open(lab)).copy()
    arr[0, :5] = (1, 2, 3)
    arr[1, :2] = (250, 0, 250)
    Image.fromarray(arr).save(lab)
    with pytest.raises(LabelError) as e:
        open_source(tmp_path / "c")  # auto-detection sees colours in no table
    assert "(1, 2, 3) x5" in str(e.value) and "(250, 0, 250) x2" in str(e.value)
    r = open_source(tmp_path / "c", table="camvid11")
    item = [it for it in r.items() if it.ref == lab][0]
    with pytest.raises(LabelError, match=r"\(1, 2, 3\) x5.*\(250, 0, 250\) x2"):
        r.label(item)


def test_colour_masks_without_format_key_are_detected_and_a_failed_convert_leaves_nothing(tmp_path):
    """A YAML with 'colors:' and RGB label PNGs, no 'format:': convert read it as class-id masks,
    failed, and left a half-written folder that refused the retry ('not empty')."""
    truth = _colour_dataset(tmp_path / "c", CAMVID11, with_colors=True)
    y = tmp_path / "c" / "dataset.yaml"
    desc = yaml.safe_load(y.read_text())
    del desc["format"]
    y.write_text(yaml.safe_dump(desc))
    assert detect_format(y) == "colors"
    with pytest.raises(PixelwiseError, match="--format colors --to masks"):  # what masks training says
        convert(y, tmp_path / "half" / "deep" / "out", format="masks", workers=0)
    assert not (tmp_path / "half").exists()  # removed on failure, with the parents made for it
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixelwiseError):
        convert(y, tmp_path / "empty", format="masks", workers=0)
    assert (tmp_path / "empty").is_dir() and not list((tmp_path / "empty").iterdir())  # kept, emptied
    out = convert(y, tmp_path / "empty", workers=0)
    for s, lab in truth.items():
        got = read_label(out.parent / "train" / "labels" / f"{s}.png")
        assert np.array_equal(got[lab != 11], lab[lab != 11])
