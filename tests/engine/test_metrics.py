import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from pixelwise.engine.metrics import ConfusionMatrix, SegMetrics


def test_hand_computed_example():
    # truth / prediction over 3 classes, ignore 9
    t = torch.tensor([0, 0, 1, 1, 2, 9, 9])
    p = torch.tensor([0, 1, 1, 1, 0, 2, 0])
    cm = ConfusionMatrix(3, ignore_index=9)
    cm.update(p, t)
    m = cm.compute()
    # class 0: TP1 FP1 FN1 -> 1/3; class 1: TP2 FP1 FN0 -> 2/3; class 2: TP0 FP0 FN1 -> 0
    assert np.allclose(m.iou, [1 / 3, 2 / 3, 0.0])
    assert math.isclose(m.miou, (1 / 3 + 2 / 3 + 0) / 3)
    assert math.isclose(m.aacc, 3 / 5)
    assert np.allclose(m.dice, [0.5, 0.8, 0.0])


def test_absent_classes_follow_the_mmseg_convention():
    t = torch.tensor([0, 0, 1])
    p = torch.tensor([0, 2, 1])  # class 2 predicted but absent from truth; class 3 absent from both
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(p, t)
    m = cm.compute()
    assert m.iou[2] == 0.0 and math.isnan(m.iou[3])
    assert math.isclose(m.miou, (0.5 + 1.0 + 0.0) / 3)
    d = m.to_dict()
    assert d["per_class"]["3"]["IoU"] is None and d["per_class"]["2"]["IoU"] == 0.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(torch.zeros(3), torch.zeros(4))


def test_matches_torchmetrics_on_real_camvid_predictions(tiny_run):
    """Real predictions of a trained model on real CamVid labels, accumulated over images."""
    from pixelwise.data.dataset import SegmentationDataset
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.inference.predictor import Segmenter

    seg = Segmenter.load(tiny_run.best, device="cpu")
    spec = DatasetSpec.from_dict(seg.dataset_record())
    ds = SegmentationDataset(spec, "val")
    ours = ConfusionMatrix(spec.num_classes, spec.ignore_index)
    jac = MulticlassJaccardIndex(spec.num_classes, average=None, ignore_index=spec.ignore_index)
    acc = MulticlassAccuracy(spec.num_classes, average="micro", ignore_index=spec.ignore_index)
    for i in range(len(ds)):
        image, label = ds.load(i)
        pred = torch.from_numpy(seg.predict(image).labels.astype(np.int64))
        target = torch.from_numpy(label.astype(np.int64))
        ours.update(pred, target)
        jac.update(pred[None], target[None])
        acc.update(pred[None], target[None])
    m = ours.compute()
    ref = jac.compute().numpy()
    present = ~np.isnan(m.iou)
    np.testing.assert_allclose(m.iou[present], ref[present], atol=1e-6)
    assert math.isclose(m.aacc, float(acc.compute()), abs_tol=1e-6)
    assert 0.0 <= m.miou <= 1.0


def test_from_confusion_roundtrip():
    cm = np.array([[5, 1], [2, 7]])
    m = SegMetrics.from_confusion(cm, ["a", "b"])
    assert math.isclose(m.iou[0], 5 / 8) and math.isclose(m.iou[1], 7 / 10)
    assert "a" in m.table()
