"""Reading a huge 16-bit single-channel scan: peak memory and time of pixelwise's reader vs the ways
a user or a peer would turn it into 8-bit RGB.

Writes an SxS 16-bit grey TIFF (a smooth ramp with noise, values up to 4095 as from a 12-bit
sensor) in a temp folder, then reads it in a fresh process per reader, so each peak RSS is its own:

* ``pillow_decode``: ``np.asarray(Image.open(path))``, the 16-bit array alone, no conversion: the
  floor for any reader built on Pillow (the array interface copies the decoded image once);
* ``pixelwise``: ``pixelwise.data.io.read_image`` (the README's rule: stretched from min(0, lowest)
  to highest through a 65536-entry lookup table, no float copy);
* ``float_stretch``: the same rule computed on a float32 copy (what pixelwise did before; a
  user's usual numpy code);
* ``opencv``: ``cv2.imread(IMREAD_UNCHANGED)`` + ``cv2.normalize(NORM_MINMAX)`` + grey to RGB
  (MMSegmentation reads through mmcv/OpenCV; its min-max stretch starts at the lowest value,
  not at 0, so its pixels differ from the rule's).

    python benchmarks/read_memory.py [--size 12000]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READERS = ("pillow_decode", "pixelwise", "float_stretch", "opencv")


def make_scan(path: Path, size: int) -> None:
    """A 12-bit-valued ramp with noise in a 16-bit TIFF (uncompressed, as scanners write)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(200, 3800, size, dtype=np.float32)
    data = np.empty((size, size), np.uint16)
    for y in range(0, size, 1000):  # band by band: one float band at a time
        rows = min(1000, size - y)
        band = ramp[None, :] + rng.normal(0, 60, (rows, size)).astype(np.float32)
        data[y:y + rows] = band.clip(0, 4095).astype(np.uint16)
    Image.fromarray(data).save(path)  # mode I;16


def read(reader: str, path: str):
    import numpy as np

    if reader == "pixelwise":
        from pixelwise.data.io import read_image

        return read_image(path)
    if reader in ("pillow_decode", "float_stretch"):
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        a = np.asarray(Image.open(path))
        if reader == "pillow_decode":
            return a
        a = a.astype(np.float32)
        lo, hi = min(0.0, float(a.min())), float(a.max())
        grey = ((a - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    import cv2

    a = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    grey = cv2.normalize(a, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def worker(reader: str, path: str) -> int:
    """One reader in this process: prints a JSON line with seconds, peak RSS and an output digest."""
    if reader != "opencv":  # numpy and Pillow are loaded before the baseline in both other readers
        import numpy  # noqa: F401
        from PIL import Image  # noqa: F401
    else:
        import cv2  # noqa: F401
    if reader == "pixelwise":
        import pixelwise.data.io  # noqa: F401
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    rgb = read(reader, path)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"reader": reader, "seconds": round(seconds, 2), "rss_before_mb": round(rss0, 1),
                      "peak_rss_mb": round(peak, 1), "shape": list(rgb.shape), "dtype": str(rgb.dtype),
                      "sha1": hashlib.sha1(rgb.tobytes()).hexdigest()}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=12000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "read_memory.json"))
    ap.add_argument("--worker", choices=(*READERS, "make"), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "make":
        make_scan(Path(a.path), a.size)
        return 0
    if a.worker:
        return worker(a.worker, a.path)
    # This process stays small (no numpy): a child's ru_maxrss starts from its parent's RSS at fork.
    runs = {}
    with tempfile.TemporaryDirectory(prefix="pw_read_") as tmp:
        scan = Path(tmp) / "scan.tif"
        subprocess.run([sys.executable, __file__, "--worker", "make", "--path", str(scan), "--size", str(a.size)],
                       check=True, cwd=ROOT)
        size_mb = scan.stat().st_size / 2**20
        for reader in READERS:
            r = subprocess.run([sys.executable, __file__, "--worker", reader, "--path", str(scan)],
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            runs[reader] = json.loads(r.stdout.strip().splitlines()[-1])
            print(runs[reader], flush=True)
    res = {"image": f"{a.size}x{a.size} 16-bit grey TIFF, uncompressed, values 0-4095", "file_mb": round(size_mb, 1),
           "output_mb": round(a.size * a.size * 3 / 2**20, 1), "runs": runs,
           "pixelwise_equals_float_stretch": runs["pixelwise"]["sha1"] == runs["float_stretch"]["sha1"]}
    from report import save_results

    save_results(res, a.out, write_markdown)
    return 0


def write_markdown(res: dict, path: Path) -> None:
    from report import section, table, write_lines

    names = {"pillow_decode": "Pillow decode alone: `np.asarray(Image.open(path))`, uint16 HxW (the floor)",
             "pixelwise": "pixelwise `read_image` (lookup table)",
             "float_stretch": "the same rule on a float32 copy (pixelwise before; usual numpy code)",
             "opencv": "OpenCV `imread(UNCHANGED)` + `normalize(MINMAX)` + grey to RGB"}
    runs = res["runs"]
    lines = [*section("Reading a huge 16-bit scan: peak memory (data tools, training, predict, server)",
                      None,
                      f"- **Input:** {res['image']} ({res['file_mb']} MB on disk); output HxWx3 uint8 "
                      f"({res['output_mb']} MB); each reader in its own process"),
             *table(["reader", "seconds", "peak RSS (MB)", "peak RSS before the read (MB)"],
                    [(names[k], runs[k]["seconds"], runs[k]["peak_rss_mb"], runs[k]["rss_before_mb"])
                     for k in READERS], "lrrr"), "",
             "The 8-bit RGB readers' output is HxWx3 uint8. "
             "pixelwise's output is " + ("byte-identical to" if res["pixelwise_equals_float_stretch"] else
                                         "DIFFERENT from") + " the float32 computation of the same rule. "
             "OpenCV's min-max stretch maps the lowest value to 0 (the rule maps 0 to 0), so its pixels "
             "differ by design; it is here for its memory and time."]
    write_lines(path, lines)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
