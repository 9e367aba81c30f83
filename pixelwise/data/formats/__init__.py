"""Annotation-format readers: each turns a source into lazy (image, class-id label) items.

``open_source(path, format=None, **options)`` picks the reader (detecting the format from the
layout when not given). Formats: masks, binary, colors, voc, cityscapes, ade20k (SceneParse150),
ade20k-full, coco, coco-panoptic, yolo, labelme.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from pixelwise.data.formats.base import Item, Reader, parallel_map, warn
from pixelwise.errors import ConfigError, DatasetError


def _masks(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.masks import MaskFolderReader

    return MaskFolderReader.from_spec(path)


def _binary(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.binary import BinaryMaskReader

    return BinaryMaskReader.from_spec(path, **kw)


def _colors(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.colors import ColorMaskReader

    return ColorMaskReader.open(path, **kw)


def _voc(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.voc import VOCReader

    return VOCReader.open(path, **kw)


def _cityscapes(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.cityscapes import CityscapesReader

    return CityscapesReader.open(path, **kw)


def _ade20k(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.ade20k import SceneParseReader

    return SceneParseReader.open(path)


def _ade20k_full(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.ade20k import ADE20KFullReader

    return ADE20KFullReader.open(path, **kw)


def _coco(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.coco import COCOReader

    return COCOReader.open(path, **kw)


def _panoptic(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.coco_panoptic import COCOPanopticReader

    return COCOPanopticReader.open(path, **kw)


def _yolo(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.yolo import YOLOReader

    return YOLOReader.open(path)


def _labelme(path: Path, **kw: Any) -> Reader:
    from pixelwise.data.formats.labelme import LabelMeReader

    return LabelMeReader.open(path, **kw)


FORMATS: dict[str, Callable[..., Reader]] = {
    "masks": _masks, "binary": _binary, "colors": _colors, "voc": _voc, "cityscapes": _cityscapes,
    "ade20k": _ade20k, "ade20k-full": _ade20k_full, "coco": _coco, "coco-panoptic": _panoptic,
    "yolo": _yolo, "labelme": _labelme}


def detect_format(path: str | Path) -> str:
    """Guess a source's format from its layout (file names; pixels only to tell 0/255 binary
    masks from class-id masks in a two-class mask folder)."""
    p = Path(path)
    if p.suffix.lower() == ".json" and p.is_file():
        try:
            with open(p, "rb") as fh:
                head = fh.read(1 << 20).decode("utf-8", "replace")
        except OSError as exc:
            raise DatasetError(f"Cannot read {p} ({exc}).", path=p, fix="check the path") from None
        if '"segments_info"' in head:
            return "coco-panoptic"
        if '"shapes"' in head:
            return "labelme"
        return "coco"
    if p.suffix.lower() in (".yaml", ".yml") and p.is_file():
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}".replace("\n", " "), path=p,
                              fix="correct the YAML syntax") from None
        fmt = raw.get("format") if isinstance(raw, dict) else None
        if fmt:
            return str(fmt)
        if isinstance(raw, dict) and "labels" not in raw and not _spec_has_label_dirs(p):
            return "yolo"
        return _mask_kind(p)
    if p.is_dir():
        if (p / "dataset.yaml").exists():
            return detect_format(p / "dataset.yaml")
        if (p / "leftImg8bit").is_dir() and (p / "gtFine").is_dir():
            return "cityscapes"
        from pixelwise.data.formats.voc import find_voc_root
        from pixelwise.data.formats.ade20k import find_sceneparse_root

        if find_voc_root(p):
            return "voc"
        if (p / "annotations").is_dir() and any((p / "annotations").glob("instances_*.json")):
            return "coco"  # before ADE20K's test: COCO folders also pair annotations/ with images/
        if find_sceneparse_root(p):
            return "ade20k"
        if any(p.glob("*.json")) or any(p.glob("*/*.json")):
            return "labelme"
        if next(p.rglob("*_seg.png"), None) is not None:
            return "ade20k-full"
        yamls = sorted(p.glob("*.yaml"))
        if yamls:
            return detect_format(yamls[0])
    raise DatasetError(f"Cannot tell the annotation format of {p}.", path=p,
                       fix=f"pass --format (one of: {', '.join(FORMATS)})")


def _mask_kind(p: Path, peek: int = 8) -> str:
    """What a label-folder YAML without ``format:`` holds, from its first labels' pixels (the one
    detection that looks at pixels): ``colors`` for RGB colour masks, ``binary`` for a two-class
    folder whose labels hold only 0 and 255 (the usual medical layout: read as masks, 255 would
    be the ignore value and the foreground lost), else ``masks``."""
    try:
        from PIL import Image

        from pixelwise.data.io import channels_equal, read_label
        from pixelwise.data.pairing import pair_split
        from pixelwise.data.spec import DatasetSpec

        spec = DatasetSpec.load(p)
        samples = [s for name in spec.splits for s in pair_split(spec.split(name)).samples]
        could_be_binary = spec.num_classes == 2 and spec.ignore_index == 255
        seen: set[int] = set()
        # A few labels tell colour from class ids; 0/255 must hold for every label (a class-1 pixel
        # anywhere means 255 is a real ignore border), so a two-class folder is read to the end.
        for i, sample in enumerate(samples if could_be_binary else samples[:peek]):
            with Image.open(sample.label) as im:
                colour = im.mode in ("RGB", "RGBA", "RGBX") and i < peek
                rgb = np.asarray(im.convert("RGB")) if colour else None
            if rgb is not None and not channels_equal(rgb):
                return "colors"  # equal channels are a grey map saved as RGB: its values are read below
            seen |= set(np.unique(read_label(sample.label)).tolist())  # palette, LA, RGB-grey as training reads them
            if not seen <= {0, 255}:
                return "masks"
        if could_be_binary and 255 in seen:
            warn(f"{p}: every label holds only 0 and 255 in a two-class dataset: read as binary masks "
                 "(255 -> class 1; pass --format masks if 255 really is 'ignore')")
            return "binary"
        return "masks"
    except Exception:  # noqa: BLE001 - an unreadable dataset is the masks reader's to report
        return "masks"


def _spec_has_label_dirs(p: Path) -> bool:
    try:
        from pixelwise.data.spec import DatasetSpec

        spec = DatasetSpec.load(p)
    except Exception:  # noqa: BLE001 - not a pixelwise spec: let the caller decide
        return False
    return any(s.labels is not None and s.labels.is_dir() for s in spec.splits.values())


def open_source(path: str | Path, format: str | None = None, **options: Any) -> Reader:
    """The reader for ``path`` (format detected when not given); options go to the reader."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"Source not found: {p}.", path=p, fix="check the path")
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown format '{fmt}'.", fix=f"use one of: {', '.join(FORMATS)}")
    if fmt in ("masks", "binary", "colors") and p.is_dir():
        p = p / "dataset.yaml"
    try:
        return FORMATS[fmt](p, **options)
    except TypeError as exc:
        raise ConfigError(f"Option not understood by the '{fmt}' reader: {exc}.",
                          fix="see 'pixelwise data convert --help' for each format's options") from None


__all__ = ["FORMATS", "Item", "Reader", "detect_format", "open_source", "parallel_map"]
