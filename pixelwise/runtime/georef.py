"""Georeferencing that travels from an aerial GeoTIFF to its predictions (numpy + Pillow only).

A label map of an orthophoto tile is only useful in a GIS if it lands where the tile does. The
outputs of a GeoTIFF input are written as GeoTIFFs carrying the input's GeoTIFF tags as they are
(pixel scale, tie points or transformation matrix, and the GeoKey directory that names the
coordinate system): the outputs have the input's pixel grid, so the same tags place them. The
tags are copied, not interpreted, so any coordinate system GDAL or QGIS understands survives.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.data.io import GDAL_NODATA_TAG, gdal_nodata, open_image, tag_values
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
    and its footprint: an orthomosaic marks the pixels outside its data by a GDAL nodata value
    or an alpha band, which its outputs keep (see ``footprint_outputs``)."""

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
            try:  # a damaged mask directory loses the footprint, not the georeferencing
                mask = _mask_ifd(im) is not None or _mask_file(path) is not None
            except Exception:  # noqa: BLE001
                mask = False
    except Exception:  # noqa: BLE001 - any failure here is reported by the pixel read that follows
        return None
    if not any(t in tags for t in PLACEMENT_TAGS):  # GDAL places a TIFF by these even without GeoKeys (no CRS then)
        return None
    return Georef(tags, nodata, alpha, mask)


def _tiff_header(fp) -> bytes:
    """A TIFF's header as Pillow's ImageFileDirectory_v2 takes it: 16 bytes for BigTIFF, else 8."""
    fp.seek(0)
    header = fp.read(16)
    return header if header[2:4] in (b"+\0", b"\0+") else header[:8]


MAX_IFDS = 64  # directories walked to find a mask: the image, its overviews and their masks


def _mask_ifd(im: Image.Image) -> ImageFileDirectory_v2 | None:
    """GDAL's internal mask of an opened TIFF: the directory of a full-size transparency mask
    (NewSubfileType 4, Photometric 4), which Pillow cannot open as an image. It follows the
    image's directory, or its overviews' when they were built first. Moves ``im.fp``: only for
    an image whose pixels are not loaded afterwards."""
    header, offset = _tiff_header(im.fp), im.tag_v2.next
    for _ in range(MAX_IFDS):
        if not offset:
            return None
        im.fp.seek(offset)
        ifd = ImageFileDirectory_v2(header)
        ifd.load(im.fp)
        if int(ifd.get(254, 0)) == 4 and ifd.get(262) == 4 and (ifd.get(256), ifd.get(257)) == im.size:
            return ifd
        offset = ifd.next
    return None


def _mask_file(path: Path) -> Path | None:
    """GDAL's external mask beside a TIFF (``ortho.tif.msk``)."""
    msk = path.with_name(path.name + ".msk")
    return msk if msk.is_file() else None


