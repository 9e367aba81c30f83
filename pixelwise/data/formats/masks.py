"""Mask folders (pixelwise's canonical form): index PNG/TIFF/GIF labels paired by file stem.

Palette PNGs give their palette indices; suffixes such as DRIVE's ``21_training.tif`` <->
``21_manual1.gif`` pair through ``image_suffix``/``label_suffix`` in the dataset YAML.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader, spec_items
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec


@dataclass
class MaskFolderReader(Reader):
    """Reads a DatasetSpec's splits; labels are used as stored."""

    spec: DatasetSpec | None = None

    @classmethod
    def from_spec(cls, spec: DatasetSpec | str | Path) -> "MaskFolderReader":
        spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.load(spec)
        return cls(root=spec.root, names=list(spec.names), colors=list(spec.colors),
                   ignore_index=spec.ignore_index, format="masks", spec=spec)

    def items(self) -> Iterator[Item]:
        assert self.spec is not None
        return spec_items(self.spec)

    def label(self, item: Item) -> np.ndarray:
        return read_label(item.ref)
