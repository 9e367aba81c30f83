"""Reading images and label maps from disk, with errors that name the file and the fix."""
from __future__ import annotations

import os
import struct
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelwise.errors import ImageReadError, LabelError

# Never decode a truncated file silently: PIL's default, made explicit.
from PIL import ImageFile

ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow's decompression-bomb guard (about 179 megapixels) refuses legitimate aerial tiles of
# 20000x20000 (tiling bounds the memory). Lifting Image.MAX_IMAGE_PIXELS would lift it for the
# whole process, the user's own Image.open of untrusted files and other threads included; so the
# guard is skipped only on the thread that is inside pixelwise's own ``open_image`` block. Pillow
# checks at open and again when some formats (TIFF, GIF frames) load their pixels.
_INSIDE_OPEN_IMAGE = threading.local()
_pillow_bomb_check = getattr(Image, "_decompression_bomb_check", None)


def _bomb_check(*args: object, **kwargs: object) -> None:  # Pillow's arguments passed through as they are
    if not getattr(_INSIDE_OPEN_IMAGE, "depth", 0):
        _pillow_bomb_check(*args, **kwargs)


if _pillow_bomb_check is not None:
    Image._decompression_bomb_check = _bomb_check  # module attribute: Image.open and the plugins look it up


# The formats the README documents, and PNM/TGA (Pillow's names; "JPEG" also opens cameras'
# multi-picture MPO files). Uploads are limited to them: in these, opening reads only the header,
# so the server's declared-size check runs before any pixel is decoded; Pillow's ICO and ICNS
# plugins decode the whole picture when opened, and its DDS plugin raises NotImplementedError.
UPLOAD_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP", "GIF", "PPM", "TGA")


@contextmanager
def open_image(fp: str | Path | object, formats: tuple[str, ...] | None = None) -> Iterator[Image.Image]:
    """``Image.open`` without Pillow's decompression-bomb limit, on this thread, for the ``with``
    block (loading the pixels included). The server checks an upload's declared size itself.
    ``formats``: only these Pillow formats (None: any Pillow reads, for the user's own files)."""
    if formats is not None:
        Image.init()
        formats = tuple(f for f in formats if f in Image.OPEN)  # a Pillow built without one (WebP) lacks it
    _INSIDE_OPEN_IMAGE.depth = getattr(_INSIDE_OPEN_IMAGE, "depth", 0) + 1
    try:
        with Image.open(fp, formats=formats) as im:
            yield im
    finally:
        _INSIDE_OPEN_IMAGE.depth -= 1


def pil_to_rgb(im: Image.Image, nodata: float | None = None) -> np.ndarray:
    """A decoded Pillow image -> HxWx3 uint8 RGB, by one documented rule (README, "Input images"):

    * single-channel data deeper than 8 bits (16/32-bit integers, float) is stretched linearly,
      per image, from min(0, its lowest value) to its highest; NaN and infinities become 0;
    * 16-bit colour keeps its top 8 bits, as Pillow and OpenCV read it: ``deep_colour`` (from
      the header, before the pixels were loaded) says so, and a warning names an image that comes
      out nearly black (12-bit data in a 16-bit file);
    * alpha and other extra bands are dropped; palette, CMYK and 1-bit images are converted.

    ``nodata``: a TIFF's GDAL nodata value (``gdal_nodata``), whose pixels are left out of the
    stretch and become 0: an orthomosaic's -9999 or 65535 outside its data would squash the data.
    """
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.repeat(stretch_to_uint8(np.asarray(im), nodata)[..., None], 3, axis=2)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


GDAL_NODATA_TAG = 42113  # GDAL's TIFF tag (ASCII): the value of every band of the pixels outside the data


def gdal_nodata(im: Image.Image) -> float | None:
    """The nodata value an opened TIFF declares in GDAL's tag, or None."""
    if im.format != "TIFF":
        return None
    try:
        text = im.tag_v2.get(GDAL_NODATA_TAG)
        return float(str(text).strip().rstrip("\x00")) if text is not None else None
    except ValueError:
        return None


