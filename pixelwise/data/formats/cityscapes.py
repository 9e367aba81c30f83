"""Cityscapes gtFine: ``*_gtFine_labelIds.png`` (or ``*_instanceIds.png``) -> 19 train ids.

The official labelId -> trainId table (cityscapesScripts ``labels.py``) is applied; every class
without a train id (ego vehicle, parking, caravan, ...) becomes 255, the ignore value. In
``instanceIds`` images, values >= 1000 are ``labelId * 1000 + instance`` and smaller values are
labelIds (stuff); both give the same semantic map. Layout:
``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` with ``gtFine/<split>/<city>/<x>_gtFine_*.png``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader
from pixelwise.data.formats.colors import CITYSCAPES19
from pixelwise.data.io import read_label
from pixelwise.errors import ConfigError, DatasetError, LabelError

# labelId -> trainId (255 = ignore), ids 0..33 in order.
LABEL_TO_TRAIN = [255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5,
                  255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18]
NAMES = [n for _, n in CITYSCAPES19 if n != "Void"]
COLORS = [c for c, n in CITYSCAPES19 if n != "Void"]

_LUT = np.full(65536, 255, np.uint8)
_LUT[: len(LABEL_TO_TRAIN)] = LABEL_TO_TRAIN

MANUAL_DOWNLOAD = (
    "Cityscapes needs a (free) account: log in at https://www.cityscapes-dataset.com/downloads/, "
    "download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, unzip both into one "
    "folder, then run 'pixelwise data convert FOLDER --format cityscapes --to masks --out "
    "cityscapes_masks' (or read it directly with format: cityscapes).")


@dataclass
class CityscapesReader(Reader):
    source: str = "labelIds"  # labelIds | instanceIds

    @classmethod
    def open(cls, root: str | Path, source: str = "labelIds") -> "CityscapesReader":
        root = Path(root)
        if source not in ("labelIds", "instanceIds"):
            raise ConfigError(f"Unknown Cityscapes label source '{source}'.",
                              fix="use labelIds or instanceIds")
        if not (root / "leftImg8bit").is_dir() or not (root / "gtFine").is_dir():
            raise DatasetError(f"No Cityscapes layout under {root} (leftImg8bit/ and gtFine/).",
                               path=root, fix="unzip leftImg8bit_trainvaltest.zip and "
                                              "gtFine_trainvaltest.zip into this folder")
        return cls(root=root, names=list(NAMES), colors=list(COLORS), ignore_index=255,
                   format="cityscapes", source=source,
                   notes=["labelIds mapped to the 19 official trainIds; other classes -> 255",
                          "instance ids are not kept (semantic masks)"])

    def items(self) -> Iterator[Item]:
        for split_dir in sorted((self.root / "leftImg8bit").iterdir()):
            if not split_dir.is_dir():
                continue
            for img in sorted(split_dir.glob("*/*_leftImg8bit.png")):
                stem = img.name[: -len("_leftImg8bit.png")]
                lab = self.root / "gtFine" / split_dir.name / img.parent.name / f"{stem}_gtFine_{self.source}.png"
                if not lab.exists():
                    if split_dir.name == "test":
                        continue
                    raise DatasetError(f"Image {img} has no label {lab.name}.", path=lab,
                                       fix="unzip gtFine_trainvaltest.zip next to leftImg8bit/")
                yield Item(split_dir.name, stem, img, lab)

    def label(self, item: Item) -> np.ndarray:
        raw = read_label(item.ref).astype(np.int64)
        if self.source == "instanceIds":
            raw = np.where(raw >= 1000, raw // 1000, raw)
        if raw.max(initial=0) > 33:
            bad = sorted(int(v) for v in np.unique(raw[raw > 33]))[:10]
            raise LabelError(f"{item.ref} holds ids {bad} that are not Cityscapes labelIds (0..33).",
                             path=item.ref, fix=f"use the *_gtFine_{self.source}.png files unchanged")
        return _LUT[raw]
