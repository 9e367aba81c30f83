"""One checked (image, label) pair of a mask-folder split, torch-free.

Shared by the PyTorch dataset and the runtime's evaluator, so that ``val`` of a checkpoint and
``val`` of its export refuse the same data: a label the one rejects must not be silently
half-scored by the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pixelwise.data.io import read_image, read_label, turned_by_exif
from pixelwise.data.pairing import Sample
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError, LabelError


def require_masks(spec: DatasetSpec, verb: str = "Training") -> None:
    """Training and evaluation read mask folders; other formats are converted once."""
    if spec.format != "masks":
        raise DatasetError(
            f"{verb} reads mask folders; {spec.source or spec.root} is in format '{spec.format}'.",
            path=spec.source,
            fix=f"convert it once: pixelwise data convert {spec.source or spec.root} --to masks --out DIR, "
                "then use DIR/dataset.yaml")


def binary_convert_fix(data: str | Path | None) -> str:
    """The fix for 0/255 (or 0/1-with-255) binary masks: the binary reader maps 255 to class 1."""
    return (f"these look like 0/255 binary masks: convert them once with 'pixelwise data convert "
            f"{data or 'DATA'} --format binary --to masks --out NEW' (255 becomes class 1), then use "
            "NEW/dataset.yaml")


def foreground_is_ignored(spec: DatasetSpec, class_present: Sequence[int] | np.ndarray, ignore_seen: bool) -> bool:
    """A two-class dataset whose class 1 never appears while the ignore value 255 does: 0/255
    binary masks described as masks, so every foreground pixel would be ignored (trained on
    nothing, scored n/a) without an error."""
    return (spec.num_classes == 2 and spec.ignore_index == 255 and ignore_seen
            and not class_present[1])


def check_size(label: np.ndarray, image_shape: tuple[int, ...], path: Path | str, image_path: Path) -> None:
    """Refuse a label whose size differs from its image's (as displayed)."""
    if label.shape[:2] != tuple(image_shape[:2]):
        turned = label.shape[:2] == tuple(image_shape[:2])[::-1] and turned_by_exif(image_path)
        raise LabelError(
            f"Label {path} is {label.shape[1]}x{label.shape[0]} but its image {image_path.name} is "
            f"{image_shape[1]}x{image_shape[0]}"
            + (" (as displayed: its EXIF orientation turns it)" if turned else "") + ".", path=path,
            fix="re-export the label at the image's size as displayed (never resize labels with interpolation)")


def check_label(label: np.ndarray, image_shape: tuple[int, ...], num_classes: int,
                ignore_index: int, path: Path, image_path: Path) -> np.ndarray:
    """Refuse a label whose size differs from its image or that holds unknown values."""
    check_size(label, image_shape, path, image_path)
    if label.max(initial=0) >= num_classes or label.min(initial=0) < 0:
        values = np.unique(label)
        bad = [int(v) for v in values if not (0 <= v < num_classes) and v != ignore_index]
        if bad:
            shown = ", ".join(map(str, bad[:10]))
            raise LabelError(
                f"Label {path} holds value(s) {shown} that are neither a class (0..{num_classes - 1}) "
                f"nor the ignore value {ignore_index}.", path=path,
                fix=binary_convert_fix(None) if num_classes == 2 and bad == [255] else
                "fix the label, add the classes to 'names:', or set 'ignore_index:' in the YAML "
                "(for 1-based labels with 0 = background-to-ignore, remap with 'pixelwise data remap')")
    return label


def read_pair(sample: Sample, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The raw (HxWx3 uint8 image, HxW label) of ``sample`` at full resolution, checked."""
    image = read_image(sample.image)
    label = read_label(sample.label)
    check_label(label, image.shape, spec.num_classes, spec.ignore_index, sample.label, sample.image)
    return image, label