def _decode_mask(fp, ifd: ImageFileDirectory_v2, name: object) -> np.ndarray | None:
    """A GDAL mask's pixels (HxW bool, True where there is data), or None (with a warning) for a
    compression that needs a codec library: only none, Deflate and PackBits are decoded here."""
    import zlib

    w, h = ifd[256], ifd[257]
    compression, bits = ifd.get(259, 1), tag_values(ifd.get(258, 1))
    tiled = 322 in ifd
    # RowsPerStrip may be 2**32 - 1 ("one strip"); a tile is at most 64k pixels a side here
    tw, th = (int(ifd[322]), int(ifd[323])) if tiled else (w, min(int(ifd.get(278, h)), h))
    offsets, counts = (tag_values(ifd[324]), tag_values(ifd[325])) if tiled else (tag_values(ifd[273]), tag_values(ifd[279]))
    why = (f"stored with TIFF compression {compression}, which pixelwise does not decode"
           if compression not in (1, 8, 32946, 32773) else f"stored at {bits[0]} bits" if bits[0] != 1
           else f"stored in {tw}x{th} blocks" if not (0 < tw <= 1 << 16 and 0 < th <= 1 << 16) else None)
    if why:
        import warnings

        warnings.warn(f"{name}: its GDAL mask is {why}; its outputs mark no pixel as outside the data.",
                      UserWarning, stacklevel=4)
        return None
    row_bytes, across = (tw + 7) // 8, -(-w // tw)
    block_bytes = min(th, h) * row_bytes  # rows past the image's last are not needed
    inside = np.zeros((h, w), dtype=bool)
    for i, (off, n) in enumerate(zip(offsets, counts)):
        y, x = (i // across) * th, (i % across) * tw
        if y >= h:
            break
        fp.seek(off)
        data = fp.read(n)
        if compression in (8, 32946):  # at most one block's bytes: a crafted stream cannot inflate past it
            data = zlib.decompressobj().decompress(data, block_bytes)
        elif compression == 32773:
            data = _unpackbits(data, block_bytes)
        block = np.frombuffer(data, np.uint8)[:block_bytes]
        rows = min(block.size // row_bytes, h - y)
        cols = min(tw, w - x)
        unpacked = np.unpackbits(block[:rows * row_bytes].reshape(rows, row_bytes), axis=1)
        inside[y:y + rows, x:x + cols] = unpacked[:, :cols] != 0
    return inside





def _unpackbits(data: bytes, limit: int) -> bytes:
    """PackBits (TIFF compression 32773), up to ``limit`` bytes."""
    out, i = bytearray(), 0
    while i < len(data) and len(out) < limit:
        n = data[i] if data[i] < 128 else data[i] - 256
        if n >= 0:
            out += data[i + 1:i + 2 + n]
            i += n + 2
        elif n != -128:
            out += data[i + 1:i + 2] * (1 - n)
            i += 2
        else:
            i += 1
    return bytes(out)


def outside_footprint(path: str | Path, georef: Georef) -> np.ndarray:
    """HxW bool, True outside the data: GDAL's internal mask, else alpha 0, else every band at the
    nodata value (compared on the stored values, before pixelwise's 8-bit conversion). Decodes
    the image once more."""
    from pixelwise.data.io import deep_colour

    with open_image(path) as im:
        if georef.mask:  # GDAL's own footprint, before alpha or nodata (as GDAL ranks them)
            inside = None
            try:
                if (ifd := _mask_ifd(im)) is not None:
                    inside = _decode_mask(im.fp, ifd, path)
                elif (msk := _mask_file(Path(path))) is not None:  # 8-bit grey, 0 outside (band 1's mask)
                    with open_image(msk) as m:
                        if m.size == im.size:
                            inside = np.asarray(m if m.mode in ("L", "1") else m.getchannel(0)) != 0
            except Exception as exc:  # noqa: BLE001 - a damaged mask leaves the outputs unmarked, the run going on
                import warnings

                warnings.warn(f"The GDAL mask of {path} could not be read ({type(exc).__name__}: {exc}); its outputs "
                              "mark no pixel as outside the data.", UserWarning, stacklevel=3)
            return np.zeros((im.height, im.width), dtype=bool) if inside is None else ~inside
        if georef.alpha:
            return np.asarray(im.getchannel("A" if "A" in im.getbands() else "a")) == 0
        if deep_colour(im):  # Pillow gives 16-bit colour as its top 8 bits: the nodata value cannot be told apart
            import warnings

            warnings.warn(f"{path}: 16-bit colour with a nodata value, which cannot be compared on the 8 bits "
                          "read; its outputs mark no pixel as outside the data.", UserWarning, stacklevel=3)
            return np.zeros((im.height, im.width), dtype=bool)
        arr = np.asarray(im)
    out = np.isnan(arr) if georef.nodata is not None and np.isnan(georef.nodata) else arr == georef.nodata
    return out.all(axis=-1) if out.ndim == 3 else out


def footprint_outputs(kind: str, array: np.ndarray, outside: np.ndarray, num_classes: int) -> tuple[np.ndarray, str | None]:
    """An output with the input's outside kept out, and its GDAL nodata value: labels get 255
    there (65535 above 256 classes, whose labels are 16-bit), the confidence 0 (inside it is at
    least 1/classes), colour maps and overlays an alpha band, transparent outside. A model of
    exactly 256 classes has no free 8-bit value: its labels stay unmarked (warned), as widening
    them would mix 8- and 16-bit label maps in one set of tiles, which GDAL cannot mosaic."""
    if kind == "labels":
        if num_classes == 256 and array.dtype == np.uint8:
            import warnings

            warnings.warn("A 256-class model's 8-bit label maps have no value left for 'no data': the label map "
                          "marks no pixel outside the footprint (the colour maps, overlays and confidence do).",
                          UserWarning, stacklevel=3)
            return array, None
        fill = 255 if array.dtype == np.uint8 else 65535
        array = array.copy()
        array[outside] = fill
        return array, str(fill)
    if kind == "confidence":
        array = array.copy()
        array[outside] = 0
        return array, "0"
    return np.dstack([array, np.where(outside, 0, 255).astype(np.uint8)]), None


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


# Georeferencing held beside an image, as GDAL (and so QGIS) and ESRI tools read it: a world file
# (the pixel grid's affine transform), an ESRI .prj (the coordinate system) and GDAL's
# <image>.aux.xml (coordinate system, transform and ground control points). An aerial PNG or
# JPEG tile usually comes so; a GeoTIFF may too. What GDAL 3.10 does, checked file by file:
# world files are looked up as <stem>.<first+last letter>w, <stem>.<ext>w (and .jpw for JPEG),
# then <stem>.wld, matching the name case-insensitively (BMP: only all-lower or all-upper case),
# skipping one that holds no usable transform; WEBP reads none. Where both place the image, PNG,
# GIF and BMP take the world file first, JPEG and TIFF the .aux.xml's GeoTransform.
AUX_KEPT = ("SRS", "GeoTransform", "GCPList")  # what describes the grid; band statistics and the rest do not
SIDECAR_MAX_BYTES = 64 << 20  # larger: not read (an .aux.xml that big is a histogram or a table), with a warning
WORLD_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")  # formats GDAL reads them for
WORLD_FIRST = (".png", ".gif", ".bmp")  # the world file wins over the .aux.xml's GeoTransform
EXACT_CASE = (".bmp",)  # GDAL's BMP driver matches the world file's name only all-lower or all-upper


@dataclass(frozen=True)
class Sidecars:
    """The georeferencing files of one image, as bytes to write beside each of its outputs."""

    world: bytes | None = None
    prj: bytes | None = None
    aux: bytes | None = None  # a PAMDataset holding only AUX_KEPT elements

    def files_for(self, output: Path) -> dict[Path, bytes]:
        """The sidecar files of ``output`` (``a_labels.png`` -> ``a_labels.pgw``, ``a_labels.prj``,
        ``a_labels.png.aux.xml``) with their content."""
        content = dict(zip(sidecar_names(output), (self.world, self.prj, self.aux)))
        return {p: data for p, data in content.items() if data is not None}


def sidecar_names(output: Path) -> tuple[Path, Path, Path]:
    """Where an output's world file, .prj and .aux.xml are written."""
    return world_file_of(output), output.with_suffix(".prj"), aux_file_of(output)


def world_file_of(image: Path) -> Path:
    """GDAL's first world-file name for ``image``: the suffix's first and last letters and 'w'
    (``.png`` -> ``.pgw``, ``.tif`` -> ``.tfw``)."""
    ext = image.suffix[1:]
    return image.with_suffix(f".{ext[0]}{ext[-1]}w")


def aux_file_of(image: Path) -> Path:
    return image.with_name(image.name + ".aux.xml")


def _world_names(image: Path) -> list[str]:
    """The world-file names GDAL tries for ``image``, in its order (none for formats it reads none for)."""
    ext = image.suffix.lower()
    if ext not in WORLD_FILE_SUFFIXES:
        return []
    e = ext[1:]
    exts = [f"{e[0]}{e[-1]}w", f"{e}w", *(["jpw"] if e in ("jpg", "jpeg") else []), "wld"]
    return [f"{image.stem}.{x}" for x in exts]


def usable_world_file(data: bytes) -> bool:
    """GDAL's test: six numbers (blank lines skipped; text reads as 0), with a non-zero x term and y term."""
    lines = [ln.strip() for ln in data.decode("latin-1").splitlines() if ln.strip()]
    if len(lines) < 6:
        return False

    def num(text: str) -> float:
        try:
            return float(text.split()[0].replace(",", "."))
        except (ValueError, IndexError):
            return 0.0

    a, d, b, e = (num(v) for v in lines[:4])
    return (a != 0 or b != 0) and (e != 0 or d != 0)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # '{namespace}SRS' -> 'SRS': GDAL reads a namespaced .aux.xml too


def _kept_aux(path: Path, data: bytes) -> tuple[bytes | None, bool]:
    """The grid-describing part of a GDAL .aux.xml, and whether it holds a GeoTransform; a file
    that does not parse is left behind with a warning."""
    import warnings
    import xml.etree.ElementTree as ET

    try:
        data.decode("utf-8")
        if b"<!DOCTYPE" in data.upper():
            raise ValueError("it declares a DTD")  # which GDAL does not read (nor, then, entities or their expansion)
        root = ET.fromstring(data)
    except (ValueError, ET.ParseError) as exc:  # UnicodeDecodeError too: GDAL reads these files as UTF-8
        warnings.warn(f"{path} is not an .aux.xml GDAL reads ({exc}); its georeferencing is not carried to the "
                      "outputs.", UserWarning, stacklevel=5)
        return None, False
    kept = [el for el in root if isinstance(el.tag, str) and _local(el.tag) in AUX_KEPT]
    if _local(str(root.tag)) != "PAMDataset" or not kept:
        return None, False
    out = ET.Element("PAMDataset")
    out.text = "\n  "
    for el in kept:
        for sub in el.iter():
            if isinstance(sub.tag, str):
                sub.tag = _local(sub.tag)
        el.tail = "\n  "
        out.append(el)
    kept[-1].tail = "\n"
    return ET.tostring(out, encoding="utf-8") + b"\n", any(el.tag == "GeoTransform" for el in kept)


def _without(aux: bytes, tag: str) -> bytes | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(aux)
    for el in root.findall(tag):
        root.remove(el)
    return ET.tostring(root, encoding="utf-8") + b"\n" if len(root) else None


class SidecarFinder:
    """Finds the sidecar files of images and outputs as GDAL does, one folder listing per folder
    (a run over thousands of tiles lists each folder once, not every name per image)."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._folders:
            names: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if entry.is_file():
                            names.setdefault(entry.name.lower(), []).append(entry.name)
            except OSError:
                pass
            self._folders[folder] = names
        return self._folders[folder]

    def _existing(self, folder: Path, name: str, exact_case: bool = False) -> list[Path]:
        found = self._listing(folder).get(name.lower(), [])
        if exact_case:
            found = [n for n in found if n in (name.lower(), name.upper())]
        return [folder / n for n in sorted(found, key=lambda n: (n != name, n))]

    def world_files(self, image: Path) -> list[Path]:
        """Existing world files of ``image``, in GDAL's order."""
        exact = image.suffix.lower() in EXACT_CASE
        return [p for name in _world_names(image) for p in self._existing(image.parent, name, exact)]

    def files_of(self, image: Path) -> list[Path]:
        """Every existing file that GDAL or ESRI tools would read as ``image``'s georeferencing."""
        folder = image.parent
        return [*self.world_files(image), *self._existing(folder, f"{image.stem}.prj"),
                *self._existing(folder, f"{image.name}.aux.xml")]

    def output_files(self, output: Path) -> list[Path]:
        """The files an output's georeferencing would be read from (its own, and any stale ones)."""
        folder = output.parent
        names = [*(f"{output.stem}.{x}" for x in (f"{output.suffix[1]}{output.suffix[-1]}w", f"{output.suffix[1:]}w", "wld")),
                 f"{output.stem}.prj", f"{output.name}.aux.xml"]
        return [p for n in names for p in self._existing(folder, n)]

    def read(self, image: Path) -> Sidecars | None:
        """``image``'s georeferencing beside it, arranged so that GDAL places its outputs as it
        places the image, or None when it has none, or when pixelwise reads the image turned by an
        EXIF/TIFF orientation (the files describe the stored grid, no longer the outputs'). A file
        that cannot be opened gives None: reading its pixels reports why."""
        image = Path(image)
        files = self.files_of(image)
        if not files:
            return None
        from pixelwise.data.io import stored_upright

        try:
            with open_image(image) as im:
                if not stored_upright(im):
                    return None
        except Exception:  # noqa: BLE001 - reported by the pixel read that follows
            return None
        world = next((d for p in self.world_files(image) if (d := _read_small(p)) and usable_world_file(d)), None)
        prj_path = next((p for p in files if p.suffix.lower() == ".prj"), None)
        prj = _read_small(prj_path) if prj_path else None
        aux_path = next((p for p in files if p.name.lower().endswith(".aux.xml")), None)
        aux_data = _read_small(aux_path) if aux_path else None
        aux, aux_places = _kept_aux(aux_path, aux_data) if aux_path and aux_data else (None, False)
        if aux is not None and image.suffix.lower() in TIFF_SUFFIXES and b"<GCPList" in aux:
            aux = _without(aux, "SRS")  # GDAL gives a TIFF placed by GCPs no CRS of its own (a PNG would take it)
        if world is not None and aux is not None and aux_places:
            if image.suffix.lower() in WORLD_FIRST:  # the image is placed by its world file: so are the outputs
                aux = _without(aux, "GeoTransform")
            else:  # placed by the .aux.xml; PNG outputs would take a world file first
                world = None
        if world is None and aux is None and prj is None:
            return None
        return Sidecars(world, prj, aux)


def _read_small(path: Path) -> bytes | None:
    import warnings

    try:
        if path.stat().st_size > SIDECAR_MAX_BYTES:
            warnings.warn(f"{path} is over {SIDECAR_MAX_BYTES >> 20} MB and is not read; its georeferencing is not "
                          "carried to the outputs.", UserWarning, stacklevel=4)
            return None
        return path.read_bytes()
    except OSError:
        return None


def read_sidecars(path: str | Path) -> Sidecars | None:
    """``path``'s georeferencing beside it (``SidecarFinder.read`` for one image)."""
    return SidecarFinder().read(Path(path))


def write_sidecars(output: Path, sidecars: Sidecars | None, finder: SidecarFinder) -> list[Path]:
    """Write ``output``'s sidecar files (atomically), and remove the ones an earlier run left that
    this input no longer has: a stale world file would place the new output wrongly. The caller
    has refused the run if any of them is an input's (``refuse_overwriting_inputs``)."""
    from pixelwise.data.io import atomic_write_bytes

    content = sidecars.files_for(output) if sidecars else {}
    for stale in finder.output_files(output):
        if stale not in content:
            stale.unlink(missing_ok=True)
    for p, data in content.items():
        atomic_write_bytes(p, data)
    return list(content)
