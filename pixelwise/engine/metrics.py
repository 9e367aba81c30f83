"""Dataset-level segmentation metrics from one accumulated confusion matrix.

Conventions (the same as MMSegmentation's ``IoUMetric`` and the Cityscapes scripts):

* Pixels whose label is the ignore value are excluded before counting.
* The confusion matrix ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p`` over the
  whole dataset; IoU is computed once from it (not averaged per image).
* IoU_c = TP / (TP + FP + FN). A class with TP + FP + FN = 0 (absent from both truth and
  prediction in the whole dataset) has an undefined IoU: it is reported as NaN (``null`` in JSON)
  and left out of the mean. A class absent from the truth but predicted somewhere gets IoU 0
  and counts in the mean, as in MMSegmentation.
* Accuracy_c = TP / (TP + FN) (NaN when the class has no true pixel); mean accuracy is the
  NaN-skipping mean; pixel accuracy (aAcc) = trace / total labelled pixels.
* Dice_c = F1_c = 2 TP / (2 TP + FP + FN); mDice is the NaN-skipping mean.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

import numpy as np


class ConfusionMatrix:
    """Accumulates ``cm[true, pred]`` over batches (numpy, so the torch-free runtime uses it too)."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """``pred`` and ``target``: integer arrays or tensors of the same shape (any layout)."""
        pred, target = _as_int64(pred), _as_int64(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
        pred, target = pred.ravel(), target.ravel()
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        n = self.num_classes
        idx = target[keep] * n + np.clip(pred[keep], 0, n - 1)
        self.matrix += np.bincount(idx, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def compute(self, names: list[str] | None = None) -> "SegMetrics":
        return SegMetrics.from_confusion(self.matrix, names)


def _as_int64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (torch itself is not imported here)
        x = x.detach().cpu().numpy()
    return np.asarray(x).astype(np.int64, copy=False)


@dataclass
class SegMetrics:
    confusion: np.ndarray
    iou: np.ndarray
    accuracy: np.ndarray
    dice: np.ndarray
    miou: float
    macc: float
    aacc: float
    mdice: float
    names: list[str]
    images: int | None = None  # how many images were scored, when the caller knows

    @classmethod
    def from_confusion(cls, cm: np.ndarray, names: list[str] | None = None) -> "SegMetrics":
        cm = cm.astype(np.float64)
        tp = np.diag(cm)
        fn = cm.sum(1) - tp
        fp = cm.sum(0) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            union = tp + fp + fn
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
            dice = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
            total = cm.sum()
            aacc = float(tp.sum() / total) if total > 0 else float("nan")

        def nanmean(a: np.ndarray) -> float:
            return float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")

        n = cm.shape[0]
        return cls(cm.astype(np.int64), iou, acc, dice, nanmean(iou), nanmean(acc), aacc,
                   nanmean(dice), list(names) if names else [str(i) for i in range(n)])

    def to_dict(self) -> dict:
        """JSON-ready; NaN becomes ``None`` (class absent from truth and prediction)."""

        def clean(v: float):
            return None if np.isnan(v) else round(float(v) * 100, 4)

        return {
            "mIoU": clean(self.miou), "mAcc": clean(self.macc), "aAcc": clean(self.aacc),
            "mDice": clean(self.mdice),
            "per_class": {name: {"IoU": clean(i), "Acc": clean(a), "Dice": clean(d)}
                          for name, i, a, d in zip(self.names, self.iou, self.accuracy, self.dice)},
            "confusion_matrix": self.confusion.tolist(),
            "units": "percent",
            "convention": "dataset-level confusion matrix; ignore excluded; classes absent from "
                          "truth and prediction are null and excluded from means (MMSegmentation)",
        }

    def table(self) -> str:
        lines = [f"{'class':<16}{'IoU':>8}{'Acc':>8}{'Dice':>8}"]
        for name, i, a, d in zip(self.names, self.iou, self.accuracy, self.dice):
            fmt = lambda v: "    n/a" if np.isnan(v) else f"{v * 100:8.2f}"  # noqa: E731
            lines.append(f"{name[:15]:<16}{fmt(i)}{fmt(a)}{fmt(d)}")
        lines.append(f"{'mean':<16}{self.miou * 100:8.2f}{self.macc * 100:8.2f}{self.mdice * 100:8.2f}")
        lines.append(f"pixel accuracy (aAcc): {self.aacc * 100:.2f}")
        return "\n".join(lines)
