"""The JavaScript example runs a --pipeline export with no pre/post-processing code of its own,
through onnxruntime-node and through onnxruntime-web's WebAssembly build (what a browser runs).

It is what the export issue promises a JavaScript user: decode the image, feed the uint8 pixels,
read the label map. The example is installed from its lock file (npm registry) and run for real;
its label maps are compared with pixelwise's own runtime on the same files.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.imageio import read_image

from tests.examples.helpers import NODE, NPM, grey_png, val_images, without_record

pytestmark = pytest.mark.skipif(not (NODE and NPM), reason="node and npm are not installed")


def run_example(js: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(js / "segment.mjs"), *args, "--threads", "2"], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("backend", ["node", "web"])  # web: onnxruntime-web's WebAssembly build
def test_label_maps_match_the_python_runtime(js_example, pipeline_model, tiny_run, tmp_path, backend):
    vals = val_images(tiny_run)
    rgb = read_image(vals[0])
    inputs = tmp_path / "in"
    inputs.mkdir()
    # PNGs decode to the same pixels everywhere: the label maps must agree like an export check.
    Image.fromarray(rgb[3:, 5:]).save(inputs / "odd_size.png")  # not a multiple of the stride
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 90, np.uint8)])).save(inputs / "rgba.png")
    Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(inputs / "grey.png")
    Image.fromarray((rgb.mean(-1) * 12).astype(np.uint16)).save(inputs / "grey16.png")  # 12-bit scan
    # Low bit depths (scanned documents, masks): pngjs leaves these samples unscaled (0..1, 0..15).
    Image.fromarray(rgb.mean(-1) > 100).save(inputs / "bilevel.png")
    for depth in (2, 4):
        (inputs / f"grey{depth}bit.png").write_bytes(grey_png((rgb.mean(-1) / 256 * 2**depth).astype(np.uint8), depth))
        assert Image.open(inputs / f"grey{depth}bit.png").size == rgb.shape[1::-1]
    shutil.copy(vals[1], inputs / "photo.jpg")
    files = sorted(inputs.iterdir())
    done = run_example(js_example, str(pipeline_model), *map(str, files), "--out", str(tmp_path / "out"),
                       "--backend", backend)
    assert done.returncode == 0, done.stderr
    reports = {Path(r["image"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    runtime = RuntimeSegmenter.load(pipeline_model, threads=2)
    for f in files:
        ref = runtime.predict(read_image(f)).labels
        labels = np.asarray(Image.open(tmp_path / "out" / f"{f.stem}_labels.png"))
        color = np.asarray(Image.open(tmp_path / "out" / f"{f.stem}_color.png"))
        assert labels.shape == ref.shape and color.shape == (*ref.shape, 3)
        assert (color == np.asarray(runtime.meta.colors, np.uint8)[labels]).all()
        counts = [c["pixels"] for c in reports[f.name]["classes"]]
        assert counts == np.bincount(labels.ravel(), minlength=len(counts)).tolist()
        agreement = (labels == ref).mean()
        # JPEG decoders differ (jpeg-js upsamples chroma without libjpeg's smoothing: pixels off
        # by up to ~30 at colour edges), so the photo is held to a looser bound than the PNGs.
        assert agreement >= (0.97 if f.suffix == ".jpg" else 0.999), (f.name, agreement)


def test_jpegs_are_turned_upright_by_their_exif_orientation(js_example, tiny_run, tmp_path):
    """Phone photos are stored sideways or mirrored with an EXIF orientation; pixelwise (and every
    browser) reads them as displayed. jpeg-js gives the stored pixels: the example turns them.
    Same JPEG data with each orientation tag: the decode must be the untagged decode, turned."""
    photo = val_images(tiny_run)[1]
    jpeg = photo.read_bytes()
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        payload = exif.tobytes()  # b"Exif\0\0" + TIFF: an APP1 segment after SOI, the pixels untouched
        (tmp_path / f"o{o}.jpg").write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2)
                                             + payload + jpeg[2:])
    script = ("import fs from 'node:fs'; const m = await import(process.argv[1]);"
              "for (const f of process.argv.slice(2)) { const d = m.decodeImage(f);"
              "fs.writeFileSync(f + '.rgb', d.rgb); fs.writeFileSync(f + '.json', JSON.stringify([d.height, d.width])); }")
    files = [str(tmp_path / f"o{o}.jpg") for o in range(1, 9)]
    done = subprocess.run([NODE, "--input-type=module", "-e", script, (js_example / "segment.mjs").as_uri(), *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def decoded(f: str) -> np.ndarray:
        h, w = json.loads(Path(f + ".json").read_text())
        return np.frombuffer(Path(f + ".rgb").read_bytes(), np.uint8).reshape(h, w, 3)

    stored = decoded(files[0])

    def as_pillow_turns(o: int) -> np.ndarray:  # what pixelwise's Python readers apply (ImageOps.exif_transpose)
        im = Image.fromarray(stored)
        im.getexif()[0x0112] = o
        return np.asarray(ImageOps.exif_transpose(im))

    for o, f in enumerate(files[1:], start=2):
        np.testing.assert_array_equal(decoded(f), as_pillow_turns(o), err_msg=f"orientation {o}")


def test_bad_inputs_are_reported_and_skipped(js_example, pipeline_model, tiny_run, tmp_path):
    good = val_images(tiny_run)[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    done = run_example(js_example, str(pipeline_model), str(broken), str(good), str(text),
                       "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "broken.png: cannot decode" in done.stderr and "notes.jpg: cannot decode" in done.stderr
    assert (tmp_path / "out" / f"{good.stem}_labels.png").exists()  # the readable one is still done
    assert not list((tmp_path / "out").glob("broken*")) and not list((tmp_path / "out").glob("*.tmp-*"))


def test_logits_exports_and_missing_metadata_are_refused(js_example, onnx_model, pipeline_model, tiny_run,
                                                          tmp_path):
    image = str(val_images(tiny_run)[0])
    done = run_example(js_example, str(onnx_model), image, "--out", str(tmp_path))
    assert done.returncode == 2 and "--pipeline" in done.stderr and str(onnx_model) in done.stderr
    bare = without_record(pipeline_model, tmp_path / "bare.onnx")  # no sidecar, no record inside
    done = run_example(js_example, str(bare), image, "--out", str(tmp_path))
    assert done.returncode == 2 and f"{bare}.json: metadata not found, and {bare} carries none" in done.stderr
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(pipeline_model.read_bytes()[:3000])
    done = run_example(js_example, str(cut), image, "--out", str(tmp_path))
    assert done.returncode == 2 and f"{cut}: not an ONNX model" in done.stderr and done.stderr.count("\n") == 1
    # The .onnx alone, as pixelwise exports it: the record inside gives the classes, same output.
    alone = tmp_path / "alone" / "pipe.onnx"
    alone.parent.mkdir()
    shutil.copy(pipeline_model, alone)
    outs = []
    for model in (pipeline_model, alone):
        done = run_example(js_example, str(model), image, "--out", str(tmp_path / model.parent.name))
        assert done.returncode == 0, done.stderr
        outs.append(json.loads(done.stdout.splitlines()[0]))
    assert outs[0]["classes"] == outs[1]["classes"]
    for args, message in ((["--threads", "abc"], "--threads abc: pass a whole number"),
                          (["--threads", "0"], "--threads 0: pass a whole number"),
                          (["--out", image], f"--out {image} is a file; pass a folder")):
        done = subprocess.run([NODE, str(js_example / "segment.mjs"), str(pipeline_model), image, *args],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
