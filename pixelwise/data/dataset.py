"""A lazy torch Dataset over a split of a DatasetSpec: files are read one sample at a time."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.pairing import Sample, paired_samples
from pixelwise.data.samples import read_pair, require_masks
from pixelwise.data.spec import DatasetSpec


def to_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """HxWx3 uint8 -> 3xHxW uint8 tensor (normalised later, in the main process); HxW -> int64."""
    return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)))


class SegmentationDataset(Dataset):
    """Image/label pairs of one split; returns (uint8 CxHxW image, int64 HxW mask, index)."""

    def __init__(self, spec: DatasetSpec, split: str,
                 transform: Callable | None = None, samples: list[Sample] | None = None):
        require_masks(spec)
        self.spec = spec
        self.split = split
        self.samples = samples if samples is not None else paired_samples(spec.split(split))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (image, label) pair at full resolution, checked."""
        return read_pair(self.samples[index], self.spec)

    def __getitem__(self, index: int):
        image, label = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        return (*to_tensors(image, label), index)
