"""Ultralytics YOLO segmentation labels: one ``.txt`` per image, ``cls x1 y1 x2 y2 ...`` per object.

Coordinates are normalised to [0, 1]; labels live where the image path has ``labels`` instead
of ``images`` (Ultralytics' rule) and class names come from the data YAML's ``names``.
Semantic maps: class 0 is ``background`` (pixels no polygon covers) and YOLO class k becomes
k+1. Overlapping polygons are painted largest first (smaller objects on top), like COCO. An
image without a ``.txt`` is all background (Ultralytics' convention for negatives). Points
outside [0, 1] are clipped with a warning; lines with fewer than 3 points (e.g. detection
boxes), odd coordinate counts or unknown classes are errors naming the file and line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml
from PIL import Image, ImageDraw

from pixelwise.data.formats.base import Item, Reader, warn
from pixelwise.data.io import displayed_size, open_image
from pixelwise.data.spec import IMAGE_EXTS
from pixelwise.errors import ConfigError, DatasetError, ImageReadError


def label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def parse_polygons(path: Path, num_classes: int) -> list[tuple[int, np.ndarray]]:
    """(class, Nx2 normalised points) per line, with errors naming file and line."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            coords = np.asarray([float(v) for v in parts[1:]], np.float64)
        except ValueError:
            raise DatasetError(f"{path}:{n}: not 'class x1 y1 x2 y2 ...': {line.strip()[:60]!r}.",
                               path=path, fix="write an integer class followed by coordinates") from None
        if len(coords) % 2:
            raise DatasetError(f"{path}:{n}: odd number of coordinates ({len(coords)}).", path=path,
                               fix="give x y pairs")
        if len(coords) < 6:
            what = " (a detection box 'cx cy w h'?)" if len(coords) == 4 else ""
            raise DatasetError(f"{path}:{n}: polygon with {len(coords) // 2} point(s){what}; at least 3 "
                               "are needed.", path=path,
                               fix="use segmentation labels (polygons), not detection boxes")
        if not 0 <= cls < num_classes:
            raise DatasetError(f"{path}:{n}: class {cls} is not in the YAML's names (0..{num_classes - 1}).",
                               path=path, fix="add the class to 'names:' or fix the line")
        pts = coords.reshape(-1, 2)
        if pts.min() < 0 or pts.max() > 1:
            warn(f"{path}:{n}: coordinates outside [0, 1]; clipped to the image.")
            pts = pts.clip(0, 1)
        out.append((cls, pts))
    return out


def rasterize(polys: list[tuple[int, np.ndarray]], h: int, w: int, offset: int = 1,
              fill: int = 0) -> np.ndarray:
    """Paint (class, normalised polygon) largest first; returns HxW uint8."""
    def area(p: np.ndarray) -> float:
        x, y = p[:, 0] * w, p[:, 1] * h
        return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))

    im = Image.new("L", (w, h), fill)
    draw = ImageDraw.Draw(im)
    for cls, pts in sorted(polys, key=lambda cp: -area(cp[1])):
        xy = [(float(x * w), float(y * h)) for x, y in pts]
        draw.polygon(xy, fill=cls + offset, outline=cls + offset)
    return np.asarray(im)


def _list_images(entry: str | list, base: Path, yaml_path: Path) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for e in entries:
        p = Path(e) if Path(e).is_absolute() else base / e
        if p.is_dir():
            for dirpath, _, files in os.walk(p):
                out += [Path(dirpath) / f for f in files if f.lower().endswith(IMAGE_EXTS)]
        elif p.suffix == ".txt" and p.exists():
            for line in p.read_text().splitlines():
                if line.strip():
                    q = Path(line.strip())
                    out.append(q if q.is_absolute() else (p.parent / q).resolve())
        else:
            raise DatasetError(f"{yaml_path}: split folder {p} not found.", path=yaml_path,
                               fix="correct 'path:' or the split entry")
    return sorted(out)


@dataclass
class YOLOReader(Reader):
    split_images: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def open(cls, yaml_path: str | Path) -> "YOLOReader":
        yp = Path(yaml_path)
        if yp.is_dir():
            cands = sorted(yp.glob("*.yaml")) + sorted(yp.glob("*.yml"))
            if not cands:
                raise DatasetError(f"No data YAML in {yp}.", path=yp, fix="pass the YOLO data .yaml")
            yp = cands[0]
        try:
            raw = yaml.safe_load(yp.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read YOLO data YAML {yp}: {exc}".replace("\n", " "), path=yp,
                              fix="pass a valid Ultralytics data YAML") from None
        names = raw.get("names")
        if isinstance(names, dict):
            names = [str(names[k]) for k in sorted(names, key=int)]
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{yp} has no 'names:'.", path=yp, fix="add names: {0: cls0, ...}")
        base = Path(raw.get("path", "."))
        base = base if base.is_absolute() else (yp.parent / base)
        r = cls(root=base, names=["background"] + [str(n) for n in names], ignore_index=255,
                format="yolo", notes=["class 0 = background (uncovered pixels); YOLO class k -> k+1",
                                      "overlapping polygons: larger first, smaller on top"])
        for split in ("train", "val", "test"):
            if raw.get(split):
                r.split_images[split] = _list_images(raw[split], base, yp)
        if not r.split_images:
            raise ConfigError(f"{yp} names no split.", path=yp, fix="add 'train: images/train'")
        return r

    def items(self) -> Iterator[Item]:
        for split, imgs in self.split_images.items():
            for img in imgs:
                yield Item(split, img.stem, img, label_path(img))

    def image_size(self, item: Item) -> tuple[int, int]:
        try:
            with open_image(item.image) as im:  # header only; YOLO coordinates are of the displayed image
                return displayed_size(im)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"Cannot read image {item.image} ({exc}).", path=item.image,
                                 fix="re-export or remove the image") from None

    def label(self, item: Item) -> np.ndarray:
        h, w = self.image_size(item)
        txt = Path(item.ref)
        polys = parse_polygons(txt, len(self.names) - 1) if txt.exists() else []
        return rasterize(polys, h, w)
