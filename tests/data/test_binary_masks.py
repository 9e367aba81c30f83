"""0/255 binary masks (the usual medical layout) described as a two-class mask folder: 255 is
also the default ignore value, so read as masks the foreground would vanish. Detection, check,
convert and training each say so, and converted data trains on both classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.check import check_dataset
from pixelwise.data.convert import convert
from pixelwise.data.formats import detect_format
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError, LabelError
from tests.conftest import write_dataset
from tests.data.formats.helpers import tree_bytes


def _binary_255(root: Path, ignore_index: int | None = None) -> Path:
    """Real images, each label turned into road (CamVid class 3) = 255, the rest 0."""
    y = write_dataset(root, n_train=4, n_val=2, size=(48, 64))
    for lab in root.glob("*/labels/*.png"):
        arr = read_label(lab)
        Image.fromarray(np.where(arr == 3, 255, 0).astype(np.uint8)).save(lab)
    desc = yaml.safe_load(y.read_text())
    desc["names"] = {0: "background", 1: "road"}
    desc.pop("ignore_index")
    if ignore_index is not None:
        desc["ignore_index"] = ignore_index
    y.write_text(yaml.safe_dump(desc))
    return y


def test_check_detect_convert_and_train_on_0_255_masks(tmp_path, capsys):
    y = _binary_255(tmp_path / "med")
    before = tree_bytes(y.parent)
    report = check_dataset(y, workers=0)
    assert [p.kind for p in report.errors] == ["binary-255"]
    assert "absent-class" not in report.kinds()  # the one cause, said once
    assert "--format binary" in report.errors[0].fix and str(y) in report.errors[0].fix
    assert detect_format(y) == "binary" and detect_format(y.parent) == "binary"

    from pixelwise.engine.trainer import train

    with pytest.raises(DatasetError, match="--format binary"):
        train(y, project=str(tmp_path / "runs"), name="refused", epochs=1, workers=0, progress=False)
    assert not (tmp_path / "runs" / "refused" / "config.yaml").exists()  # stopped before the run was written

    assert main(["data", "convert", str(y), "--to", "masks", "--out", str(tmp_path / "conv"), "--workers", "0"]) == 0
    assert tree_bytes(y.parent) == before
    new = DatasetSpec.load(tmp_path / "conv")
    assert new.names == ["background", "road"]
    for lab in sorted((y.parent / "train" / "labels").glob("*.png")):
        assert np.array_equal(read_label(new.root / "train" / "labels" / lab.name), read_label(lab) // 255)
    assert check_dataset(tmp_path / "conv" / "dataset.yaml", workers=0).ok
    assert detect_format(tmp_path / "conv" / "dataset.yaml") == "masks"  # 0/1 now: no second guess
    # the converted data trains; scoring on the unconverted data says why class 1 is n/a
    from pixelwise.engine.validate import val

    run = train(tmp_path / "conv" / "dataset.yaml", project=str(tmp_path / "runs"), name="ok", epochs=1,
                max_iters=1, batch_size=2, workers=0, progress=False, augment={"crop": (48, 64)})
    with pytest.warns(UserWarning, match="no pixel in the labels of split 'val'.*--format binary"):
        val(run.best, y, device="cpu", progress=False)


def test_other_ignore_value_points_to_the_binary_conversion(tmp_path):
    y = _binary_255(tmp_path / "med", ignore_index=254)
    errors = check_dataset(y, workers=0).errors
    assert errors and {p.kind for p in errors} == {"values"}
    assert all("--format binary" in p.fix for p in errors)
    from pixelwise.data.dataset import SegmentationDataset

    ds = SegmentationDataset(DatasetSpec.load(y), "train")
    with pytest.raises(LabelError, match="--format binary"):
        for i in range(len(ds.samples)):
            ds[i]


def test_two_class_masks_with_a_real_ignore_border_stay_masks(tmp_path):
    """0/1 labels with a 255 border: class ids plus ignore, as VOC draws them; nothing is converted."""
    y = _binary_255(tmp_path / "voc_like")
    labels = sorted(y.parent.glob("*/labels/*.png"))
    for lab in labels:
        arr = read_label(lab) // 255
        if lab != labels[-1]:  # only the last label (of val) holds the class: the early ones say nothing
            arr[:] = 0
        arr[:2] = 255
        Image.fromarray(arr.astype(np.uint8)).save(lab)
    assert detect_format(y) == "masks"
    assert check_dataset(y, workers=0).ok
    out = convert(y, tmp_path / "out", workers=0)
    for lab in labels:  # unchanged: 255 stays ignore, class 1 stays class 1
        split = lab.parent.parent.name
        assert np.array_equal(read_label(out.parent / split / "labels" / lab.name), read_label(lab))


def test_training_warns_about_the_classes_never_in_its_labels(tmp_path, recwarn):
    import json

    y = write_dataset(tmp_path / "d", n_train=2, n_val=1, size=(48, 64))
    from pixelwise.engine.trainer import train

    run = train(y, project=str(tmp_path / "runs"), name="r", epochs=1, max_iters=1, batch_size=2, workers=0,
                progress=False, augment={"crop": (48, 64)})
    counts = json.loads((run.run_dir / "class_counts.json").read_text())
    absent = [f"{c} '{n}'" for c, (n, k) in enumerate(zip(counts["names"], counts["counts"])) if k == 0]
    assert absent  # two 48x64 CamVid images lack some of the 11 classes
    msgs = [str(w.message) for w in recwarn.list if "never appear" in str(w.message)]
    assert len(msgs) == 1 and all(a in msgs[0] for a in absent), msgs


@pytest.mark.parametrize("mode", ["RGB", "P", "LA"])
def test_0_255_masks_saved_in_other_modes_are_still_binary(tmp_path, mode):
    """Grey RGB, a grey palette and grey+alpha: training reads each as 0/255, so detection must too
    (opening the pixels directly saw palette indices 0/1, or alpha as a second colour)."""
    y = _binary_255(tmp_path / "med")
    for lab in y.parent.glob("*/labels/*.png"):
        Image.open(lab).convert(mode).save(lab)
        assert set(np.unique(read_label(lab)).tolist()) <= {0, 255}
    assert detect_format(y) == "binary"
