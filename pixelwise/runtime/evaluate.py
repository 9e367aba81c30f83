"""mIoU of an exported model on a dataset split, through the runtime (so it checks the export,
not the checkpoint). The confusion matrix is accumulated in numpy; the result is the same
``SegMetrics`` the PyTorch evaluator returns, so both can be compared number for number."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(model: Any, data: Any, split: str = "val", flip: bool = False,
                     max_images: int | None = None, progress: bool = False) -> tuple[np.ndarray, list[str], int]:
    """``cm[true, pred]`` over the split (whole images, ignore excluded), the class names and the
    number of images scored."""
    from pixelwise.data.pairing import paired_samples
    from pixelwise.data.samples import read_pair, require_masks
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.engine.metrics import ConfusionMatrix
    from pixelwise.runtime.batch import progress_bar

    spec = data if isinstance(data, DatasetSpec) else (
        DatasetSpec.from_record(data) if isinstance(data, dict) else DatasetSpec.load(data))
    spec.check_model(model.num_classes, model.names, getattr(model, "path", None),
                     fix="evaluate on the dataset the model was exported for")
    require_masks(spec, "Evaluation")
    samples = paired_samples(spec.split(split))[:max_images]
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_index)
    for s in progress_bar(samples, len(samples), "val", progress):
        image, label = read_pair(s, spec)  # the same checks as the PyTorch evaluator's dataset
        cm.update(model.predict(image, flip=flip).labels, label)
    return cm.matrix, list(spec.names), len(samples)


def evaluate_onnx(path: str | Path, data: Any = None, split: str = "val", flip: bool = False,
                  max_images: int | None = None, backend: str = "auto", progress: bool = False,
                  device: str = "auto"):
    """``SegMetrics`` of an exported model (``.onnx`` or OpenVINO ``.xml``) on ``data``'s split.

    ``data`` defaults to the dataset recorded in the export's metadata (when it was recorded).
    The metrics class lives in ``pixelwise.engine.metrics`` (imported only here)."""
    from pixelwise.engine.metrics import SegMetrics
    from pixelwise.errors import DatasetError
    from pixelwise.runtime.predictor import RuntimeSegmenter

    model = RuntimeSegmenter.load(path, backend=backend, device=device)
    if data is None:
        data = model.meta.dataset
        if not data:
            raise DatasetError(f"{path} records no dataset.", path=path, fix="pass --data dataset.yaml")
    cm, names, n = confusion_matrix(model, data, split, flip, max_images, progress)
    metrics = SegMetrics.from_confusion(cm, names)
    metrics.images = n
    return metrics
