"""Mask folders (DRIVE-style suffixes, TIFF/GIF labels, palette PNGs) and binary/medical masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format, open_source
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec, default_palette
from tests.data.formats.helpers import camvid_pairs, save, tree_bytes


def _drive(root: Path, values: str = "0/255") -> list[np.ndarray]:
    """DRIVE layout: images/21_training.tif <-> labels/21_manual1.gif."""
    truths = []
    for i, (_, img, lab) in enumerate(camvid_pairs(3)):
        fg = lab == 3  # road as the "vessel" foreground
        stem = 21 + i
        save(root / "train" / "images" / f"{stem}_training.tif", img)
        mask = {"0/255": fg * 255, "0/1": fg * 1, "inverted": (~fg) * 255}[values].astype(np.uint8)
        (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).convert("P" if values == "0/1" else "L").save(
            root / "train" / "labels" / f"{stem}_manual1.gif")
        truths.append(fg.astype(np.uint8))
    (root / "dataset.yaml").write_text(yaml.safe_dump({
        "path": ".", "train": "train", "image_suffix": "_training", "label_suffix": "_manual1",
        "names": ["background", "vessel"], "format": "binary"}))
    return truths


def test_drive_suffix_pairing_tif_gif_and_binary_conversion(tmp_path):
    truths = _drive(tmp_path / "drive")
    assert detect_format(tmp_path / "drive") == "binary"
    r = open_source(tmp_path / "drive")
    items = list(r.items())
    assert [it.image.name for it in items] == ["21_training.tif", "22_training.tif", "23_training.tif"]
    assert [it.ref.name for it in items] == ["21_manual1.gif", "22_manual1.gif", "23_manual1.gif"]
    for it, t in zip(items, truths):
        assert np.array_equal(r.label(it), t)
    before = tree_bytes(tmp_path / "drive")
    y = convert(tmp_path / "drive", tmp_path / "out", workers=0)
    assert tree_bytes(tmp_path / "drive") == before
    spec = DatasetSpec.load(y)
    assert spec.names == ["background", "vessel"]
    for it, t in zip(items, truths):
        key = it.image.stem[: -len("_training")]
        assert np.array_equal(read_label(spec.root / "train" / "labels" / f"{key}.png"), t)


def test_binary_variants_01_and_inverted(tmp_path):
    t01 = _drive(tmp_path / "a", "0/1")
    r = open_source(tmp_path / "a")
    assert all(np.array_equal(r.label(it), t) for it, t in zip(r.items(), t01))
    tinv = _drive(tmp_path / "b", "inverted")
    r = open_source(tmp_path / "b", invert=True)
    assert all(np.array_equal(r.label(it), t) for it, t in zip(r.items(), tinv))


def test_16bit_instance_labels_become_foreground(tmp_path):
    root = tmp_path / "cells"
    truths = []
    for i, (s, img, lab) in enumerate(camvid_pairs(2)):
        inst = np.zeros(lab.shape, np.uint16)
        inst[lab == 8] = 1000 + i  # instance ids above 255
        inst[lab == 9] = 40000
        save(root / "train" / "images" / f"{s}.png", img)
        (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(inst).save(root / "train" / "labels" / f"{s}.png")
        truths.append(((lab == 8) | (lab == 9)).astype(np.uint8))
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "train", "names": ["background", "cell"], "format": "binary"}))
    r = open_source(root, mode="instances")
    assert all(np.array_equal(r.label(it), t) for it, t in zip(r.items(), truths))


def test_palette_png_and_tiff_mask_folder_values_are_indices(tmp_path):
    root = tmp_path / "m"
    pairs = camvid_pairs(2)
    for s, img, lab in pairs:
        save(root / "train" / "images" / f"{s}.jpg", img)
        p = Image.fromarray(lab).convert("P")
        p.putpalette([v for c in default_palette(256) for v in c])  # colours differ from indices
        (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
        p.save(root / "train" / "labels" / f"{s}.png")
        save(root / "val" / "images" / f"{s}.jpg", img)
        save(root / "val" / "labels" / f"{s}.tif", lab)
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "train", "val": "val", "ignore_index": 11, "names": [str(i) for i in range(11)]}))
    r = open_source(root)
    assert r.format == "masks"
    got = {(it.split, it.key): r.label(it) for it in r.items()}
    for s, _, lab in pairs:
        assert np.array_equal(got[("train", s)], lab) and np.array_equal(got[("val", s)], lab)
