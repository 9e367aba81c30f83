"""``pixelwise data convert``: any readable source -> a NEW folder in masks, COCO or YOLO form.

The source is only read. Targets:

* ``masks`` (pixelwise's canonical form, lossless): ``<split>/images/`` (copies of the images),
  ``<split>/labels/<stem>.png`` (palette PNG of class ids; 16-bit PNG beyond 255 classes),
  ``dataset.yaml`` and ``SOURCE.md`` recording the source and what the reader changed.
* ``coco`` (lossless for the semantic map): ``annotations/instances_<split>.json`` with one
  compressed-RLE annotation per class present in each image, every class a category (id =
  class + 1), unannotated pixels = ignore, and ``info.pixelwise`` so pixelwise reads it back to
  the identical map. Lost: instance identities (COCO tools see one "instance" per class).
* ``yolo`` (lossy): ``data.yaml``, ``images/<split>/``, ``labels/<split>/<stem>.txt`` with one
  polygon per connected region (outer contour through pixel centres). Lost: holes (a hole filled
  by another class survives, as smaller regions are painted on top), regions thinner than 3
  pixels, ignore pixels (become background), exact boundaries (within one pixel). A class named
  ``background`` at id 0 becomes YOLO's implicit background.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from pixelwise.data.formats import open_source
from pixelwise.data.formats.base import Item, Reader, parallel_map, warn
from pixelwise.data.io import atomic_write_bytes, displayed_size, open_image, save_png
from pixelwise.errors import ConfigError, DatasetError

TARGETS = ("masks", "coco", "yolo")


def prepare_output(out: Path, source: Path | None = None) -> Path:
    """A new or empty folder, never the source or inside it."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"Output folder {out} exists and is not empty.", path=out,
                           fix="choose a new folder; pixelwise never writes over existing data")
    if source is not None:
        src = Path(source).resolve()
        src = src.parent if src.is_file() else src
        o = out.resolve()
        if o == src or src in o.parents:
            raise DatasetError(f"Output folder {out} is inside the source {src}.", path=out,
                               fix="write the converted dataset to a folder outside the source")
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def new_output_folder(out: Path, source: Path | None = None) -> Iterator[Path]:
    """``prepare_output``'s folder, emptied again (removed, if this made it) when the block fails
    or is interrupted: a half-written dataset would otherwise block the retry ("not empty")."""
    made = [d for d in (Path(out), *Path(out).parents) if not d.exists()]  # what prepare_output creates
    out = prepare_output(out, source)
    try:
        yield out
    except BaseException:
        for child in list(out.iterdir()):  # all written by this block: the folder was new or empty
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for d in made:  # innermost first: the folder, then the parents made for it
            d.rmdir()
        raise


@dataclass(frozen=True)
class _Job:
    reader: Reader
    out: Path
    to: str


def _unique_keys(items: list[Item]) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for it in items:
        k = (it.split, it.key)
        if k in seen:
            raise DatasetError(f"Two images of split '{it.split}' share the name '{it.key}': "
                               f"{seen[k]} and {it.image}.", path=it.image,
                               fix="rename one of them; converted files are named by image stem")
        seen[k] = it.image


def _warn_on_size(item: Item, label: np.ndarray) -> None:
    """A label whose size is not its image's (as displayed) would be refused by training: say so
    while converting, not at the first epoch. COCO and YOLO files state a size of their own, and
    a tool that ignores EXIF records a phone photo's stored, turned size."""
    try:
        with open_image(item.image) as im:
            shown = displayed_size(im)
    except (OSError, SyntaxError, ValueError):
        return  # an unreadable image is 'pixelwise data check's to report
    if shown != label.shape[:2]:
        turned = shown == label.shape[:2][::-1]
        warn(f"{item.image}: its label is {label.shape[1]}x{label.shape[0]} but the image is {shown[1]}x{shown[0]} "
             "as displayed" + (" (its EXIF orientation turns it; the annotation recorded the stored size)"
                               if turned else "") + "; 'pixelwise data check' will refuse the pair.")


def _write_item(job: _Job, item: Item) -> dict[str, Any]:
    r = job.reader
    label = r.label(item)
    _warn_on_size(item, label)
    ext = item.image.suffix.lower()
    if job.to == "masks":
        shutil.copyfile(item.image, job.out / item.split / "images" / f"{item.key}{ext}")
        save_png(job.out / item.split / "labels" / f"{item.key}.png", label,
                 palette=r.class_colors() if label.dtype == np.uint8 else None)
        return {}
    if job.to == "coco":
        shutil.copyfile(item.image, job.out / item.split / f"{item.key}{ext}")
        return {"file_name": f"{item.key}{ext}", "height": int(label.shape[0]),
                "width": int(label.shape[1]), "segments": _rle_per_class(label, len(r.names))}
    # yolo
    shutil.copyfile(item.image, job.out / "images" / item.split / f"{item.key}{ext}")
    shift = 1 if r.names and r.names[0].lower() == "background" else 0
    lines = _polygons(label, len(r.names), shift)
    atomic_write_bytes(job.out / "labels" / item.split / f"{item.key}.txt", "\n".join(lines).encode())
    return {}


