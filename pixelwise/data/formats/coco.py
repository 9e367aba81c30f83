"""COCO instances JSON (polygons, multi-part polygons, RLE) rasterised with pycocotools.

Rules (documented because COCO itself does not define a semantic map):

* Classes: categories sorted by id become contiguous classes. With ``background=True`` (default)
  class 0 is ``background`` (every unannotated pixel) and category k-th becomes class k; with
  ``background=False`` categories are 0..K-1 and unannotated pixels are the ignore value (255).
  Files written by ``pixelwise data convert --to coco`` record this choice and are read back
  exactly.
* Overlaps: instances are painted largest first, so a smaller instance lying on a larger one
  stays visible (ties: lower annotation id first). The last painter wins a contested pixel.
* Crowd regions (``iscrowd: 1``): ``crowd="ignore"`` (default) paints them with the ignore value
  *before* the other instances, so only pixels no regular instance claims are ignored;
  ``crowd="class"`` treats them like any instance; ``crowd="skip"`` drops them.
* Polygon points outside the image are clipped to its border with a warning naming the
  annotation id; polygons with fewer than 3 points, unknown image or category ids, RLE sizes
  that differ from the image, malformed JSON and missing image files are errors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader, warn
from pixelwise.errors import ConfigError, DatasetError


def load_json(path: Path) -> Any:
    """json.load with an error naming the file, line and column."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"Annotation file not found: {path}.", path=path,
                           fix="check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DatasetError(f"{path} is not valid JSON{where}: {getattr(exc, 'msg', exc)}.", path=path,
                           fix="repair or re-export the file") from None


def split_from_name(path: Path) -> str:
    n = path.stem.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in n:
            return split
    return "train"


def _mask_api():
    try:
        from pycocotools import mask as mask_utils
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("Reading COCO needs pycocotools.",
                          fix="pip install 'pixelwise[formats]' (or pip install pycocotools)") from None
    return mask_utils


@dataclass
class _Ann:
    id: int
    cls: int
    crowd: bool
    area: float
    segm: Any


@dataclass
class COCOReader(Reader):
    crowd: str = "ignore"
    background: bool = True
    anns: dict[tuple[str, int], list[_Ann]] = field(default_factory=dict)
    sizes: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    item_list: list[Item] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, source: str | Path | dict[str, str | Path], images: str | Path | dict | None = None,
             crowd: str = "ignore", background: bool | None = None) -> "COCOReader":
        """``source``: one JSON, {split: JSON}, or a folder with ``annotations/*.json``.

        ``images``: the image folder (or {split: folder}); default: the folder named like the
        JSON's suffix (``instances_val2017.json`` -> ``val2017/``) next to ``annotations/``, else
        the JSON's own folder or ``images/``.
        """
        if crowd not in ("ignore", "class", "skip"):
            raise ConfigError(f"Unknown crowd rule '{crowd}'.", fix="use ignore, class or skip")
        jsons = _resolve_jsons(source)
        r = cls(root=Path(next(iter(jsons.values()))).parent, format="coco", crowd=crowd)
        cats_seen: list[dict] | None = None
        for split, jpath in jsons.items():
            data = load_json(jpath)
            if not isinstance(data, dict) or "images" not in data or "categories" not in data:
                raise DatasetError(f"{jpath} is not a COCO instances file (no 'images'/'categories').",
                                   path=jpath, fix="pass an instances_*.json file")
            cats = sorted(data["categories"], key=lambda c: int(c["id"]))
            if cats_seen is None:
                cats_seen = cats
                meta = (data.get("info") or {}).get("pixelwise", {}) if isinstance(data.get("info"), dict) else {}
                bg = background if background is not None else bool(meta.get("background", True))
                r.background = bg
                r.category_ids = [int(c["id"]) for c in cats]
                r.names = (["background"] if bg else []) + [str(c["name"]) for c in cats]
                if meta.get("colors") and len(meta["colors"]) == len(r.names):
                    r.colors = [tuple(c) for c in meta["colors"]]
                r.ignore_index = int(meta.get("ignore_index", 255))
            elif [int(c["id"]) for c in cats] != r.category_ids:
                raise DatasetError(f"{jpath} has other categories than the first annotation file.",
                                   path=jpath, fix="convert each split's file separately")
            img_dir = _image_dir(jpath, split, images)
            r._index(split, jpath, data, img_dir)
        r.notes = [f"categories -> contiguous classes ({'0 = background' if r.background else 'unannotated = ignore'})",
                   "overlaps: larger instances painted first, smaller on top",
                   f"crowd regions: {crowd}", "instance identities are not kept"]
        return r

    def _index(self, split: str, jpath: Path, data: dict, img_dir: Path) -> None:
        cat_to_cls = {cid: i + (1 if self.background else 0) for i, cid in enumerate(self.category_ids)}
        images: dict[int, dict] = {}
        for im in data["images"]:
            try:
                iid, fn, h, w = int(im["id"]), str(im["file_name"]), int(im["height"]), int(im["width"])
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{jpath}: image entry {im!r:.80} lacks id/file_name/height/width.",
                                   path=jpath, fix="re-export the COCO file") from None
            path = img_dir / fn
            if not path.exists():
                raise DatasetError(f"{jpath}: image id {iid} references {path}, which is missing.",
                                   path=jpath, fix="pass the image folder (--opt images=DIR) or restore the file")
            images[iid] = im
            self.sizes[(split, iid)] = (h, w)
            self.anns[(split, iid)] = []
            self.item_list.append(Item(split, Path(fn).stem, path, (split, iid)))
        for a in data.get("annotations", []):
            aid = a.get("id", "?")
            iid = a.get("image_id")
            if iid not in images:
                raise DatasetError(f"{jpath}: annotation {aid} refers to unknown image id {iid}.",
                                   path=jpath, fix="remove the annotation or add its image")
            cid = a.get("category_id")
            if cid not in cat_to_cls:
                raise DatasetError(f"{jpath}: annotation {aid} has unknown category id {cid} "
                                   f"(known: {sorted(cat_to_cls)[:20]}).", path=jpath,
                                   fix="add the category to 'categories' or fix the annotation")
            h, w = self.sizes[(split, iid)]
            segm = _check_segm(a.get("segmentation"), aid, h, w, jpath)
            self.anns[(split, iid)].append(_Ann(int(aid) if isinstance(aid, int) else 0, cat_to_cls[cid],
                                                bool(a.get("iscrowd", 0)),
                                                float(a.get("area", 0.0)), segm))

    def items(self) -> Iterator[Item]:
        yield from self.item_list

    def image_size(self, item: Item) -> tuple[int, int] | None:
        return self.sizes[item.ref]

    def label(self, item: Item) -> np.ndarray:
        mask_utils = _mask_api()
        h, w = self.sizes[item.ref]
        out = np.full((h, w), 0 if self.background else self.ignore_index, np.uint8
                      if max(len(self.names), self.ignore_index) <= 255 else np.uint16)
        anns = self.anns[item.ref]
        crowd = [a for a in anns if a.crowd]
        regular = [a for a in anns if not a.crowd]
        if self.crowd == "class":
            regular, crowd = anns, []
        elif self.crowd == "skip":
            crowd = []
        for a in crowd:
            out[_decode(mask_utils, a.segm, h, w)] = self.ignore_index
        masks = [(a, _decode(mask_utils, a.segm, h, w)) for a in regular]
        masks.sort(key=lambda am: (-int(am[1].sum()), am[0].id))
        for a, m in masks:
            out[m] = a.cls
        return out


