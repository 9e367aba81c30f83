"""COCO panoptic: ``panoptic_<split>.json`` + one RGB PNG per image (segment id = R + 256 G + 256^2 B).

Every segment's ``category_id`` (things and stuff alike) becomes a contiguous class (categories
sorted by id); id 0 (void) is the ignore value. Crowd segments follow the ``crowd`` rule of the
COCO instances reader (``ignore`` by default). Segment ids in a PNG that are missing from the
JSON, and unknown category ids, are errors naming the file and the segment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader
from pixelwise.data.formats.coco import load_json, split_from_name
from pixelwise.data.io import read_image
from pixelwise.errors import ConfigError, DatasetError, LabelError


@dataclass
class COCOPanopticReader(Reader):
    crowd: str = "ignore"
    item_list: list[Item] = field(default_factory=list)

    @classmethod
    def open(cls, json_path: str | Path, images: str | Path | None = None,
             masks: str | Path | None = None, crowd: str = "ignore") -> "COCOPanopticReader":
        if crowd not in ("ignore", "class"):
            raise ConfigError(f"Unknown crowd rule '{crowd}'.", fix="use ignore or class")
        jp = Path(json_path)
        data = load_json(jp)
        if not isinstance(data, dict) or "annotations" not in data or "categories" not in data:
            raise DatasetError(f"{jp} is not a COCO panoptic file.", path=jp,
                               fix="pass panoptic_<split>.json")
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        cat_to_cls = {int(c["id"]): i for i, c in enumerate(cats)}
        base = jp.parent.parent if jp.parent.name == "annotations" else jp.parent
        mask_dir = Path(masks) if masks else next(
            (d for d in (jp.parent / jp.stem, base / jp.stem) if d.is_dir()), jp.parent / jp.stem)
        split = split_from_name(jp)
        suffix = jp.stem.split("_")[-1]
        img_dir = Path(images) if images else next(
            (d for d in (base / suffix, base / "images" / suffix, base / "images") if d.is_dir()), base)
        files = {int(im["id"]): im["file_name"] for im in data.get("images", [])}
        r = cls(root=base, names=[str(c["name"]) for c in cats], ignore_index=255,
                format="coco-panoptic", crowd=crowd,
                notes=["segments -> category classes; void (id 0) -> 255; instances not kept"])
        for a in data["annotations"]:
            iid = a.get("image_id")
            if iid not in files:
                raise DatasetError(f"{jp}: panoptic annotation for unknown image id {iid}.", path=jp,
                                   fix="add the image to 'images' or remove the annotation")
            png = mask_dir / a["file_name"]
            img = img_dir / files[iid]
            for p in (png, img):
                if not p.exists():
                    raise DatasetError(f"{jp}: image id {iid} references {p}, which is missing.",
                                       path=jp, fix="restore the file or pass its folder (--opt images=DIR / --opt masks=DIR)")
            segs = []
            for s in a.get("segments_info", []):
                if int(s["category_id"]) not in cat_to_cls:
                    raise DatasetError(f"{jp}: segment {s.get('id')} of image {iid} has unknown "
                                       f"category id {s['category_id']}.", path=jp,
                                       fix="add the category or fix the segment")
                cls_id = 255 if (s.get("iscrowd") and crowd == "ignore") else cat_to_cls[int(s["category_id"])]
                segs.append((int(s["id"]), cls_id))
            r.item_list.append(Item(split, Path(files[iid]).stem, img, (str(png), tuple(segs))))
        return r

    def items(self) -> Iterator[Item]:
        yield from self.item_list

    def label(self, item: Item) -> np.ndarray:
        png, segs = item.ref
        rgb = read_image(png, as_displayed=False).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        out = np.full(ids.shape, self.ignore_index, np.uint8)
        known = {0}
        for sid, cls_id in segs:
            out[ids == sid] = cls_id
            known.add(sid)
        extra = set(np.unique(ids).tolist()) - known
        if extra:
            raise LabelError(f"{png} holds segment id(s) {sorted(extra)[:10]} missing from the JSON.",
                             path=png, fix="re-export the panoptic PNG and JSON together")
        return out
