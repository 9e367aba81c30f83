"""Georeferencing that travels from an aerial GeoTIFF to its predictions (numpy + Pillow only).

A label map of an orthophoto tile is only useful in a GIS if it lands where the tile does. The
outputs of a GeoTIFF input are written as GeoTIFFs carrying the input's GeoTIFF tags as they are
(pixel scale, tie points or transformation matrix, and the GeoKey directory that names the
coordinate system): the outputs have the input's pixel grid, so the same tags place them. The
tags are copied, not interpreted, so any coordinate system GDAL or QGIS understands survives.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.data.io import open_image
from pixelwise.runtime.imageio import storable

# GeoTIFF 1.0: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
PLACEMENT_TAGS = (33550, 33922, 34264)  # at least one of these places the raster
GEOKEY_DIRECTORY = 34735
TIFF_ORIENTATION = 274
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Georef:
    """A GeoTIFF's georeferencing tags: tag -> (value, TIFF field type), to be written as read."""

    tags: dict[int, tuple[object, int]] = field(default_factory=dict)

    def tiffinfo(self) -> ImageFileDirectory_v2:
        ifd = ImageFileDirectory_v2()
        for tag, (value, kind) in self.tags.items():
            if kind == TiffTags.ASCII and isinstance(value, str):
                # Pillow reads ASCII tags as latin-1 but writes a str as ASCII with '?' for the rest:
                # the bytes as read keep a CRS named "Réseau géodésique" (and GeoKey offsets) intact
                value = value.encode("latin-1", "replace")
            ifd[tag] = value
            ifd.tagtype[tag] = kind
        return ifd


def read_georef(path: str | Path) -> Georef | None:
    """The GeoTIFF tags of ``path`` (its header only; no pixel is decoded), or None when it is no
    TIFF, holds no georeferencing, or is stored turned (a TIFF Orientation other than 1: pixelwise
    reads it upright, so the input's grid no longer describes the outputs). A file that cannot be
    opened gives None: reading its pixels reports why."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        with open_image(path) as im:
            if im.format != "TIFF":
                return None
            meta = im.tag_v2
            if meta.get(TIFF_ORIENTATION, 1) != 1:
                return None
            tags = {t: (meta[t], meta.tagtype[t]) for t in GEO_TAGS if t in meta}
    except Exception:  # noqa: BLE001 - any failure here is reported by the pixel read that follows
        return None
    if GEOKEY_DIRECTORY not in tags or not any(t in tags for t in PLACEMENT_TAGS):
        return None
    return Georef(tags)


BIG = 2**31  # pixels' bytes from which an output is BigTIFF: a classic TIFF's offsets stop at 4 GiB


def encode_geotiff(array: np.ndarray, georef: Georef, big: bool | None = None) -> bytes:
    """A label map (8-bit, 16-bit above 256 classes), a confidence map (HxW uint8) or a colour
    image (HxWx3 uint8) as a GeoTIFF with ``georef``'s tags: deflate-compressed, or, from ``BIG``
    bytes of pixels (``big``), an uncompressed BigTIFF (Pillow writes BigTIFF only uncompressed)."""
    array = np.ascontiguousarray(storable(array))
    big = array.nbytes >= BIG if big is None else big
    buf = io.BytesIO()
    options = {"big_tiff": True} if big else {"compression": "tiff_adobe_deflate"}
    Image.fromarray(array).save(buf, format="TIFF", tiffinfo=georef.tiffinfo(), **options)
    return buf.getvalue()
