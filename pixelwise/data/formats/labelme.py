"""LabelMe JSON: one file per image with polygon / rectangle / circle shapes.

Classes come from a ``labels.txt`` next to the files (LabelMe's own convention: one name per
line, ``__ignore__`` and ``_background_`` first) or, without it, ``_background_`` plus the sorted
labels found. ``__ignore__`` shapes paint the ignore value; ``_background_`` is class 0. Shapes are
painted in file order (a later shape covers an earlier one, as LabelMe's ``labelme2voc`` does);
shapes sharing a ``group_id`` are parts of one object and need no special handling for a
semantic map. ``line``/``linestrip``/``point`` shapes have no area and are skipped with a
warning. Points outside the image are clipped with a warning; polygons with fewer than 3 points
and labels missing from ``labels.txt`` are errors naming the file and shape index.
Folders ``train/``, ``val/``, ``test/`` under the root become splits; otherwise all is ``train``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from pixelwise.data.formats.base import Item, Reader, warn
from pixelwise.data.io import displayed_size, open_image
from pixelwise.data.formats.coco import load_json
from pixelwise.errors import DatasetError

IGNORE, BACKGROUND = "__ignore__", "_background_"


@dataclass
class LabelMeReader(Reader):
    item_list: list[Item] = field(default_factory=list)
    class_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path, labels: str | Path | None = None) -> "LabelMeReader":
        root = Path(root)
        files = sorted(p for p in root.rglob("*.json") if p.is_file())
        if not files:
            raise DatasetError(f"No LabelMe .json files under {root}.", path=root,
                               fix="point at the folder holding the annotation files")
        docs: list[tuple[Path, dict]] = []
        found: set[str] = set()
        for f in files:
            d = load_json(f)
            if not isinstance(d, dict) or "shapes" not in d:
                continue  # another JSON (e.g. a COCO file) in the folder
            for i, s in enumerate(d["shapes"]):
                if "label" not in s or "points" not in s:
                    raise DatasetError(f"{f}: shape {i} lacks 'label' or 'points'.", path=f,
                                       fix="re-save the file with LabelMe")
                found.add(str(s["label"]))
            docs.append((f, d))
        if not docs:
            raise DatasetError(f"No LabelMe annotation files under {root}.", path=root,
                               fix="LabelMe files hold 'shapes'; point at their folder")
        lab_file = Path(labels) if labels else root / "labels.txt"
        if lab_file.exists():
            names = [ln.strip() for ln in lab_file.read_text().splitlines() if ln.strip()]
            names = [n for n in names if n != IGNORE]
            if BACKGROUND not in names:
                names.insert(0, BACKGROUND)
        else:
            names = [BACKGROUND] + sorted(found - {BACKGROUND, IGNORE})
        class_of = {n: i for i, n in enumerate(names)}
        class_of[IGNORE] = 255
        r = cls(root=root, names=names, ignore_index=255, format="labelme", class_of=class_of,
                notes=["shapes painted in file order (later on top); __ignore__ -> 255; "
                       "line/point shapes skipped"])
        for f, d in docs:
            for i, s in enumerate(d["shapes"]):
                if s["label"] not in class_of:
                    raise DatasetError(f"{f}: shape {i} has label '{s['label']}' not in {lab_file}.",
                                       path=f, fix=f"add '{s['label']}' to {lab_file.name} or fix the shape")
            ip = d.get("imagePath")
            img = (f.parent / ip) if ip else None
            if img is None or not img.exists():
                raise DatasetError(f"{f}: image {ip!r} is referenced but missing.", path=f,
                                   fix="put the image next to the JSON or correct 'imagePath'")
            rel = f.relative_to(root).parts
            split = rel[0] if len(rel) > 1 and rel[0] in ("train", "val", "test") else "train"
            size = (int(d["imageHeight"]), int(d["imageWidth"])) if d.get("imageHeight") else None
            shapes = tuple((str(s["label"]), s.get("shape_type") or "polygon",
                            tuple(tuple(map(float, p)) for p in s["points"]), s.get("group_id"))
                           for s in d["shapes"])
            r.item_list.append(Item(split, f.stem, img, (str(f), size, shapes)))
        return r

    def items(self) -> Iterator[Item]:
        yield from self.item_list

    def image_size(self, item: Item) -> tuple[int, int]:
        size = item.ref[1]
        if size:
            return size
        with open_image(item.image) as im:
            return displayed_size(im)

    def label(self, item: Item) -> np.ndarray:
        path, _, shapes = item.ref
        h, w = self.image_size(item)
        im = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(im)
        for i, (name, kind, pts, _group) in enumerate(shapes):
            value = self.class_of[name]
            arr = np.asarray(pts, np.float64).reshape(-1, 2)
            if arr.size and (arr[:, 0].min() < 0 or arr[:, 1].min() < 0 or arr[:, 0].max() > w
                             or arr[:, 1].max() > h):
                warn(f"{path}: shape {i} ('{name}') has points outside the {w}x{h} image; clipped.")
                arr[:, 0] = arr[:, 0].clip(0, w)
                arr[:, 1] = arr[:, 1].clip(0, h)
            xy = [tuple(p) for p in arr.tolist()]
            if kind == "polygon":
                if len(xy) < 3:
                    raise DatasetError(f"{path}: shape {i} ('{name}') is a polygon with {len(xy)} "
                                       "point(s); at least 3 are needed.", path=path,
                                       fix="redraw the polygon in LabelMe or delete it")
                draw.polygon(xy, fill=value, outline=value)
            elif kind == "rectangle" and len(xy) == 2:
                (x0, y0), (x1, y1) = xy
                draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value)
            elif kind == "circle" and len(xy) == 2:
                (cx, cy), (px, py) = xy
                rad = float(np.hypot(px - cx, py - cy))
                draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=value)
            else:
                warn(f"{path}: shape {i} ('{name}', {kind}) has no area; skipped.")
        return np.asarray(im)
