"""A lazy torch Dataset over a split of a DatasetSpec: files are read one sample at a time."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.io import read_image, read_label
from pixelwise.data.pairing import Sample, paired_samples
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError, LabelError


def check_label(label: np.ndarray, image_shape: tuple[int, ...], num_classes: int,
                ignore_index: int, path: Path, image_path: Path) -> np.ndarray:
    """Refuse a label whose size differs from its image or that holds unknown values."""
    if label.shape[:2] != tuple(image_shape[:2]):
        raise LabelError(
            f"Label {path} is {label.shape[1]}x{label.shape[0]} but its image {image_path.name} is "
            f"{image_shape[1]}x{image_shape[0]}.", path=path,
            fix="re-export the label at the image's size (never resize labels with interpolation)")
    if label.max(initial=0) >= num_classes or label.min(initial=0) < 0:
        values = np.unique(label)
        bad = [int(v) for v in values if not (0 <= v < num_classes) and v != ignore_index]
        if bad:
            shown = ", ".join(map(str, bad[:10]))
            raise LabelError(
                f"Label {path} holds value(s) {shown} that are neither a class (0..{num_classes - 1}) "
                f"nor the ignore value {ignore_index}.", path=path,
                fix="fix the label, add the classes to 'names:', or set 'ignore_index:' in the YAML "
                    "(for 1-based labels with 0 = background-to-ignore, remap with 'pixelwise data remap')")
    return label


def to_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """HxWx3 uint8 -> 3xHxW uint8 tensor (normalised later, in the main process); HxW -> int64."""
    return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)))


class SegmentationDataset(Dataset):
    """Image/label pairs of one split; returns (uint8 CxHxW image, int64 HxW mask, index)."""

    def __init__(self, spec: DatasetSpec, split: str,
                 transform: Callable | None = None, samples: list[Sample] | None = None):
        if spec.format != "masks":
            raise DatasetError(
                f"Training reads mask folders; {spec.source or spec.root} is in format '{spec.format}'.",
                path=spec.source,
                fix=f"convert it once: pixelwise data convert {spec.source or spec.root} --to masks --out DIR, "
                    "then train on DIR/dataset.yaml")
        self.spec = spec
        self.split = split
        self.samples = samples if samples is not None else paired_samples(spec.split(split))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (image, label) pair at full resolution, checked."""
        s = self.samples[index]
        image = read_image(s.image)
        label = read_label(s.label)
        check_label(label, image.shape, self.spec.num_classes, self.spec.ignore_index, s.label, s.image)
        return image, label

    def __getitem__(self, index: int):
        image, label = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        return (*to_tensors(image, label), index)
