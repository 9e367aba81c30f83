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


# Georeferencing held beside an image, as GDAL (and so QGIS) and ESRI tools read it: a world file
# (the pixel grid's affine transform), an ESRI .prj (the coordinate system) and GDAL's
# <image>.aux.xml (coordinate system, transform and ground control points). An aerial PNG or
# JPEG tile usually comes so; a GeoTIFF may too (GDAL reads the .aux.xml before the tags).
AUX_KEPT = ("SRS", "GeoTransform", "GCPList")  # what describes the grid; band statistics and the rest do not
SIDECAR_MAX_BYTES = 16 << 20  # a sidecar larger than this is no georeferencing pixelwise carries


@dataclass(frozen=True)
class Sidecars:
    """The georeferencing files of one image, as bytes to write beside each of its outputs."""

    world: bytes | None = None
    prj: bytes | None = None
    aux: bytes | None = None  # a PAMDataset holding only AUX_KEPT elements
    sources: tuple[Path, ...] = ()  # the input's own sidecar files (never written over)

    def files_for(self, output: Path) -> dict[Path, bytes]:
        """The sidecar files of ``output`` (``a_labels.png`` -> ``a_labels.pgw``, ``a_labels.prj``,
        ``a_labels.png.aux.xml``) with their content."""
        content = dict(zip(sidecar_names(output), (self.world, self.prj, self.aux)))
        return {p: data for p, data in content.items() if data is not None}


def sidecar_names(output: Path) -> tuple[Path, Path, Path]:
    """The sidecar files ``write_sidecars`` writes or removes beside ``output``."""
    return world_file_of(output), output.with_suffix(".prj"), aux_file_of(output)


def world_file_of(image: Path) -> Path:
    """GDAL's first world-file name for ``image``: the suffix's first and last letters and 'w'
    (``.png`` -> ``.pgw``, ``.tif`` -> ``.tfw``)."""
    ext = image.suffix[1:]
    return image.with_suffix(f".{ext[0]}{ext[-1]}w")


def aux_file_of(image: Path) -> Path:
    return image.with_name(image.name + ".aux.xml")


def _world_candidates(image: Path) -> list[Path]:
    """Where GDAL looks for ``image``'s world file: ``.pgw``, ``.pngw``, ``.wld``, each in lower then upper case."""
    ext = image.suffix[1:].lower()
    names = [f"{ext[0]}{ext[-1]}w", f"{ext}w", "wld"] if ext else ["wld"]
    return [image.with_suffix(f".{n}") for name in names for n in (name, name.upper())]


def _read_small(path: Path) -> bytes | None:
    try:
        if not path.is_file() or path.stat().st_size > SIDECAR_MAX_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _kept_aux(path: Path, data: bytes) -> bytes | None:
    """The grid-describing part of a GDAL .aux.xml; a file that does not parse is left behind with a warning."""
    import warnings
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        warnings.warn(f"{path} is not valid XML ({exc}); its georeferencing is not carried to the outputs.",
                      UserWarning, stacklevel=4)
        return None
    kept = [el for el in root if el.tag in AUX_KEPT]
    if root.tag != "PAMDataset" or not kept:
        return None
    out = ET.Element("PAMDataset")
    out.text = "\n  "
    for el in kept:
        el.tail = "\n  "
        out.append(el)
    kept[-1].tail = "\n"
    return ET.tostring(out, encoding="utf-8", xml_declaration=False) + b"\n"


def read_sidecars(path: str | Path) -> Sidecars | None:
    """``path``'s world file, .prj and .aux.xml georeferencing, or None when it has none, or when
    pixelwise reads the image turned by an EXIF/TIFF orientation (the files describe the stored
    grid, no longer the outputs'). A file that cannot be opened gives None: reading its pixels reports why."""
    path = Path(path)
    world_path = next((p for p in _world_candidates(path) if p.is_file()), None)
    prj_path = next((p for p in (path.with_suffix(".prj"), path.with_suffix(".PRJ")) if p.is_file()), None)
    aux_path = aux_file_of(path) if aux_file_of(path).is_file() else None
    found = tuple(p for p in (world_path, prj_path, aux_path) if p is not None)
    if not found:
        return None
    from pixelwise.data.io import stored_upright

    try:
        with open_image(path) as im:
            if not stored_upright(im):
                return None
    except Exception:  # noqa: BLE001 - reported by the pixel read that follows
        return None
    world = _read_small(world_path) if world_path else None
    prj = _read_small(prj_path) if prj_path else None
    aux_data = _read_small(aux_path) if aux_path else None
    aux = _kept_aux(aux_path, aux_data) if aux_path and aux_data else None
    if world is None and aux is None and prj is None:
        return None
    return Sidecars(world, prj, aux, found)


def write_sidecars(output: Path, sidecars: Sidecars | None) -> list[Path]:
    """Write ``output``'s sidecar files (atomically), and remove the ones an earlier run left that
    this input no longer has: a stale world file would place the new output wrongly."""
    from pixelwise.data.io import atomic_write_bytes

    content = sidecars.files_for(output) if sidecars else {}
    for stale in sidecar_names(output):
        if stale not in content:
            stale.unlink(missing_ok=True)
    for p, data in content.items():
        atomic_write_bytes(p, data)
    return list(content)
