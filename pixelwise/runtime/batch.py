"""Batch prediction over a file, folder or glob, with a progress bar (tqdm when installed)."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Iterable, Iterator

from pixelwise.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".npy")


def expand_sources(src: str | Path) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob -> image paths."""
    s, p = str(src), Path(src)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    elif any(ch in s for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(s, recursive=True) if Path(f).suffix.lower() in IMAGE_EXTS)
    elif p.exists():
        files = [p]
    else:
        raise DatasetError(f"Nothing to predict: {s} does not exist.", path=s,
                           fix="pass an image file, a folder of images or a glob like 'imgs/*.jpg'")
    if not files:
        raise DatasetError(f"No images found in {s}.", path=s,
                           fix=f"use files with one of the extensions {', '.join(IMAGE_EXTS)}")
    return files


def progress_bar(items: Iterable[Any], total: int, desc: str, enabled: bool = True) -> Iterator[Any]:
    try:
        from tqdm import tqdm
    except ImportError:  # the runtime extra does not require tqdm
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, desc=desc, disable=not enabled)
        return
    for i, item in enumerate(items, 1):
        if enabled:
            print(f"\r{desc}: {i}/{total}", end="" if i < total else "\n", flush=True)
        yield item


def predict_folder(model: Any, source: str | Path, out_dir: str | Path, save_labels: bool = True,
                   save_color: bool = True, save_overlay: bool = False, progress: bool = True,
                   files: list[Path] | None = None, **predict_kw: Any) -> list[Path]:
    """Predict every image; write ``<stem>_labels.png`` / ``_color.png`` / ``_overlay.png``.

    ``model`` is anything with the Segmenter API (RuntimeSegmenter or the torch Segmenter)."""
    from pixelwise.data.io import atomic_write_bytes  # numpy + Pillow only
    from pixelwise.runtime.imageio import encode_png, read_image

    files = files if files is not None else expand_sources(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for f in progress_bar(files, len(files), "predict", progress):
        image = read_image(f)
        pred = model.predict(image, **predict_kw)
        outputs = []
        if save_labels:
            outputs.append(("labels", pred.labels))
        if save_color:
            outputs.append(("color", model.colorize(pred.labels)))
        if save_overlay:
            outputs.append(("overlay", model.overlay(image, pred.labels)))
        for kind, arr in outputs:
            path = out / f"{f.stem}_{kind}.png"
            atomic_write_bytes(path, encode_png(arr))
            written.append(path)
    return written
