"""Where export-time images come from: the user's, else the training dataset's (verification
uses the val split, int8 calibration the train split)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def image_files(images: Any, dataset: dict | None, splits: tuple[str, ...], option: str = "--images") -> list[Path]:
    """``images``: a folder, glob, file or list of paths. Default: the files of the first of
    ``splits`` of the dataset recorded in the checkpoint that exists on this machine."""
    from pixelwise.errors import DatasetError, PixelwiseError
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
        from pixelwise.data.spec import DatasetSpec

        try:
            recorded = DatasetSpec.from_record(dataset).splits
        except PixelwiseError:  # a record this version cannot read: as if no dataset were recorded
            recorded = {}
        for split in splits:
            folder = recorded[split].images if split in recorded else None
            if folder is not None and folder.is_dir():
                try:
                    files = expand_sources(folder)
                except Exception:
                    files = []
                if files:
                    break
    return [f for f in files if f.suffix.lower() != ".npy"]


def recorded_root(dataset: dict | None) -> str:
    """Where the recorded training dataset was looked for, for error messages."""
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.errors import PixelwiseError

    if not dataset:
        return "the model records no dataset"
    try:
        splits = DatasetSpec.from_record(dataset).splits
        looked = ", ".join(str(s.images.absolute()) for s in splits.values())
        return f"the recorded dataset's images, {looked}, are not on this machine"
    except PixelwiseError:
        return "the model's dataset record is unreadable"


def verification_images(images: Any, dataset: dict | None, limit: int = 4
                        ) -> tuple[list[np.ndarray], list[Path], list[tuple[Path, str]]]:
    """The first ``limit`` readable images of ``images``, else of the dataset's val (test, train)
    split, and the files skipped as unreadable (path, why)."""
    return _read_usable(image_files(images, dataset, ("val", "test", "train")), limit)


def calibration_images(images: Any, dataset: dict | None, limit: int = 32, max_side: int = 1024
                       ) -> tuple[list[np.ndarray], list[Path], list[tuple[Path, str]]]:
    """int8 calibration images: the user's, else the training split (the val split stays unseen
    by every step that fits the model). Spread over the folder rather than its first files
    (often one video sequence), and centre-cropped to ``max_side`` so an 8000x8000 aerial tile
    does not blow up calibration memory (a crop keeps the scale the model sees). An unreadable
    file (a cut download in a folder of thousands) is skipped and returned with the reason, and
    the next file in folder order stands in: one bad file must not stop an export."""
    files = image_files(images, dataset, ("train", "val", "test"), option="--calib")
    picks = (np.linspace(0, len(files) - 1, limit).round().astype(int).tolist() if len(files) > limit
             else list(range(len(files))))
    picked, tried = set(picks), set()
    ims: list[np.ndarray] = []
    used: list[Path] = []
    skipped: list[tuple[Path, str]] = []

    def take(j: int) -> bool:
        tried.add(j)
        im, why = _read_or_reason(files[j])
        if im is None:
            skipped.append((files[j], why))
            return False
        h, w = im.shape[:2]
        t, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        ims.append(np.ascontiguousarray(im[t:t + max_side, left:left + max_side]))
        used.append(files[j])
        return True

    for i in picks:
        for j in range(i, len(files)):
            if j not in tried and (j == i or j not in picked) and take(j):
                break
    for j in range(len(files)):  # broken picks near the end: fill from what is left
        if len(ims) >= limit:
            break
        if j not in tried:
            take(j)
    return ims, used, skipped


def _read_usable(files: list[Path], limit: int) -> tuple[list[np.ndarray], list[Path], list[tuple[Path, str]]]:
    """Read ``files`` in order until ``limit`` images are decoded; the unreadable ones are
    returned with the reason instead of raised."""
    ims: list[np.ndarray] = []
    used: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for f in files:
        if len(ims) >= limit:
            break
        im, why = _read_or_reason(f)
        if im is None:
            skipped.append((f, why))
        else:
            ims.append(im)
            used.append(f)
    return ims, used, skipped


def _read_or_reason(path: Path) -> tuple[np.ndarray | None, str]:
    """The decoded image, or None and why it cannot be read (the error's message, without its fix)."""
    from pixelwise.errors import ImageReadError
    from pixelwise.runtime.imageio import read_image

    try:
        return read_image(path), ""
    except ImageReadError as exc:
        return None, str(exc).replace(f" Fix: {exc.fix}", "") if exc.fix else str(exc)
