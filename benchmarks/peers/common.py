"""Shared pieces: the CamVid validation split read once, the same way, for every contender.

Every contender's predictions are scored by ``pixelwise.engine.metrics.ConfusionMatrix`` against
the labels read by ``pixelwise.data.dataset.SegmentationDataset`` at full resolution, so the
metric (dataset-level confusion matrix, ignore index excluded) is identical for all of them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.spec import DatasetSpec
from pixelwise.engine.metrics import ConfusionMatrix, SegMetrics

SMOKE_VAL_IMAGES = 5


def val_split(data: str | Path, max_images: int | None = None) -> tuple[DatasetSpec, SegmentationDataset, int]:
    spec = DatasetSpec.load(data)
    ds = SegmentationDataset(spec, "val")
    n = len(ds) if max_images is None else min(max_images, len(ds))
    return spec, ds, n


def val_samples(ds: SegmentationDataset, n: int) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """(image path, HxWx3 uint8 RGB image, HxW int64 label) for the first ``n`` val samples."""
    for i in range(n):
        image, label = ds.load(i)
        yield Path(ds.samples[i].image), image, label.astype(np.int64)


def score(data: str | Path, predict: Callable[[Path, np.ndarray], np.ndarray],
          max_images: int | None = None) -> SegMetrics:
    """Run ``predict(image_path, rgb_image) -> HxW class ids`` over val and score it."""
    spec, ds, n = val_split(data, max_images)
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_index)
    for path, image, label in val_samples(ds, n):
        pred = predict(path, image)
        pred = torch.as_tensor(np.asarray(pred)).long()
        if tuple(pred.shape) != tuple(label.shape):
            raise RuntimeError(f"prediction {tuple(pred.shape)} != label {tuple(label.shape)} for {path.name}")
        cm.update(pred, torch.from_numpy(label))
    return cm.compute(spec.names)


def metrics_record(m: SegMetrics, n_images: int) -> dict:
    """mIoU and per-class IoU in percent (None for a class absent from truth and prediction)."""
    per = {name: (None if np.isnan(v) else round(float(v) * 100, 2)) for name, v in zip(m.names, m.iou)}
    return {"miou": round(m.miou * 100, 2), "aacc": round(m.aacc * 100, 2), "per_class_iou": per,
            "val_images": n_images}


def train_size(data: str | Path) -> int:
    return len(SegmentationDataset(DatasetSpec.load(data), "train"))
