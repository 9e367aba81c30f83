"""Pair image files with label files by name, without reading any pixels.

Pairing is by file stem after removing the split's optional suffixes, so DRIVE-style names
(``21_training.tif`` <-> ``21_manual1.gif``) pair with ``image_suffix: _training`` and
``label_suffix: _manual1``. Listing uses ``os.scandir`` only: a 100k-image folder is indexed in
well under a second and in memory proportional to the file names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixelwise.data.spec import IMAGE_EXTS, LABEL_EXTS, SplitSpec
from pixelwise.errors import DatasetError


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    label: Path | None


@dataclass
class Pairing:
    samples: list[Sample]
    images_without_label: list[Path]
    labels_without_image: list[Path]


def _list(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    with os.scandir(folder) as it:
        return sorted(Path(e.path) for e in it
                      if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(exts))


def _key(path: Path, suffix: str) -> str:
    stem = path.stem
    if suffix and stem.endswith(suffix):
        stem = stem[: -len(suffix)]
    return stem


def pair_split(split: SplitSpec, require_labels: bool = True) -> Pairing:
    """List a split's images and labels and pair them; report the unpaired ones."""
    if not split.images.is_dir():
        raise DatasetError(f"Image folder of split '{split.name}' not found: {split.images}.",
                           path=split.images,
                           fix="correct 'path:' and the split folders in the dataset YAML (for the dataset "
                               "recorded in a model, which may have moved: pass --data DATASET.yaml)")
    images = _list(split.images, IMAGE_EXTS)
    if not images:
        raise DatasetError(f"Image folder of split '{split.name}' is empty: {split.images}.",
                           path=split.images,
                           fix=f"put images ({', '.join(IMAGE_EXTS)}) there or point the YAML elsewhere")
    if split.labels is None:
        if require_labels:
            raise DatasetError(f"Split '{split.name}' has no label folder.", path=split.images,
                               fix=f"add 'labels:' for split '{split.name}' in the dataset YAML")
        return Pairing([Sample(_key(p, split.image_suffix), p, None) for p in images], [], [])
    if not split.labels.is_dir():
        raise DatasetError(f"Label folder of split '{split.name}' not found: {split.labels}.",
                           path=split.labels, fix="correct the label folder in the dataset YAML")
    labels = _list(split.labels, LABEL_EXTS)
    by_key: dict[str, Path] = {}
    for lab in labels:
        by_key.setdefault(_key(lab, split.label_suffix), lab)
    samples, lonely_images = [], []
    used = set()
    for img in images:
        k = _key(img, split.image_suffix)
        lab = by_key.get(k)
        if lab is None:
            lonely_images.append(img)
        else:
            samples.append(Sample(k, img, lab))
            used.add(k)
    lonely_labels = [p for k, p in by_key.items() if k not in used]
    return Pairing(samples, lonely_images, lonely_labels)


def paired_samples(split: SplitSpec) -> list[Sample]:
    """Pairs of a split, or a DatasetError that lists the unpaired files."""
    pairing = pair_split(split)
    problems = []
    if pairing.images_without_label:
        shown = ", ".join(p.name for p in pairing.images_without_label[:5])
        problems.append(f"{len(pairing.images_without_label)} image(s) without a label in "
                        f"{split.labels} (e.g. {shown})")
    if pairing.labels_without_image:
        shown = ", ".join(p.name for p in pairing.labels_without_image[:5])
        problems.append(f"{len(pairing.labels_without_image)} label(s) without an image in "
                        f"{split.images} (e.g. {shown})")
    if problems:
        raise DatasetError(f"Split '{split.name}': " + "; ".join(problems) + ".",
                           path=split.labels,
                           fix="add the missing files or remove the unpaired ones; if names differ "
                               "by a suffix set 'label_suffix:'/'image_suffix:' in the YAML")
    if not pairing.samples:
        raise DatasetError(f"Split '{split.name}' has no image/label pairs.", path=split.images,
                           fix="check that labels share their image's file stem")
    return pairing.samples