def stretch_to_uint8(arr: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """HxW data deeper than 8 bits -> uint8, from min(0, lowest) to highest; non-finite -> 0, and
    so the ``nodata`` value. Unsigned 16-bit goes through a lookup table (no float copy of a
    12000x12000 scan; with a nodata value, its maximum is taken band by band of rows)."""
    if arr.dtype.kind == "u" and arr.itemsize == 2:
        if nodata is None:
            hi = int(arr.max(initial=0)) or 1
        else:
            bands = np.array_split(arr, max(1, arr.shape[0] // 512))
            hi = max((int(b[b != nodata].max(initial=0)) for b in bands), default=0) or 1
        lut = (np.arange(65536, dtype=np.float32) / hi * 255.0).clip(0, 255).astype(np.uint8)
        if nodata is not None and float(nodata).is_integer() and 0 <= nodata < 65536:
            lut[int(nodata)] = 0
        return lut[arr]
    a = arr.astype(np.float32)
    valid = np.isfinite(a)
    if nodata is not None and not np.isnan(nodata):
        valid &= arr != nodata  # compared in the stored type, as GDAL compares
    if not valid.any():
        return np.zeros(a.shape, np.uint8)
    lo, hi = min(0.0, float(a[valid].min())), float(a[valid].max())
    a[~valid] = lo  # GDAL's -3.4e38 would overflow the arithmetic below (with a warning); 0 after it
    out = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)  # the order of the old a / hi * 255
    out[~valid] = 0
    return out.clip(0, 255).astype(np.uint8)


def deep_colour(im: Image.Image) -> bool:
    """Whether an opened (not yet loaded) file holds 16-bit colour, which Pillow decodes to its top 8 bits."""
    raw = [str(t[3][0] if isinstance(t[3], tuple) else t[3]) for t in im.tile if len(t) > 3]
    return im.mode in ("RGB", "RGBA") and any(r.startswith(("RGB;16", "RGBA;16", "RGBX;16")) for r in raw)  # not BGR;16 (565)


def planar_deep_tiff(im: Image.Image) -> bool:
    """An uncompressed TIFF storing each colour band apart (PlanarConfiguration 2) at more than 8
    bits: Pillow 13 decodes it with its own raw decoder as wrong 8-bit pixels, without an error, so
    it is refused instead (compressed ones go through libtiff and come out right)."""
    if im.format != "TIFF" or im.tag_v2.get(284) != 2:
        return False
    deep = any(b > 8 for b in tag_values(im.tag_v2.get(258, (8,)))) and len(im.getbands()) > 1
    return deep and any(t[0] == "raw" for t in im.tile)


def tag_values(value: object) -> tuple:
    """A TIFF tag's value as a tuple (Pillow gives a single value bare)."""
    return value if isinstance(value, tuple) else (value,)


def signed_8bit_tiff(im: Image.Image) -> bool:
    """An 8-bit signed TIFF (SampleFormat 2): Pillow reads it as unsigned grey, -128 as 128, without an error."""
    if im.format != "TIFF" or im.tag_v2.get(339) is None:
        return False
    return 2 in tag_values(im.tag_v2.get(339)) and 8 in tag_values(im.tag_v2.get(258, (8,)))


def refuse_misread_tiff(im: Image.Image, name: str | Path) -> None:
    """Refuse the TIFFs Pillow decodes to wrong pixels without an error (``planar_deep_tiff``,
    ``signed_8bit_tiff``), for a file, an upload or an opened PIL image alike."""
    if planar_deep_tiff(im):
        raise _unsupported_tiff(name, "image", " (planar 16-bit colour, which Pillow decodes as wrong 8-bit pixels)",
                                TIFF_FIX)
    if signed_8bit_tiff(im):
        raise _unsupported_tiff(name, "image", " (8-bit signed samples, which Pillow decodes as unsigned: -128 as 128)",
                                "convert it to 8-bit unsigned (e.g. gdal_translate -ot Byte -scale in.tif out.tif), or "
                                "pass predict an HxWx3 uint8 array")


def loaded_rgb(im: Image.Image, name: str | Path, as_displayed: bool = True) -> np.ndarray:
    """Load an opened image and convert it by ``pil_to_rgb``'s rule (EXIF orientation applied
    unless ``as_displayed`` is off); a 16-bit colour file that comes out dark is named in a warning."""
    deep = deep_colour(im)  # from the header: loading replaces the tile list
    refuse_misread_tiff(im, name)
    nodata = gdal_nodata(im)  # before upright(), whose turned copy has no format
    im.load()
    rgb = pil_to_rgb(upright(im) if as_displayed else im, nodata)
    if deep and rgb.size and int(rgb.max()) < 32:
        import warnings

        warnings.warn(f"{name} holds 16-bit colour, read as its top 8 bits (as Pillow and OpenCV read it), and "
                      f"its values use at most {int(rgb.max()).bit_length() + 8} of the 16 bits, so it reads almost "
                      "black: convert it to 8-bit with a scale of your own (e.g. value / 16 for 12-bit data).",
                      UserWarning, stacklevel=3)
    return rgb


_ORIENTATION = 0x0112  # EXIF tag; 1 = as stored, 2-8 = mirrored and/or turned
_TURNED = (5, 6, 7, 8)  # orientations that swap width and height


def _orientation(im: Image.Image) -> int:
    try:
        if im.format == "PNG":  # getexif() decodes a whole PNG that has no eXIf chunk before its pixels
            raw = im.info.get("exif")
            profile = im.info.get("Raw profile type exif")  # ImageMagick's text chunk, as Pillow reads it
            if not raw and profile:
                raw = bytes.fromhex("".join(str(profile).split("\n")[3:]))
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        value = exif.get(_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block must not make a readable photo unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(im: Image.Image) -> Image.Image:
    """The image as viewers display it: phone photos are stored sideways with an EXIF orientation
    (labelme, CVAT, browsers and OpenCV apply it, so labels are drawn on the displayed image)."""
    return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im


def stored_upright(im: Image.Image) -> bool:
    """Whether pixelwise reads the image as it is stored (no EXIF orientation to apply): only then
    does a grid described beside the file (a world file) describe what pixelwise predicts."""
    return _orientation(im) == 1


def turned_by_exif(path: Path) -> bool:
    """Whether the file's EXIF orientation swaps its width and height (for error messages)."""
    try:
        with open_image(path) as im:
            return _orientation(im) in _TURNED
    except (OSError, SyntaxError, ValueError):
        return False


def displayed_size(im: Image.Image) -> tuple[int, int]:
    """(height, width) as displayed, from the header alone."""
    return (im.width, im.height) if _orientation(im) in _TURNED else (im.height, im.width)


@contextmanager
def decode_errors(path: Path, what: str, missing_fix: str, corrupt_fix: str) -> Iterator[None]:
    """Pillow's many exceptions for a missing, truncated or non-image file -> one ImageReadError
    that names the file and the fix (``what``: "image", "label")."""
    try:
        yield
    except FileNotFoundError:
        raise ImageReadError(f"{what.capitalize()} not found: {path}.", path=path, fix=missing_fix) from None
    except UnidentifiedImageError as exc:  # Pillow's message only repeats the path: say what the file is
        size = path.stat().st_size if path.is_file() else None
        tiff = tiff_error(path, path, what, exc, corrupt_fix) if size else None
        if tiff is not None:
            raise tiff from None
        why = ("the file is empty" if size == 0 else f"its {size} bytes are in no image format Pillow reads"
               if size else "not an image file")
        raise ImageReadError(f"Cannot decode {what} {path}: {why}.", path=path, fix=corrupt_fix) from None
    except (OSError, SyntaxError, ValueError, NotImplementedError, EOFError, struct.error) as exc:
        # NotImplementedError: a DDS or other plugin's variant that Pillow does not decode
        tiff = tiff_error(path, path, what, exc, corrupt_fix)
        if tiff is not None:
            raise tiff from None
        raise ImageReadError(f"Cannot decode {what} {path} ({exc}).", path=path, fix=corrupt_fix) from None


TIFF_FIX = ("convert it to 8-bit RGB (e.g. gdal_translate -ot Byte -scale -b 1 -b 2 -b 3 in.tif out.tif), or "
            "pass predict an HxWx3 uint8 array")


def tiff_error(source: Path | bytes, name: str | Path, what: str, exc: BaseException,
               cut_fix: str) -> ImageReadError | None:
    """The error for a TIFF Pillow could not read: one cut short (a download; writers put the
    directory of tags after the pixels), or a layout Pillow has no decoder for (float colour, more
    than 4 bands, planar 16-bit), which is not 'corrupt'. None when ``source`` is no TIFF, or its
    data is plainly damaged: the caller's own message fits."""
    try:
        if isinstance(source, Path):
            size = source.stat().st_size
            with open(source, "rb") as fh:
                head = fh.read(16)
        else:
            size, head = len(source), source[:16]
    except OSError:
        return None
    if head[:4] not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # classic or BigTIFF, either byte order
        return None
    if isinstance(exc, UnidentifiedImageError):  # Pillow identifies every TIFF whose layout it reads
        order = "little" if head[:2] == b"II" else "big"
        offset = int.from_bytes(head[8:16] if head[2:4] in (b"+\0", b"\0+") else head[4:8], order)
        if offset >= size:
            return ImageReadError(f"Cannot decode {what} {name}: a TIFF cut short (its header points past its "
                                  f"{size} bytes).", path=name, fix=cut_fix)
        return _unsupported_tiff(name, what, ", or a damaged one",
                                 TIFF_FIX + " (if no other program opens it either, re-export it)")
    text = str(exc).lower()  # Pillow's words for a layout it lacks, not "decoder error" or "truncated"
    if any(w in text for w in ("unknown raw mode", "unsupported", "not supported", "unknown pixel mode")):
        return _unsupported_tiff(name, what, f" ({exc})", TIFF_FIX)
    return None


def _unsupported_tiff(name: str | Path, what: str, detail: str, fix: str) -> ImageReadError:
    return ImageReadError(f"Cannot decode {what} {name}: a TIFF whose sample format or band layout Pillow does not "
                          f"read (float colour, more than 4 bands, planar 16-bit...){detail}.", path=name, fix=fix)


def read_image(path: str | Path,
               missing_fix: str = "check the path, or re-run 'pixelwise data check'",
               as_displayed: bool = True) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array (16-bit and grey images are converted).

    ``as_displayed``: apply the EXIF orientation (photos); off for colour-coded masks, whose pixels
    are data."""
    path = Path(path)
    with decode_errors(path, "image", missing_fix, "re-export or remove this file (it is corrupt or truncated)"):
        with open_image(path) as im:
            return loaded_rgb(im, path, as_displayed)


def read_label(path: str | Path) -> np.ndarray:
    """Decode a single-channel label map to an HxW integer array of class ids.

    Palette PNGs give their palette indices (PASCAL VOC). A 3-channel file whose channels are all
    equal is accepted as grey; a true colour-coded mask is refused with a pointer to conversion.
    """
    path = Path(path)
    with decode_errors(path, "label", "add the label, or remove its image from the split",
                       "re-export or remove this label (it is corrupt or truncated)"):
        with open_image(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
            if mode == "P":
                arr = _palette_to_values(im, arr)
    if arr.ndim == 3:
        if mode == "LA" or (arr.shape[2] in (3, 4) and channels_equal(arr[..., :3])):
            arr = arr[..., 0]
        else:
            raise LabelError(
                f"Label {path} is an RGB colour image ({mode}); a single-channel map of class ids "
                "is expected.", path=path,
                fix="save labels as 8-bit grey or palette PNGs, or convert colour masks once with "
                    "'pixelwise data convert DATA --format colors --to masks --out NEW' (colours from the "
                    "YAML's colors: table or a known one)")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        raise LabelError(f"Label {path} holds floating-point values.", path=path,
                         fix="save labels as integer PNGs (8 or 16 bit)")
    return arr


def _palette_to_values(im: Image.Image, indices: np.ndarray) -> np.ndarray:
    """Palette labels: the index is the class (PASCAL VOC) unless every colour in use is grey,
    as in GIF/TIFF masks saved from greyscale (DRIVE's 0/255), where the grey level is meant."""
    palette = im.getpalette() or []
    used = np.unique(indices).tolist()
    entries = [palette[3 * i: 3 * i + 3] for i in used if 3 * i + 2 < len(palette)]
    # The whole palette must be grey: VOC's palette has grey entries too (index 7 is (128,128,128)).
    all_grey = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
    if all_grey and len(entries) == len(used):
        lut = np.arange(256, dtype=np.uint8)
        for i, e in zip(used, entries):
            lut[i] = e[0]
        return lut[indices]
    return indices


def channels_equal(rgb: np.ndarray) -> bool:
    """Whether an RGB image is grey: a class-id map saved as RGB, not a colour-coded mask."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, tmp = f".{path.name}.", ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs should be readable like any file
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        ours = isinstance(exc, OSError) and isinstance(exc.filename, str) and \
            os.path.basename(exc.filename).startswith(prefix) and exc.filename.endswith(".tmp")
        if ours and exc.errno is not None:  # name the destination, not our temp file
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise


def save_png(path: str | Path, array: np.ndarray, palette: list[tuple[int, int, int]] | None = None) -> None:
    """Save a label map (palette PNG when a palette is given) or an RGB image, atomically."""
    import io as _io

    if array.ndim == 2 and array.dtype != np.uint8 and array.max() > 255:
        im = Image.fromarray(array.astype(np.uint16))
    elif array.ndim == 2:
        im = Image.fromarray(array.astype(np.uint8), mode="L")
        if palette is not None:
            im = im.convert("P")
            flat = [v for c in palette for v in c]
            im.putpalette(flat + [0] * (768 - len(flat)))
    else:
        im = Image.fromarray(array.astype(np.uint8))
    buf = _io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
