"""data check on real files: every injected problem is found, with its file; --fix never
touches the source and its output checks clean."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.check import check_dataset, fix_dataset
from tests.conftest import write_dataset
from tests.data.formats.helpers import tree_bytes


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A tiny CamVid copy with one instance of each problem the checker must find."""
    y = write_dataset(tmp_path / "d", n_train=8, n_val=3, size=(32, 48))
    root = y.parent
    tr_i, tr_l = root / "train" / "images", root / "train" / "labels"
    imgs = sorted(tr_i.glob("*.jpg"))
    labs = sorted(tr_l.glob("*.png"))
    bad: dict[str, Path] = {}
    # 1 unpaired image
    shutil.copy(imgs[0], tr_i / "lonely.jpg")
    bad["unpaired"] = tr_i / "lonely.jpg"
    # 2 truncated image
    data = imgs[1].read_bytes()
    imgs[1].write_bytes(data[: len(data) // 2])
    bad["unreadable"] = imgs[1]
    # 3 size mismatch
    Image.open(labs[2]).resize((40, 30), Image.NEAREST).save(labs[2])
    bad["size"] = labs[2]
    # 4 unexpected values (few distinct: not JPEG-like)
    lab = np.asarray(Image.open(labs[3])).copy()
    lab[:4, :4] = 40
    Image.fromarray(lab).save(labs[3])
    bad["values"] = labs[3]
    # 5 a mask that went through JPEG once, saved back as PNG (values stay mostly in range)
    buf = io.BytesIO()
    Image.open(labs[4]).save(buf, format="JPEG", quality=75)
    Image.open(buf).save(labs[4])
    bad["jpeg"] = labs[4]
    # 6 a .jpg label file
    Image.open(labs[5]).convert("L").save(tr_l / "extra.jpg", quality=90)
    bad["jpeg_file"] = tr_l / "extra.jpg"
    # 7 RGB colour mask
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (128, 64, 128)
    rgb[:, 24:] = (128, 128, 128)
    Image.fromarray(rgb).save(labs[6])
    bad["rgb"] = labs[6]
    # 8 empty label (only ignore)
    Image.fromarray(np.full((32, 48), 11, np.uint8)).save(labs[7])
    bad["empty"] = labs[7]
    # 9 duplicate image across splits
    val_img = _first(root / "val" / "images", "*.jpg")
    shutil.copy(imgs[0], val_img)
    bad["duplicate"] = val_img
    return y, bad


def test_check_finds_each_problem_with_its_file(broken):
    y, bad = broken
    report = check_dataset(y, workers=0)
    by_kind: dict[str, set[Path]] = {}
    for p in report.problems:
        by_kind.setdefault(p.kind, set()).add(p.file)
        assert p.fix, p
    assert bad["unpaired"] in by_kind["unpaired"]
    assert bad["unreadable"] in by_kind["unreadable"]
    assert bad["size"] in by_kind["size"]
    assert bad["values"] in by_kind["values"]
    assert bad["jpeg"] in by_kind["jpeg"] and bad["jpeg_file"] in by_kind["jpeg"]
    assert bad["rgb"] in by_kind["rgb"]
    assert bad["empty"] in by_kind["empty"]
    dup = [p for p in report.problems if p.kind == "duplicate"]
    assert dup and dup[0].severity == "error" and bad["duplicate"] in dup[0].related + (dup[0].file,)
    assert not report.ok


def test_check_parallel_matches_serial(broken):
    y, _ = broken
    a = check_dataset(y, workers=0)
    b = check_dataset(y, workers=2)
    assert sorted(p.line() for p in a.problems) == sorted(p.line() for p in b.problems)


def test_check_clean_dataset_passes_and_cli_exit_codes(tmp_path, broken, capsys):
    y = write_dataset(tmp_path / "clean", n_train=3, n_val=2, size=(32, 48))
    report = check_dataset(y, workers=0)
    assert report.ok, report.text()
    assert main(["data", "check", str(y), "--workers", "0"]) == 0
    assert main(["data", "check", str(broken[0]), "--workers", "0"]) == 1
    out = capsys.readouterr().out
    assert "lonely.jpg" in out and "Fix:" in out


def test_fix_writes_a_new_clean_copy_and_leaves_source_alone(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=4, n_val=2, size=(32, 48))
    labs = sorted((y.parent / "train" / "labels").glob("*.png"))
    grey = np.asarray(Image.open(labs[0]))
    Image.fromarray(np.stack([grey] * 3, -1)).save(labs[0])  # 3-channel grey label
    shutil.copy(sorted((y.parent / "train" / "images").glob("*.jpg"))[0], y.parent / "train" / "images" / "x.jpg")
    before = tree_bytes(y.parent)
    report = check_dataset(y, workers=0)
    assert "grey-rgb" in report.kinds() and not report.ok
    new = fix_dataset(y, tmp_path / "fixed", report=report, workers=0)
    assert tree_bytes(y.parent) == before
    again = check_dataset(new, workers=0)
    assert again.ok, again.text()
    fixed = np.asarray(Image.open(new.parent / "train" / "labels" / labs[0].name))
    assert fixed.ndim == 2 and np.array_equal(fixed, grey)
    assert "x.jpg" in (new.parent / "FIXES.md").read_text()
    with pytest.raises(Exception, match="not empty"):
        fix_dataset(y, tmp_path / "fixed", workers=0)