def _check_segm(segm: Any, aid: Any, h: int, w: int, jpath: Path) -> Any:
    if isinstance(segm, list):
        if not segm:
            raise DatasetError(f"{jpath}: annotation {aid} has an empty segmentation.", path=jpath,
                               fix="remove the annotation or draw its polygon")
        polys = []
        for part in segm:
            if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
                n = len(part) // 2 if isinstance(part, list) else 0
                raise DatasetError(f"{jpath}: annotation {aid} has a polygon with {n} point(s); "
                                   "at least 3 (x, y) pairs are needed.", path=jpath,
                                   fix="redraw the polygon or remove the annotation")
            arr = np.asarray(part, np.float64)
            xs, ys = arr[0::2], arr[1::2]
            if xs.min() < 0 or ys.min() < 0 or xs.max() > w or ys.max() > h:
                warn(f"{jpath}: annotation {aid} has points outside its {w}x{h} image; clipped.")
                arr[0::2] = xs.clip(0, w)
                arr[1::2] = ys.clip(0, h)
            polys.append(arr.tolist())
        return polys
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if [int(v) for v in segm["size"]] != [h, w]:
            raise DatasetError(f"{jpath}: annotation {aid} has an RLE of size {segm['size']} for a "
                               f"{h}x{w} image.", path=jpath, fix="re-encode the mask at the image size")
        return segm
    raise DatasetError(f"{jpath}: annotation {aid} has no polygon or RLE segmentation.", path=jpath,
                       fix="give 'segmentation' as a list of polygons or an RLE {size, counts}")


def _decode(mask_utils, segm: Any, h: int, w: int) -> np.ndarray:
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(segm, h, w)
    else:
        rle = {"size": segm["size"], "counts": segm["counts"].encode() if isinstance(segm["counts"], str)
               else segm["counts"]}
    return mask_utils.decode(rle).astype(bool)


def _resolve_jsons(source: str | Path | dict) -> dict[str, Path]:
    if isinstance(source, dict):
        return {str(k): Path(v) for k, v in source.items()}
    path = Path(source)
    if path.is_dir():
        files = sorted((path / "annotations").glob("*.json")) if (path / "annotations").is_dir() \
            else sorted(path.glob("*.json"))
        files = [f for f in files if "panoptic" not in f.name and "caption" not in f.name
                 and "keypoint" not in f.name]
        if not files:
            raise DatasetError(f"No COCO JSON under {path}.", path=path,
                               fix="pass the instances_*.json file itself")
        out: dict[str, Path] = {}
        for f in files:
            split = split_from_name(f)
            if split in out:
                raise DatasetError(f"Two annotation files for split '{split}': {out[split].name}, {f.name}.",
                                   path=path, fix="pass the JSON files explicitly")
            out[split] = f
        return out
    return {split_from_name(path): path}


def _image_dir(jpath: Path, split: str, images: Any) -> Path:
    if isinstance(images, dict):
        return Path(images[split])
    if images is not None:
        return Path(images)
    base = jpath.parent.parent if jpath.parent.name == "annotations" else jpath.parent
    suffix = jpath.stem.split("_")[-1]
    for cand in (base / suffix, base / "images" / suffix, base / "images" / split, base / split,
                 base / "images"):
        if cand.is_dir():
            return cand
    return jpath.parent
