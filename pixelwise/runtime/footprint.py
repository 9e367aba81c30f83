"""An orthomosaic's footprint: the pixels outside its data, kept out of its predictions' outputs.

GDAL marks them by a mask (an IFD inside the TIFF, or a ``.msk`` file beside it), an alpha band
or a nodata value on every band; GDAL ranks them in that order, and so does ``outside_footprint``.
The outputs then say "no data" there (``footprint_outputs``) instead of a class. numpy + Pillow
only: a GDAL mask is a 1-bit transparency-mask IFD Pillow cannot open, decoded here.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.data.io import open_image, tag_values

if TYPE_CHECKING:
    from pixelwise.runtime.georef import Georef


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
            return np.zeros((im.height, im.width), dtype=bool) if inside is None else np.logical_not(inside, out=inside)
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


def has_gdal_mask(im: Image.Image, path: Path) -> bool:
    """Whether an opened TIFF has GDAL's mask, inside or beside it (from headers only); a damaged
    mask directory loses the footprint, not the georeferencing read with it."""
    try:
        return _mask_ifd(im) is not None or _mask_file(path) is not None
    except Exception:  # noqa: BLE001
        return False
