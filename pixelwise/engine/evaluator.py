"""Evaluation: whole-image inference at full resolution into one confusion matrix."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.spec import DatasetSpec
from pixelwise.engine.metrics import ConfusionMatrix, SegMetrics


def normalize_batch(images: torch.Tensor, mean, std, device: torch.device,
                    channels_last: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NCHW -> normalised ``dtype`` on ``device`` (done here, not in workers: 4x less IPC);
    normalised in fp32 first, then cast, so a half-precision model sees the rounded fp32 input."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    x = ((x - m) / s).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, device: torch.device,
             max_images: int | None = None, flip: bool = False, progress: bool = True,
             channels_last: bool = False, workers: int = 0, dtype: torch.dtype = torch.float32) -> SegMetrics:
    """mIoU etc. of ``model`` on ``dataset`` (whole images, any size, batch of one); ``dtype`` the
    model's (fp16 for a half-precision ``Segmenter``)."""
    model.eval()
    cm = ConfusionMatrix(dataset.spec.num_classes, dataset.spec.ignore_index)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    loader = torch.utils.data.DataLoader(subset, batch_size=1, num_workers=workers)
    for images, labels, _ in tqdm(loader, total=n, desc="val", disable=not progress, leave=False):
        x = normalize_batch(images, model.mean, model.std, device, channels_last, dtype)
        logits = model(x)
        if flip:
            logits = logits + model(x.flip(-1)).flip(-1)
        cm.update(logits.argmax(1), labels)
    return cm.compute(dataset.spec.names)


def evaluate_checkpoint(model: str | Path | Any, data: str | Path | DatasetSpec | dict | None = None,
                        split: str = "val", device: str = "auto", flip: bool = False,
                        max_images: int | None = None, progress: bool = True, half: bool = False) -> SegMetrics:
    """``SegMetrics`` of a checkpoint or a ``Segmenter`` on ``data``'s split (default: the dataset
    recorded in the model; ``half``: a checkpoint in fp16, for GPUs). ``pixelwise.engine.validate.val``
    is the verb that also writes them."""
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.utils import set_threads

    set_threads()
    if half:
        from pixelwise.runtime.batch import refuse_half

        refuse_half(model)
    seg = model if isinstance(model, Segmenter) else Segmenter.load(model, device=device, half=half)
    if data is None:
        data = seg.dataset_record()
    spec = data if isinstance(data, DatasetSpec) else (
        DatasetSpec.from_record(data) if isinstance(data, dict) else DatasetSpec.load(data))
    seg.check_compatible(spec)
    ds = SegmentationDataset(spec, split)
    metrics = evaluate(seg.model, ds, seg.device, max_images=max_images, flip=flip, progress=progress,
                       channels_last=seg.channels_last, dtype=seg.dtype)
    metrics.images = min(len(ds), max_images or len(ds))
    return metrics


from pixelwise.engine.validate import val  # noqa: E402,F401  (the verb, re-exported where it used to live)
