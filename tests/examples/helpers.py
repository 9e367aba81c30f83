"""What the example tests share besides fixtures: where node/npm are, the tiny run's photos."""
from __future__ import annotations

import importlib.util
import shutil
import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "javascript"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def val_images(tiny_run) -> list[Path]:
    """The tiny run's validation photos (real CamVid JPEGs)."""
    from pixelwise.inference.predictor import Segmenter

    record = Segmenter.load(tiny_run.best, device="cpu").dataset_record()
    return sorted(Path(record["val"]["images"]).glob("*.jpg"))


def grey_png(values: np.ndarray, depth: int) -> bytes:
    """A greyscale PNG at 1, 2 or 4 bits per sample (Pillow writes only 1-bit grey itself)."""
    per_byte = 8 // depth
    h, w = values.shape
    padded = np.zeros((h, -(-w // per_byte) * per_byte), np.uint8)
    padded[:, :w] = values
    groups = padded.reshape(h, -1, per_byte).astype(np.uint16)
    shifts = np.arange(per_byte - 1, -1, -1) * depth
    rows = (groups << shifts).sum(-1).astype(np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def example_server() -> ModuleType:
    """The browser example's server module (examples/javascript/browser/serve.py), by path: the
    tests serve the page with what users run."""
    path = EXAMPLE / "browser" / "serve.py"
    spec = importlib.util.spec_from_file_location("pixelwise_example_serve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_record(model: Path, dst: Path) -> Path:
    """A copy of an ONNX export with its metadata_props (the pixelwise record) removed."""
    import onnx

    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    onnx.save(proto, str(dst))
    return dst
