"""Deterministic, resumable sampling: epoch ``e`` visits a permutation fixed by (seed, e), and
each sample's augmentation is seeded by (seed, epoch, index). A run resumed mid-epoch therefore
sees exactly the batches (and crops) it would have seen without the interruption."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from pixelwise.data.dataset import to_tensors


class EpochSampler(Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True):
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.epoch = 0
        self.skip_batches = 0

    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        nb = self.batches_per_epoch()
        for b in range(self.skip_batches, nb):
            yield [(self.epoch, i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.skip_batches


class SeededAugmentDataset(Dataset):
    """Wraps a SegmentationDataset: items are (epoch, index); the transform is seeded per item."""

    def __init__(self, base, transform, seed: int):
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item):
        epoch, index = item
        image, label = self.base.load(index)
        self.transform.set_random_seed((self.seed * 1_000_003 + epoch * 100_003 + index) % 2**31)
        out = self.transform(image=image, mask=label)
        return (*to_tensors(out["image"], out["mask"]), index)
