"""Where export-time images come from: the user's, else the training dataset's (verification
uses the val split, int8 calibration the train split)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def image_files(images: Any, dataset: dict | None, splits: tuple[str, ...], option: str = "--images") -> list[Path]:
    """``images``: a folder, glob, file or list of paths. Default: the files of the first of
    ``splits`` of the dataset recorded in the checkpoint that exists on this machine."""
    from pixelwise.errors import DatasetError
    from pixelwise.export import ExportError
    from pixelwise.runtime.batch import expand_sources

    files: list[Path] = []
    if images is not None:
        items = images if isinstance(images, (list, tuple)) else [images]
        for it in items:
            try:
                files += expand_sources(it)
            except DatasetError:
                raise ExportError(f"{option} {it}: no image there.", path=it,
                                  fix=f"pass a folder, file or glob of real images to {option}") from None
    elif dataset:
        for split in splits:
            entry = dataset.get(split)
            folder = Path(entry["images"]) if isinstance(entry, dict) and "images" in entry else None
            if folder is not None and folder.is_dir():
                try:
                    files = expand_sources(folder)
                except Exception:
                    files = []
                if files:
                    break
    return [f for f in files if f.suffix.lower() != ".npy"]


def verification_images(images: Any, dataset: dict | None, limit: int = 4) -> tuple[list[np.ndarray], list[Path]]:
    """The first ``limit`` images of ``images``, else of the dataset's val (test, train) split."""
    from pixelwise.runtime.imageio import read_image

    files = image_files(images, dataset, ("val", "test", "train"))[:limit]
    return [read_image(f) for f in files], files


def calibration_images(images: Any, dataset: dict | None, limit: int = 32,
                       max_side: int = 1024) -> tuple[list[np.ndarray], list[Path]]:
    """int8 calibration images: the user's, else the training split (the val split stays unseen
    by every step that fits the model). Spread over the folder rather than its first files
    (often one video sequence), and centre-cropped to ``max_side`` so an 8000x8000 aerial tile
    does not blow up calibration memory (a crop keeps the scale the model sees)."""
    from pixelwise.runtime.imageio import read_image

    files = image_files(images, dataset, ("train", "val", "test"), option="--calib")
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    out = []
    for f in files:
        im = read_image(f)
        h, w = im.shape[:2]
        t, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        out.append(np.ascontiguousarray(im[t:t + max_side, left:left + max_side]))
    return out, files
