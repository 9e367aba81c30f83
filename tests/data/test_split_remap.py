"""data split (reproducible, stratified) and data remap (merge / rename / drop) on real labels."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.io import read_label
from pixelwise.data.pairing import paired_samples
from pixelwise.data.remap import remap_dataset
from pixelwise.data.spec import DatasetSpec
from pixelwise.data.split import assign, split_dataset
from pixelwise.errors import ConfigError
from tests.conftest import write_dataset
from tests.data.formats.helpers import tree_bytes


def _stems(yaml_path, split):
    return sorted(s.stem for s in paired_samples(DatasetSpec.load(yaml_path).split(split)))


def test_split_is_reproducible_complete_and_leaves_source(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=8, n_val=4, size=(32, 48))
    before = tree_bytes(y.parent)
    a = split_dataset(y, tmp_path / "a", fractions=[0.5, 0.25, 0.25], seed=3, workers=0)
    b = split_dataset(y, tmp_path / "b", fractions=[0.5, 0.25, 0.25], seed=3, workers=0)
    c = split_dataset(y, tmp_path / "c", fractions=[0.5, 0.25, 0.25], seed=4, workers=0)
    assert tree_bytes(y.parent) == before
    parts = [_stems(a, s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [6, 3, 3]
    assert sorted(sum(parts, [])) == sorted(_stems(y, "train") + _stems(y, "val"))
    assert parts == [_stems(b, s) for s in ("train", "val", "test")]
    assert parts != [_stems(c, s) for s in ("train", "val", "test")]


def test_stratified_assignment_keeps_rare_classes_in_every_split():
    rng = np.random.default_rng(0)
    n = 200
    presence = np.zeros((n, 4), bool)
    presence[:, 0] = True
    presence[rng.choice(n, 10, replace=False), 1] = True  # rare: 5% of images
    presence[rng.choice(n, 60, replace=False), 2] = True
    strat = assign(presence, [0.8, 0.2], seed=0, n=n)
    for seed in range(5):
        assert assign(presence, [0.8, 0.2], seed=seed, n=n).sum() in (40, 41, 39)
    val = presence[strat == 1]
    assert abs(val[:, 1].sum() - 2) <= 1 and abs(val[:, 2].sum() - 12) <= 2
    # without stratification some seed leaves the rare class badly skewed
    skew = [abs(presence[assign(None, [0.8, 0.2], s, n) == 1][:, 1].sum() - 2) for s in range(20)]
    assert max(skew) >= 2


def test_stratified_split_on_files(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=8, n_val=2, size=(32, 48))
    out = split_dataset(y, tmp_path / "s", fractions=[0.7, 0.3], stratify=True, seed=1, workers=2)
    assert len(_stems(out, "train")) + len(_stems(out, "val")) == 10
    assert main(["data", "split", str(y), "--out", str(tmp_path / "cli"), "--fractions", "0.7,0.3",
                 "--stratify", "--seed", "1", "--workers", "0"]) == 0
    assert _stems(tmp_path / "cli" / "dataset.yaml", "val") == _stems(out, "val")


def test_remap_merge_rename_drop(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=3, n_val=1, size=(32, 48))
    before = tree_bytes(y.parent)
    out = remap_dataset(y, tmp_path / "r", merge=["Car,Pedestrian,Bicyclist=Dynamic"],
                        rename=["Sky=sky"], drop=["Pole", "SignSymbol"], workers=0)
    assert tree_bytes(y.parent) == before
    spec = DatasetSpec.load(out)
    assert spec.names == ["sky", "Building", "Road", "Pavement", "Tree", "Fence", "Dynamic"]
    assert spec.ignore_index == 11
    for lab_path in sorted((y.parent / "train" / "labels").glob("*.png")):
        old = np.asarray(Image.open(lab_path))
        new = read_label(spec.root / "train" / "labels" / lab_path.name)
        expect = np.array([0, 1, 11, 2, 3, 4, 11, 5, 6, 6, 6, 11])[old]
        assert np.array_equal(new, expect)
    out2 = remap_dataset(y, tmp_path / "r2", drop=["Pole"], drop_to="Building", workers=0)
    lab = sorted((y.parent / "train" / "labels").glob("*.png"))[0]
    old = np.asarray(Image.open(lab))
    new = read_label(out2.parent / "train" / "labels" / lab.name)
    assert (new[old == 2] == 1).all() and (new[old == 3] == 2).all()
    with pytest.raises(ConfigError, match="Unknown class 'Boat'"):
        remap_dataset(y, tmp_path / "r3", drop=["Boat"])
    # a merge into an existing class's name joins it (was: two classes named 'Road')
    out4 = remap_dataset(y, tmp_path / "r4", merge=["Pavement,Car=Road"], workers=0)
    spec4 = DatasetSpec.load(out4)
    assert spec4.names.count("Road") == 1 and "Pavement" not in spec4.names and "Car" not in spec4.names
    new = read_label(out4.parent / "train" / "labels" / lab.name)
    road = spec4.names.index("Road")
    assert (new[(old == 3) | (old == 4) | (old == 8)] == road).all()
    # reusing a name an option frees, or naming a member twice, is not a clash (worked before the join rule)
    from pixelwise.data.remap import build_mapping

    spec = DatasetSpec.load(y)
    assert build_mapping(spec, merge=["Car,Pedestrian=Sky"], rename=["Sky=Heaven"]).names[0] == "Heaven"
    assert "Vehicle" in build_mapping(spec, merge=["Car,Car=Vehicle"]).names
    swapped = build_mapping(spec, merge=["Car=Pedestrian", "Pedestrian=Car"]).names
    assert swapped[8:10] == ["Pedestrian", "Car"]
    kept = build_mapping(spec, merge=["Car,Pedestrian=Pole"], drop=["Pole"])  # Pole dropped alone, not joined
    assert "Pole" in kept.names and kept.lut[8] == kept.names.index("Pole") and kept.lut[2] == kept.ignore_index
    refused = {"would name two classes 'Building'": dict(rename=["Sky=Building"]),
               "changed twice \\(--merge Car=Vehicle and --rename Car=Auto\\)": dict(merge=["Car=Vehicle"],
                                                                                  rename=["Car=Auto"]),
               "changed twice": dict(merge=["Car,Tree=A", "Car,Fence=B"])}
    for says, options in refused.items():  # was: silently written (duplicate names, a merge dropped)
        with pytest.raises(ConfigError, match=says):
            remap_dataset(y, tmp_path / "r5", workers=0, **options)
        assert not (tmp_path / "r5").exists()


def test_split_keeps_every_image_when_source_splits_reuse_names(tmp_path):
    """train/ and val/ both numbered from 0000 (common): pooled, one copy must not land on another."""
    y = write_dataset(tmp_path / "d", n_train=4, n_val=3, size=(32, 48))
    pairs = {}
    for split in ("train", "val"):
        for i, s in enumerate(sorted(paired_samples(DatasetSpec.load(y).split(split)), key=lambda s: s.stem)):
            for kind in ("images", "labels"):
                old = s.image if kind == "images" else s.label
                new = old.with_name(f"{i:04d}{old.suffix}")
                old.rename(new)
            pairs[(split, f"{i:04d}")] = read_label(y.parent / split / "labels" / f"{i:04d}.png")
    (y.parent / "val" / "images" / "train_0001.jpg").write_bytes(  # the prefixed name is taken too
        (y.parent / "val" / "images" / "0001.jpg").read_bytes())
    Image.fromarray(pairs[("val", "0001")]).save(y.parent / "val" / "labels" / "train_0001.png")
    out = split_dataset(y, tmp_path / "s", fractions=[0.5, 0.5], seed=0, workers=0)
    got = {st: read_label(DatasetSpec.load(out).root / sp / "labels" / f"{st}.png")
           for sp in ("train", "val") for st in _stems(out, sp)}
    assert len(got) == 8  # 4 + 3 + 1: none lost
    assert "train_0001" in got and "val_0001" in got and "train_0001_2" in got
    assert np.array_equal(got["train_0001_2"], pairs[("train", "0001")])
    assert np.array_equal(got["val_0002"], pairs[("val", "0002")]) and np.array_equal(got["0003"], pairs[("train", "0003")])
    assert "Renamed" in (out.parent / "SPLIT.md").read_text()
