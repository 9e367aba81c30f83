"""Where export-time verification images come from: the user's, else the training dataset's."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def verification_images(images: Any, dataset: dict | None, limit: int = 4) -> tuple[list[np.ndarray], list[Path]]:
    """``images``: a folder, glob, file or list of paths. Default: the first val (else train)
    images of the dataset recorded in the checkpoint, when they exist on this machine."""
    from pixelwise.runtime.batch import expand_sources
    from pixelwise.runtime.imageio import read_image

    files: list[Path] = []
    if images is not None:
        items = images if isinstance(images, (list, tuple)) else [images]
        for it in items:
            files += expand_sources(it)
    elif dataset:
        for split in ("val", "test", "train"):
            entry = dataset.get(split)
            folder = Path(entry["images"]) if isinstance(entry, dict) and "images" in entry else None
            if folder is not None and folder.is_dir():
                try:
                    files = expand_sources(folder)
                except Exception:
                    files = []
                if files:
                    break
    files = [f for f in files if f.suffix.lower() != ".npy"][:limit]
    return [read_image(f) for f in files], files
