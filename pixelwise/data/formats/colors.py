"""RGB colour-coded masks (CamVid's original 32-class masks, VOC/Cityscapes colour renders).

Each colour of a colour table is one class; colours listed as void become the ignore value. The
table comes from (in order): an explicit table (name of a known table, or a text file of
``R G B name`` lines as in CamVid's ``label_colors.txt``), the dataset YAML's ``colors:``, or
automatic detection: the colours found in a sample of masks are matched against the known tables
and the one covering every colour wins. Colours outside the table are an error that lists each
unknown colour, its pixel count and a file where it occurs; nothing is guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from pixelwise.data.formats.base import Item, Reader, spec_items
from pixelwise.data.io import read_image
from pixelwise.data.pairing import paired_samples
from pixelwise.data.spec import DatasetSpec, default_palette
from pixelwise.errors import ConfigError, LabelError

Color = tuple[int, int, int]

# CamVid, original 32 classes (label_colors.txt of the CamVid release). Void is ignored.
CAMVID32: list[tuple[Color, str]] = [
    ((64, 128, 64), "Animal"), ((192, 0, 128), "Archway"), ((0, 128, 192), "Bicyclist"),
    ((0, 128, 64), "Bridge"), ((128, 0, 0), "Building"), ((64, 0, 128), "Car"),
    ((64, 0, 192), "CartLuggagePram"), ((192, 128, 64), "Child"), ((192, 192, 128), "Column_Pole"),
    ((64, 64, 128), "Fence"), ((128, 0, 192), "LaneMkgsDriv"), ((192, 0, 64), "LaneMkgsNonDriv"),
    ((128, 128, 64), "Misc_Text"), ((192, 0, 192), "MotorcycleScooter"), ((128, 64, 64), "OtherMoving"),
    ((64, 192, 128), "ParkingBlock"), ((64, 64, 0), "Pedestrian"), ((128, 64, 128), "Road"),
    ((128, 128, 192), "RoadShoulder"), ((0, 0, 192), "Sidewalk"), ((192, 128, 128), "SignSymbol"),
    ((128, 128, 128), "Sky"), ((64, 128, 192), "SUVPickupTruck"), ((0, 0, 64), "TrafficCone"),
    ((0, 64, 64), "TrafficLight"), ((192, 64, 128), "Train"), ((128, 128, 0), "Tree"),
    ((192, 128, 192), "Truck_Bus"), ((64, 0, 64), "Tunnel"), ((192, 192, 0), "VegetationMisc"),
    ((64, 192, 0), "Wall"), ((0, 0, 0), "Void")]

# CamVid, SegNet's 11 classes (the colours pixelwise's CamVid dataset.yaml uses).
CAMVID11: list[tuple[Color, str]] = [
    ((128, 128, 128), "Sky"), ((128, 0, 0), "Building"), ((192, 192, 128), "Pole"),
    ((128, 64, 128), "Road"), ((60, 40, 222), "Pavement"), ((128, 128, 0), "Tree"),
    ((192, 128, 128), "SignSymbol"), ((64, 64, 128), "Fence"), ((64, 0, 128), "Car"),
    ((64, 64, 0), "Pedestrian"), ((0, 128, 192), "Bicyclist"), ((0, 0, 0), "Void")]

# Cityscapes train classes (trainId order) as rendered in *_gtFine_color.png; black is void.
CITYSCAPES19: list[tuple[Color, str]] = [
    ((128, 64, 128), "road"), ((244, 35, 232), "sidewalk"), ((70, 70, 70), "building"),
    ((102, 102, 156), "wall"), ((190, 153, 153), "fence"), ((153, 153, 153), "pole"),
    ((250, 170, 30), "traffic light"), ((220, 220, 0), "traffic sign"), ((107, 142, 35), "vegetation"),
    ((152, 251, 152), "terrain"), ((70, 130, 180), "sky"), ((220, 20, 60), "person"),
    ((255, 0, 0), "rider"), ((0, 0, 142), "car"), ((0, 0, 70), "truck"), ((0, 60, 100), "bus"),
    ((0, 80, 100), "train"), ((0, 0, 230), "motorcycle"), ((119, 11, 32), "bicycle"),
    ((0, 0, 0), "Void")]


def _voc_table() -> list[tuple[Color, str]]:
    from pixelwise.data.formats.voc import VOC_NAMES

    pal = default_palette(len(VOC_NAMES))
    return [(c, n) for c, n in zip(pal, VOC_NAMES)] + [((224, 224, 192), "Void")]


KNOWN_TABLES = {"camvid32": lambda: CAMVID32, "camvid11": lambda: CAMVID11,
                "cityscapes": lambda: CITYSCAPES19, "voc": _voc_table}
VOID_NAMES = {"void", "unlabelled", "unlabeled", "ignore", "__ignore__"}


@dataclass
class ColorTable:
    """Colour -> class id, with void colours mapped to the ignore value."""

    names: list[str]
    colors: list[Color]
    void: list[Color] = field(default_factory=list)
    name: str = "custom"

    @classmethod
    def from_pairs(cls, pairs: list[tuple[Color, str]], name: str = "custom") -> "ColorTable":
        names, colors, void = [], [], []
        for c, n in pairs:
            if n.lower() in VOID_NAMES:
                void.append(tuple(c))
            else:
                names.append(n)
                colors.append(tuple(c))
        return cls(names, colors, void, name)

    @classmethod
    def load(cls, table: str | Path) -> "ColorTable":
        """A known table's name or a text file of ``R G B name`` lines."""
        if str(table).lower() in KNOWN_TABLES:
            return cls.from_pairs(KNOWN_TABLES[str(table).lower()](), str(table).lower())
        path = Path(table)
        if not path.exists():
            raise ConfigError(f"Colour table {table} is neither a file nor a known table.", path=path,
                              fix=f"use one of {', '.join(KNOWN_TABLES)} or a file of 'R G B name' lines")
        pairs = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split()
            try:
                rgb = tuple(int(v) for v in parts[:3])
                assert len(parts) >= 4 and all(0 <= v <= 255 for v in rgb)
            except (ValueError, AssertionError):
                raise ConfigError(f"{path}:{n}: expected 'R G B name', got {line.strip()!r}.",
                                  path=path, fix="write one 'R G B name' line per class") from None
            pairs.append((rgb, " ".join(parts[3:])))
        return cls.from_pairs(pairs, path.stem)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted packed colours and the class id of each (void -> -1)."""
        k = [_pack(c) for c in self.colors] + [_pack(c) for c in self.void]
        v = list(range(len(self.colors))) + [-1] * len(self.void)
        order = np.argsort(k)
        return np.asarray(k, np.int64)[order], np.asarray(v, np.int64)[order]


def _pack(c: Color) -> int:
    return (int(c[0]) << 16) | (int(c[1]) << 8) | int(c[2])


def _unpack(k: int) -> Color:
    return (k >> 16) & 255, (k >> 8) & 255, k & 255


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 colours as displayed (palette PNGs are rendered through their palette)."""
    return read_image(path, as_displayed=False)  # a mask's pixels are data


