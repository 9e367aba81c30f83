"""PASCAL VOC segmentation: palette PNGs in SegmentationClass, split lists in ImageSets.

The label value is the palette *index* (not the displayed colour); 255 (the white object
borders) is the ignore value. Layout accepted: ``<root>`` or ``<root>/VOCdevkit/VOC2012`` with
``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/{train,val,...}.txt``.
Without split lists, every labelled image goes to ``train``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader
from pixelwise.data.io import open_image
from pixelwise.data.spec import default_palette
from pixelwise.errors import DatasetError, LabelError

VOC_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
             "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
             "sheep", "sofa", "train", "tvmonitor"]


def find_voc_root(root: Path) -> Path | None:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "SegmentationClass").is_dir() and (cand / "JPEGImages").is_dir():
            return cand
    return None


@dataclass
class VOCReader(Reader):
    base: Path | None = None

    @classmethod
    def open(cls, root: str | Path, names: list[str] | None = None) -> "VOCReader":
        root = Path(root)
        base = find_voc_root(root)
        if base is None:
            raise DatasetError(f"No VOC layout under {root} (JPEGImages/ and SegmentationClass/).",
                               path=root, fix="point at the VOC2012 folder (or VOCdevkit's parent)")
        names = names or VOC_NAMES
        return cls(root=root, names=list(names), colors=default_palette(len(names)),
                   ignore_index=255, format="voc", base=base,
                   notes=["palette indices are used as class ids; 255 (object borders) is ignored"])

    def items(self) -> Iterator[Item]:
        assert self.base is not None
        lists = self.base / "ImageSets" / "Segmentation"
        files = sorted(lists.glob("*.txt")) if lists.is_dir() else []
        files = [f for f in files if f.stem in ("train", "val", "test")]
        if files:
            for f in files:
                for n, line in enumerate(f.read_text().splitlines(), 1):
                    stem = line.strip().split(" ")[0]
                    if not stem:
                        continue
                    lab = self.base / "SegmentationClass" / f"{stem}.png"
                    img = self.base / "JPEGImages" / f"{stem}.jpg"
                    if not img.exists():
                        raise DatasetError(f"{f}:{n}: image {img.name} is listed but missing.",
                                           path=f, fix="restore JPEGImages/ or remove the line")
                    if f.stem != "test" and not lab.exists():
                        raise DatasetError(f"{f}:{n}: label {lab.name} is listed but missing.",
                                           path=f, fix="restore SegmentationClass/ or remove the line")
                    yield Item(f.stem, stem, img, lab if lab.exists() else None)
        else:
            for lab in sorted((self.base / "SegmentationClass").glob("*.png")):
                img = self.base / "JPEGImages" / f"{lab.stem}.jpg"
                if not img.exists():
                    raise DatasetError(f"Label {lab} has no image {img.name}.", path=lab,
                                       fix="restore the image or remove the label")
                yield Item("train", lab.stem, img, lab)

    def label(self, item: Item) -> np.ndarray:
        with open_image(item.ref) as im:
            if im.mode != "P":
                raise LabelError(f"VOC label {item.ref} is mode {im.mode}, not a palette PNG.",
                                 path=item.ref,
                                 fix="use the original SegmentationClass PNGs (colour versions "
                                     "need the 'colors' format with VOC's colour table)")
            im.load()
            # raw palette indices: VOC's car (index 7) is drawn grey (128, 128, 128), so a rule
            # that reads all-grey palettes as grey levels would turn it into 128
            return np.asarray(im).copy()
