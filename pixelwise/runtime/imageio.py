"""Image decoding for the runtime (Pillow + numpy only), with errors that say what to do."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from pixelwise.data.io import (UPLOAD_FORMATS, gdal_nodata, loaded_rgb, open_image, pil_to_rgb,  # numpy + Pillow only
                               read_image as read_image_file, refuse_misread_tiff, tiff_error, upright)
from pixelwise.errors import ImageReadError, ImageTooLargeError, PixelwiseError, first_line

UPLOAD_FIX = "send a PNG, JPEG, TIFF, BMP, WebP, GIF, PNM or TGA file"

ImageFile.LOAD_TRUNCATED_IMAGES = False


def read_image(path: str | Path) -> np.ndarray:
    """File -> HxWx3 uint8 RGB. ``.npy`` files are memory-mapped (for huge tiled inputs)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ImageReadError(f"read_image takes a file path, not a {type(path).__name__}.", path=type(path).__name__,
                             fix="pass the image's path (predict also takes PIL images and arrays)")
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.exists():
            raise ImageReadError(f"Image not found: {path}.", path=path, fix="check the path")
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:  # not .npy data, truncated, or pickled objects
            raise ImageReadError(f"Cannot decode image {path} as a .npy array ({first_line(exc)}).", path=path,
                                 fix="save it with numpy.save as an HxW or HxWx3 uint8 array, or remove it") from None
        return ensure_rgb(arr, path)
    return read_image_file(path, missing_fix="check the path")


def load_input(image: object) -> tuple[np.ndarray, Path | None]:
    """What ``predict`` accepts -> (HxWx3 uint8 RGB, the source path or None): an image path, a
    PIL image (as displayed) or an array (HxW grey, HxWx3 RGB, HxWx4 RGBA, uint8)."""
    if isinstance(image, np.ndarray):
        return ensure_rgb(image, "array"), None
    if isinstance(image, Image.Image):
        refuse_misread_tiff(image, getattr(image, "filename", "") or "image")  # opened, not yet loaded
        return pil_to_rgb(upright(image), gdal_nodata(image)), None
    if isinstance(image, (str, os.PathLike)):
        src = Path(image)
        return ensure_rgb(read_image(src), src), src
    raise ImageReadError(f"Cannot predict a {type(image).__name__}: expected an image path, a PIL image or an "
                         "HxWx3 uint8 array.", path=type(image).__name__,
                         fix="pass a file path, PIL.Image.open(path), or numpy.asarray(...) of one")


def decode_image(data: bytes, name: str = "upload", max_pixels: int | None = None) -> np.ndarray:
    """Encoded bytes (PNG/JPEG/...) -> HxWx3 uint8 RGB; ImageReadError when not an image.

    ``max_pixels`` is checked against the size the file's header declares, before decoding:
    a few hundred kilobytes of PNG can declare 40000x40000 pixels (4.8 GB as RGB). Only
    ``UPLOAD_FORMATS`` are opened: they read only their header on open.
    Any exception while decoding these bytes means they are no image this server reads (400), not
    a server error: the bytes come from a client.
    """
    try:
        with open_image(io.BytesIO(data), formats=UPLOAD_FORMATS) as im:  # max_pixels is the limit here
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageTooLargeError(f"Image {name} declares {w}x{h} pixels, above the limit of "
                                         f"{max_pixels}.", path=name, fix="downscale it (or tile it "
                                         "client-side and send the tiles)")
            return loaded_rgb(im, name)  # as displayed, like a file read from disk
    except (PixelwiseError, MemoryError):
        raise
    except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error... from a plugin on bad bytes
        tiff = tiff_error(data, name, "image", exc, "send the whole file")
        if tiff is not None:
            raise tiff from None
        if isinstance(exc, UnidentifiedImageError):  # Pillow's message names its BytesIO object, not the upload
            raise ImageReadError(f"Cannot decode image {name}: " + (
                f"its {len(data)} bytes are in none of the formats this reads (PNG, JPEG, TIFF, BMP, WebP, GIF, PNM, "
                "TGA)." if data else "the upload is empty."), path=name, fix=UPLOAD_FIX) from None
        raise ImageReadError(f"Cannot decode image {name} ({type(exc).__name__}: {first_line(exc)}).", path=name,
                             fix=UPLOAD_FIX) from None


def ensure_rgb(image: np.ndarray, where: str | Path = "array") -> np.ndarray:
    """Accept HxW grey, HxWx3 RGB or HxWx4 RGBA uint8; return an HxWx3 view where possible."""
    if image.ndim == 2:  # a read-only view: a memory-mapped grey .npy stays on disk
        image = np.broadcast_to(image[..., None], (*image.shape, 3))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageReadError(f"Expected an HxWx3 RGB image, got shape {image.shape}.", path=str(where),
                             fix="pass an RGB uint8 array or an image path")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"The image has no pixels (shape {image.shape}).", path=str(where),
                             fix="pass an image at least 1 pixel high and wide")
    if image.dtype != np.uint8:
        raise ImageReadError(f"Expected uint8 pixels, got {image.dtype}.", path=str(where),
                             fix="convert the image to 8-bit RGB")
    return image[..., :3]


def storable(array: np.ndarray) -> np.ndarray:
    """An image array as PNG and TIFF store it: a 2-D array that is not uint8 is the label map of a
    model above 256 classes (the predictors give uint8 up to 256), stored 16-bit whatever the
    image's own largest id, so every output of one model has one type (GDAL's mosaics refuse a mix)."""
    return array.astype(np.uint16) if array.ndim == 2 and array.dtype != np.uint8 else array


def encode_png(array: np.ndarray, fast: bool = False) -> bytes:
    """PNG bytes (a 2-D integer array is a label map: 8-bit, or 16-bit above 256 classes, see
    ``storable``). ``fast``: zlib level 1, for photo-like images (overlays), where the default level
    took 45 instead of 12 ms for a 480x360 image and saved only 8% of the size; label and colour
    maps compress well and quickly at the default."""
    array = storable(array)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1 if fast else 6)
    return buf.getvalue()


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxWx3 uint8 image to (h, w)."""
    h, w = size
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.BILINEAR))


def resize_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of CxHxW float scores to CxhxW (one Pillow 'F' image per class)."""
    h, w = size
    if scores.shape[1:] == (h, w):
        return scores
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F")
                                .resize((w, h), Image.BILINEAR)) for c in scores])