def _rle_per_class(label: np.ndarray, n: int) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    out = []
    for c in np.unique(label).tolist():
        if c >= n:
            continue  # ignore: left unannotated
        m = np.asfortranarray((label == c).astype(np.uint8))
        rle = mask_utils.encode(m)
        out.append({"class": int(c), "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                    "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    return out


def _polygons(label: np.ndarray, n: int, shift: int) -> list[str]:
    import cv2

    h, w = label.shape
    lines = []
    for c in np.unique(label).tolist():
        if c >= n or c < shift:
            continue
        m = (label == c).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for cnt in contours:
            pts = cnt.reshape(-1, 2).astype(np.float64)
            if len(pts) < 3:
                continue
            pts[:, 0] = (pts[:, 0] + 0.5) / w
            pts[:, 1] = (pts[:, 1] + 0.5) / h
            lines.append(f"{c - shift} " + " ".join(f"{v:.6f}" for v in pts.ravel()))
    return lines


def convert(source: str | Path | Reader, out: str | Path, to: str = "masks", format: str | None = None,
            workers: int | None = None, **options: Any) -> Path:
    """Convert ``source`` into ``out`` (new folder); returns the written description file."""
    if to not in TARGETS:
        raise ConfigError(f"Unknown target '{to}'.", fix=f"use one of: {', '.join(TARGETS)}")
    reader = source if isinstance(source, Reader) else open_source(source, format, **options)
    with new_output_folder(Path(out), reader.root if isinstance(source, Reader) else Path(source)) as folder:
        return _write_converted(reader, folder, to, workers)


def _write_converted(reader: Reader, out: Path, to: str, workers: int | None) -> Path:
    """Every item of ``reader`` into ``out`` in the ``to`` layout, with its description and SOURCE.md."""
    items = list(reader.items())
    if not items:
        raise DatasetError(f"The source {reader.root} has no labelled images.", path=reader.root,
                           fix="check the path and --format")
    _unique_keys(items)
    splits = list(dict.fromkeys(it.split for it in items))
    for s in splits:
        if to == "masks":
            (out / s / "images").mkdir(parents=True, exist_ok=True)
            (out / s / "labels").mkdir(parents=True, exist_ok=True)
        elif to == "coco":
            (out / s).mkdir(parents=True, exist_ok=True)
            (out / "annotations").mkdir(parents=True, exist_ok=True)
        else:
            (out / "images" / s).mkdir(parents=True, exist_ok=True)
            (out / "labels" / s).mkdir(parents=True, exist_ok=True)
    job = _Job(reader, out, to)
    results = list(parallel_map(_write_item, job, items, workers))
    notes = "\n".join(f"- {n}" for n in reader.notes) or "- none"
    names = list(reader.names)
    colors = [list(c) for c in reader.class_colors()]
    if to == "masks":
        desc = {"path": ".", **{s: s for s in splits}, "images": "images", "labels": "labels",
                "ignore_index": reader.ignore_index, "names": {i: n for i, n in enumerate(names)},
                "colors": {i: c for i, c in enumerate(colors)}}
        target = out / "dataset.yaml"
        target.write_text(yaml.safe_dump(desc, sort_keys=False))
    elif to == "coco":
        cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)]
        for s in splits:
            images, anns = [], []
            for it, res in zip(items, results):
                if it.split != s:
                    continue
                iid = len(images) + 1
                images.append({"id": iid, "file_name": res["file_name"], "height": res["height"],
                               "width": res["width"]})
                for seg in res["segments"]:
                    anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": seg["class"] + 1,
                                 "segmentation": seg["segmentation"], "area": seg["area"],
                                 "bbox": seg["bbox"], "iscrowd": 0})
            data = {"info": {"description": f"converted by pixelwise from {reader.root}",
                             "pixelwise": {"background": False, "ignore_index": reader.ignore_index,
                                           "colors": colors}},
                    "images": images, "annotations": anns, "categories": cats}
            atomic_write_bytes(out / "annotations" / f"instances_{s}.json", json.dumps(data).encode())
        target = out / "annotations"
    else:
        shift = 1 if names and names[0].lower() == "background" else 0
        desc = {"path": ".", **{s: f"images/{s}" for s in splits},
                "names": {i: n for i, n in enumerate(names[shift:])}}
        target = out / "data.yaml"
        target.write_text(yaml.safe_dump(desc, sort_keys=False))
    lost = {"masks": "nothing (lossless)", "coco": "instance identities (one annotation per class)",
            "yolo": "holes, regions under 3 px, ignore pixels, exact boundaries (+-1 px)"
                + ("" if names and names[0].lower() == "background" else
                   "; YOLO has no background class, so reading it back adds class 0 'background' "
                   "and every class id here moves up by one")}[to]
    (out / "SOURCE.md").write_text(
        f"# Converted by pixelwise\n\n- Source: {reader.root} (format: {reader.format})\n"
        f"- Target: {to}; lost in this target: {lost}\n- Images: {len(items)} in splits "
        f"{', '.join(splits)}\n\n## Reader rules applied\n\n{notes}\n")
    return target
