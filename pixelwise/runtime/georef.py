"""Georeferencing that travels from an aerial GeoTIFF to its predictions (numpy + Pillow only).

A label map of an orthophoto tile is only useful in a GIS if it lands where the tile does. The
outputs of a GeoTIFF input are written as GeoTIFFs carrying the input's GeoTIFF tags as they are
(pixel scale, tie points or transformation matrix, and the GeoKey directory that names the
coordinate system): the outputs have the input's pixel grid, so the same tags place them. The
tags are copied, not interpreted, so any coordinate system GDAL or QGIS understands survives.
An orthomosaic's footprint travels with them (``runtime/footprint.py``); georeferencing held in
files beside an image is ``runtime/sidecars.py``'s.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.data.io import GDAL_NODATA_TAG, gdal_nodata, open_image
from pixelwise.runtime.footprint import has_gdal_mask
from pixelwise.runtime.imageio import storable

# GeoTIFF 1.0: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
PLACEMENT_TAGS = (33550, 33922, 34264)  # at least one of these places the raster
TIFF_ORIENTATION = 274
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Georef:
    """A GeoTIFF's georeferencing tags: tag -> (value, TIFF field type), to be written as read;
    and its footprint: an orthomosaic marks the pixels outside its data by a GDAL mask, an alpha
    band or a nodata value, which its outputs keep (``runtime/footprint.py``)."""

    tags: dict[int, tuple[object, int]] = field(default_factory=dict)
    nodata: float | None = None
    alpha: bool = False
    mask: bool = False  # GDAL's internal mask (the IFD after the image), as JPEG orthomosaics store theirs

    @property
    def has_footprint(self) -> bool:
        return self.nodata is not None or self.alpha or self.mask

    def tiffinfo(self, nodata: str | None = None) -> ImageFileDirectory_v2:
        ifd = ImageFileDirectory_v2()
        if nodata is not None:
            ifd[GDAL_NODATA_TAG] = nodata
            ifd.tagtype[GDAL_NODATA_TAG] = TiffTags.ASCII
        for tag, (value, kind) in self.tags.items():
            if kind == TiffTags.ASCII and isinstance(value, str):
                # Pillow reads ASCII tags as latin-1 but writes a str as ASCII with '?' for the rest:
                # the bytes as read keep a CRS named "Réseau géodésique" (and GeoKey offsets) intact
                value = value.encode("latin-1", "replace")
            ifd[tag] = value
            ifd.tagtype[tag] = kind
        return ifd


def read_georef(path: str | Path) -> Georef | None:
    """The GeoTIFF tags of ``path``, and whether a GDAL mask, an alpha band or a nodata value marks
    a footprint (from its headers; no pixel is decoded), or None when it is no TIFF, holds no
    georeferencing, or is stored turned (a TIFF Orientation other than 1: pixelwise reads it
    upright, so the input's grid no longer describes the outputs). A file that cannot be opened
    gives None: reading its pixels reports why."""
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
            nodata = gdal_nodata(im)
            alpha = any(b in ("A", "a") for b in im.getbands())
            mask = has_gdal_mask(im, path)
    except Exception:  # noqa: BLE001 - any failure here is reported by the pixel read that follows
        return None
    if not any(t in tags for t in PLACEMENT_TAGS):  # GDAL places a TIFF by these even without GeoKeys (no CRS then)
        return None
    return Georef(tags, nodata, alpha, mask)


BIG = 2**31  # pixels' bytes from which an output is BigTIFF: a classic TIFF's offsets stop at 4 GiB


def encode_geotiff(array: np.ndarray, georef: Georef, big: bool | None = None, nodata: str | None = None) -> bytes:
    """A label map (8-bit, 16-bit above 256 classes), a confidence map (HxW uint8) or a colour
    image (HxWx3 uint8, or x4 with an alpha band) as a GeoTIFF with ``georef``'s tags (and
    ``nodata`` as GDAL's nodata tag): deflate-compressed, or, from ``BIG``
    bytes of pixels (``big``), an uncompressed BigTIFF (Pillow writes BigTIFF only uncompressed)."""
    array = np.ascontiguousarray(storable(array))
    big = array.nbytes >= BIG if big is None else big
    buf = io.BytesIO()
    options = {"big_tiff": True} if big else {"compression": "tiff_adobe_deflate"}
    Image.fromarray(array).save(buf, format="TIFF", tiffinfo=georef.tiffinfo(nodata), **options)
    return buf.getvalue()
