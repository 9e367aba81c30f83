"""convert via the CLI: new folder only, never over or inside the source; --opt reader options;
real annotation samples (../shared/datasets/samples/<format>) when that folder exists."""
from __future__ import annotations

import numpy as np
import pytest

from pixelwise.cli import main
from pixelwise.data.convert import convert
from pixelwise.data.formats import open_source
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError
from tests.conftest import write_dataset
from tests.data.formats.helpers import SAMPLES, tree_bytes


def test_cli_convert_masks_coco_yolo_and_refusals(tmp_path, capsys):
    y = write_dataset(tmp_path / "d", n_train=2, n_val=1, size=(32, 48))
    before = tree_bytes(y.parent)
    for to in ("masks", "coco", "yolo"):
        assert main(["data", "convert", str(y), "--to", to, "--out", str(tmp_path / to),
                     "--workers", "0"]) == 0
        assert "lost in this target" in (tmp_path / to / "SOURCE.md").read_text()
    assert tree_bytes(y.parent) == before
    spec = DatasetSpec.load(tmp_path / "masks")
    for lab in sorted((y.parent / "train" / "labels").glob("*.png")):
        assert np.array_equal(read_label(spec.root / "train" / "labels" / lab.name), read_label(lab))
    # refusals: existing output, output inside the source
    assert main(["data", "convert", str(y), "--out", str(tmp_path / "masks")]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="inside the source"):
        convert(y, y.parent / "train" / "converted", workers=0)
    assert tree_bytes(y.parent) == before


def test_cli_reader_options(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=2, n_val=1, size=(32, 48))
    (y.parent / "dataset.yaml").write_text(y.read_text() + "format: binary\n")
    assert main(["data", "convert", str(y.parent), "--out", str(tmp_path / "b"), "--opt", "threshold=3",
                 "--workers", "0"]) == 0
    spec = DatasetSpec.load(tmp_path / "b")
    lab = sorted((y.parent / "train" / "labels").glob("*.png"))[0]
    assert np.array_equal(read_label(spec.root / "train" / "labels" / lab.name), read_label(lab) >= 3)


FORMAT_DIRS = ["voc", "cityscapes", "ade20k", "coco", "coco-panoptic", "yolo", "labelme", "colors", "binary"]


@pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/datasets/samples not present")
@pytest.mark.parametrize("fmt", FORMAT_DIRS)
def test_real_samples_read_and_convert(fmt, tmp_path):
    src = SAMPLES / fmt
    if not src.exists():
        pytest.skip(f"no sample of {fmt}")
    r = open_source(src)
    items = list(r.items())
    assert items and r.names
    for it in items[:3]:
        lab = r.label(it)
        assert lab.ndim == 2 and lab.size > 0
        assert set(np.unique(lab).tolist()) <= set(range(len(r.names))) | {r.ignore_index}
    before = tree_bytes(src)
    y = convert(r, tmp_path / "out", workers=0)
    assert tree_bytes(src) == before and DatasetSpec.load(y).names == r.names
