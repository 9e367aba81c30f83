"""ADE20K: the SceneParse150 challenge release and the full release's ``_seg.png`` encoding.

* SceneParse150 (``ADEChallengeData2016/``): ``annotations/<training|validation>/*.png`` hold
  0 = "other objects" and 1..150 = classes. pixelwise shifts by one: 0 -> 255 (ignore), k -> k-1
  (MMSegmentation's ``reduce_zero_label``), giving 150 classes 0..149.
* Full release (``ADE20K_2016_07_26`` / ``ADE20K_2021_17_01``): each ``X.jpg`` has ``X_seg.png``
  whose class is ``R / 10 * 256 + G`` (1-based object index; 0 = unlabelled) and whose B channel
  codes instances. Class k becomes k-1, unlabelled becomes the ignore value. The class names come
  from ``names=`` (a list or a text file, one per line, index 1 first) or ``objects.txt``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pixelwise.data.formats.base import Item, Reader
from pixelwise.data.io import read_image, read_label
from pixelwise.errors import DatasetError, LabelError

ADE150 = ["wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
          "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
          "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
          "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
          "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
          "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
          "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
          "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
          "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
          "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
          "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
          "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
          "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
          "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
          "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
          "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase",
          "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
          "bulletin board", "shower", "radiator", "glass", "clock", "flag"]
SPLIT_NAMES = {"training": "train", "validation": "val", "testing": "test"}


def decode_seg(rgb: np.ndarray) -> np.ndarray:
    """Full-release ``_seg.png`` colours -> 1-based class index (0 = unlabelled)."""
    return (rgb[..., 0].astype(np.int64) // 10) * 256 + rgb[..., 1].astype(np.int64)


def encode_seg(index: np.ndarray) -> np.ndarray:
    """Inverse of ``decode_seg`` (B = 0): used to write test data and for round trips."""
    out = np.zeros(index.shape + (3,), np.uint8)
    out[..., 0] = (index // 256) * 10
    out[..., 1] = index % 256
    return out


def find_sceneparse_root(root: Path) -> Path | None:
    for cand in (root, root / "ADEChallengeData2016"):
        if (cand / "annotations").is_dir() and (cand / "images").is_dir():
            return cand
    return None


@dataclass
class SceneParseReader(Reader):
    base: Path | None = None

    @classmethod
    def open(cls, root: str | Path) -> "SceneParseReader":
        root = Path(root)
        base = find_sceneparse_root(root)
        if base is None:
            raise DatasetError(f"No ADEChallengeData2016 layout under {root}.", path=root,
                               fix="unzip ADEChallengeData2016.zip (images/ and annotations/)")
        return cls(root=root, names=list(ADE150), ignore_index=255, format="ade20k", base=base,
                   notes=["zero label ('other objects') -> 255 (ignore); class k -> k-1"])

    def items(self) -> Iterator[Item]:
        assert self.base is not None
        for d in sorted((self.base / "images").iterdir()):
            if not d.is_dir() or d.name not in SPLIT_NAMES:
                continue
            for img in sorted(d.glob("*.jpg")):
                lab = self.base / "annotations" / d.name / f"{img.stem}.png"
                if not lab.exists():
                    if d.name == "testing":
                        continue
                    raise DatasetError(f"Image {img} has no annotation {lab.name}.", path=lab,
                                       fix="restore annotations/ from ADEChallengeData2016.zip")
                yield Item(SPLIT_NAMES[d.name], img.stem, img, lab)

    def label(self, item: Item) -> np.ndarray:
        raw = read_label(item.ref).astype(np.int64)
        if raw.max(initial=0) > 150:
            raise LabelError(f"{item.ref} holds values above 150.", path=item.ref,
                             fix="use the SceneParse150 annotations unchanged")
        return np.where(raw == 0, 255, raw - 1).astype(np.uint8)


def _load_names(names: list[str] | str | Path | None, root: Path) -> list[str]:
    if isinstance(names, list):
        return names
    path = Path(names) if names else root / "objects.txt"
    if not path.exists():
        raise DatasetError(f"ADE20K full release: no class names ({path} not found).", path=path,
                           fix="pass names= (a text file with one class name per line, the class "
                               "of index 1 first)")
    lines = [ln.split("\t")[0].strip() for ln in path.read_text().splitlines() if ln.strip()]
    return lines


@dataclass
class ADE20KFullReader(Reader):
    @classmethod
    def open(cls, root: str | Path, names: list[str] | str | Path | None = None) -> "ADE20KFullReader":
        root = Path(root)
        n = _load_names(names, root)
        ign = 255 if len(n) <= 255 else 65535
        return cls(root=root, names=list(n), ignore_index=ign, format="ade20k-full",
                   notes=["class index k (1-based) -> k-1; unlabelled -> ignore; instances (B) dropped"])

    def items(self) -> Iterator[Item]:
        for seg in sorted(self.root.rglob("*_seg.png")):
            stem = seg.name[: -len("_seg.png")]
            img = seg.with_name(stem + ".jpg")
            if not img.exists():
                raise DatasetError(f"{seg} has no image {img.name}.", path=seg,
                                   fix="keep each X_seg.png next to its X.jpg")
            parts = {p.name for p in seg.parents}
            split = next((SPLIT_NAMES[p] for p in SPLIT_NAMES if p in parts), "train")
            yield Item(split, stem, img, seg)

    def label(self, item: Item) -> np.ndarray:
        idx = decode_seg(read_image(item.ref, as_displayed=False))
        if idx.max(initial=0) > len(self.names):
            bad = sorted(int(v) for v in np.unique(idx[idx > len(self.names)]))[:10]
            raise LabelError(f"{item.ref} holds class index(es) {bad} beyond the {len(self.names)} names.",
                             path=item.ref, fix="pass the class-name list of this ADE20K release")
        dtype = np.uint8 if self.ignore_index <= 255 else np.uint16
        return np.where(idx == 0, self.ignore_index, idx - 1).astype(dtype)