def unique_colors(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    return np.unique(packed, return_counts=True)


def rgb_to_index(rgb: np.ndarray, table: ColorTable, ignore_index: int, path: Path) -> np.ndarray:
    """Map every pixel's colour to its class; unknown colours raise a LabelError listing them."""
    keys, vals = table.keys()
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[pos] == packed
    if not known.all():
        u, cnt = np.unique(packed[~known], return_counts=True)
        order = np.argsort(-cnt)[:8]
        shown = ", ".join(f"{_unpack(int(u[i]))} x{int(cnt[i])}" for i in order)
        raise LabelError(
            f"Colour mask {path} has {len(u)} colour(s) not in the '{table.name}' colour table: "
            f"{shown}.", path=path,
            fix="add these colours to the table (file of 'R G B name' lines, void names map to "
                "ignore) or choose another table; JPEG-saved colour masks cannot be mapped exactly")
    out = vals[pos]
    dtype = np.uint8 if max(len(table.names) - 1, ignore_index) <= 255 else np.uint16
    return np.where(out < 0, ignore_index, out).astype(dtype)


def detect_table(files: list[Path], sample: int = 16) -> ColorTable:
    """Pick the known table that covers every colour of up to ``sample`` masks."""
    found: dict[int, tuple[int, Path]] = {}
    step = max(1, len(files) // sample)
    for p in files[::step][:sample]:
        u, c = unique_colors(read_rgb(p))
        for k, n in zip(u.tolist(), c.tolist()):
            prev = found.get(k)
            found[k] = (n + (prev[0] if prev else 0), prev[1] if prev else p)
    best, best_missing = None, None
    for name in KNOWN_TABLES:
        t = ColorTable.load(name)
        table_keys = set(t.keys()[0].tolist())
        missing = [k for k in found if k not in table_keys]
        if not missing:
            # prefer the smallest table covering everything (camvid11 before camvid32)
            if best is None or len(t.colors) < len(best.colors):
                best = t
        elif best_missing is None or len(missing) < len(best_missing[1]):
            best_missing = (name, missing)
    if best is not None:
        return best
    name, missing = best_missing if best_missing else ("none", list(found))
    missing = sorted(missing, key=lambda k: -found[k][0])
    shown = "; ".join(f"{_unpack(k)} x{found[k][0]} (e.g. {found[k][1].name})" for k in missing[:8])
    raise LabelError(
        f"The colours of these masks match no known colour table ({', '.join(KNOWN_TABLES)}); "
        f"closest is '{name}', which lacks {len(missing)} colour(s): {shown}.",
        path=files[0].parent if files else None,
        fix="give the table with --opt table=FILE ('R G B name' lines) or 'colors:' in the dataset "
            "YAML, or repaint the stray pixels")


@dataclass
class ColorMaskReader(Reader):
    spec: DatasetSpec | None = None
    table: ColorTable | None = None

    @classmethod
    def open(cls, spec_path: str | Path, table: str | Path | None = None,
             ignore_index: int | None = None) -> "ColorMaskReader":
        spec_path = Path(spec_path)
        spec = DatasetSpec.load(spec_path)
        yaml_path = spec.source or spec_path
        raw = yaml.safe_load(Path(yaml_path).read_text()) or {}
        if table is not None:
            t = ColorTable.load(table)
        elif raw.get("colors"):
            t = ColorTable(list(spec.names), list(spec.colors), name=str(yaml_path))
        else:
            files = [s.label for sp in spec.splits.values() for s in paired_samples(sp)]
            t = detect_table(files)
        ign = ignore_index if ignore_index is not None else (
            spec.ignore_index if spec.ignore_index >= len(t.names) else 255)
        return cls(root=spec.root, names=list(t.names), colors=list(t.colors), ignore_index=ign,
                   format="colors", spec=spec, table=t,
                   notes=[f"colours mapped with the '{t.name}' table; void colours -> {ign}"])

    def items(self) -> Iterator[Item]:
        assert self.spec is not None
        return spec_items(self.spec)

    def label(self, item: Item) -> np.ndarray:
        assert self.table is not None
        return rgb_to_index(read_rgb(item.ref), self.table, self.ignore_index, item.ref)
