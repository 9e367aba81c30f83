"""The browser page (examples/javascript/browser) segments images in headless Chromium.

The page runs a --pipeline export through onnxruntime-web with the browser's own image decoders
and no pre/post-processing code; here it is served from a real HTTP server on loopback, driven by
its address parameters, and its label maps are compared with pixelwise's Python runtime.
"""
from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from PIL import Image

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.imageio import read_image
from tests.examples.helpers import NODE, NPM, example_server, grey_png, val_images, without_record

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = pytest.mark.skipif(not (NODE and NPM and CHROMIUM),
                                reason="node, npm and chromium are needed (apt-get install chromium)")


@contextlib.contextmanager
def serving(site: Path, isolated: bool = True) -> Iterator[tuple[str, queue.Queue]]:
    """`site` on the example's own loopback server (browser/serve.py, as a user runs it): its
    base address, and the queue of (path, body) the page POSTs."""
    posts: queue.Queue = queue.Queue()
    with example_server().site_server(site, isolated, posts) as base:
        yield base, posts


def run_page(site: Path, model: str, images: list[str], isolated: bool = True) -> dict:
    """Serve `site`, open the page in headless Chromium with these files, return its report."""
    query = urlencode([("model", model), *(("image", i) for i in images), ("report", "/report")], quote_via=quote)
    profile = site / f"chromium-{uuid.uuid4().hex}"
    with serving(site, isolated) as (base, reports):
        browser = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"{base}/browser/index.html?{query}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return json.loads(reports.get(timeout=180)[1])
        finally:
            browser.kill()
            browser.wait()
            shutil.rmtree(profile, ignore_errors=True)


def served(js_example: Path, *files: Path) -> list[str]:
    """Copy files (and an export's sidecar) under the site; their addresses relative to the page."""
    folder = js_example / "served" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    for f in files:
        shutil.copy(f, folder / f.name)
        if f.suffix == ".onnx" and f.with_name(f.name + ".json").exists():
            shutil.copy(f.with_name(f.name + ".json"), folder / (f.name + ".json"))
    return [f"../served/{folder.name}/{f.name}" for f in files]


def labels_of(entry: dict) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(entry["labels"]), np.uint8)
    return flat.reshape(entry["height"], entry["width"])


@pytest.mark.parametrize("isolated", [True, False], ids=["threads", "one-thread"])
def test_label_maps_match_the_python_runtime(js_example, pipeline_model, tiny_run, tmp_path, isolated):
    vals = val_images(tiny_run)
    rgb = read_image(vals[0])
    Image.fromarray(rgb[3:, 5:]).save(tmp_path / "odd_size.png")  # not a multiple of the stride
    Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(rgb.mean(-1) > 100).save(tmp_path / "bilevel.png")
    (tmp_path / "grey4bit.png").write_bytes(grey_png((rgb.mean(-1) / 16).astype(np.uint8), 4))
    shutil.copy(vals[1], tmp_path / "photo.jpg")
    files = [tmp_path / n for n in ("odd_size.png", "grey.png", "bilevel.png", "grey4bit.png", "photo.jpg")]
    model, *images = served(js_example, pipeline_model, *files)
    report = run_page(js_example, model, images, isolated=isolated)
    assert "error" not in report, report
    assert report["threads"] == (2 if isolated else 1)  # WebAssembly threads only when isolated
    runtime = RuntimeSegmenter.load(pipeline_model, threads=2)
    assert [Path(e["image"]).name for e in report["images"]] == [f.name for f in files]
    for f, entry in zip(files, report["images"]):
        assert "error" not in entry, entry
        labels, ref = labels_of(entry), runtime.predict(read_image(f)).labels
        assert labels.shape == ref.shape
        counts = [c["pixels"] for c in entry["classes"]]
        assert counts == np.bincount(labels.ravel(), minlength=len(counts)).tolist()
        assert [c["name"] for c in entry["classes"]] == runtime.meta.names
        # Chromium decodes PNG and JPEG with the same libraries' algorithms as Pillow (libpng,
        # libjpeg-turbo), so every file is held to the export check's bound.
        agreement = (labels == ref).mean()
        assert agreement >= 0.999, (f.name, agreement)


def test_bad_files_are_reported_and_the_rest_still_segmented(js_example, pipeline_model, onnx_model,
                                                              tiny_run, tmp_path):
    good = val_images(tiny_run)[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    model, *images = served(js_example, pipeline_model, broken, good, text)
    report = run_page(js_example, model, [*images, "../served/missing.png"])
    entries = {Path(e["image"]).name: e for e in report["images"]}
    assert "cannot decode" in entries["broken.png"]["error"]
    assert "cannot decode" in entries["notes.jpg"]["error"]
    assert "HTTP 404" in entries["missing.png"]["error"]
    assert "error" not in entries[good.name] and labels_of(entries[good.name]).shape == read_image(good).shape[:2]

    # A logits export (float tensors in) is refused with the command that makes a pipeline one.
    logits, = served(js_example, onnx_model)
    report = run_page(js_example, logits, images[1:2])
    assert "--pipeline" in report["error"] and report["images"] == []
    # A model with no sidecar and no record inside: the page names the address it could not fetch.
    bare = tmp_path / "bare.onnx"
    without_record(pipeline_model, bare)
    bare_url, = served(js_example, bare)
    report = run_page(js_example, bare_url, images[1:2])
    assert f"{bare_url}.json: HTTP 404, and {bare_url} carries no pixelwise record" in report["error"]
    # With the record inside (as pixelwise exports it), the .onnx alone is enough.
    alone = tmp_path / "alone.onnx"
    shutil.copy(pipeline_model, alone)
    alone_url, = served(js_example, alone)
    report = run_page(js_example, alone_url, images[1:2])
    assert "error" not in report and "error" not in report["images"][0], report
    expected = RuntimeSegmenter.load(pipeline_model, threads=2).predict(read_image(good)).labels
    assert (labels_of(report["images"][0]) == expected).mean() >= 0.999


def test_the_form_works_as_a_user_drives_it(js_example, pipeline_model, onnx_model, tiny_run, tmp_path):
    """File pickers, the opacity slider and the save links, through playwright-core (a locked dev
    dependency of the example): wrong files are refused on the page, then the overlay at full
    opacity is the label map in the export's colours, the table's counts are the Python
    runtime's, and the saved files are what the page shows."""
    shutil.copy(Path(__file__).with_name("browser_ui.mjs"), js_example / "browser_ui.mjs")
    image = val_images(tiny_run)[0]
    model, logits = (tmp_path / "pipe.onnx"), (tmp_path / "logits.onnx")
    for src, dst in ((pipeline_model, model), (onnx_model, logits)):
        shutil.copy(src, dst)
        shutil.copy(f"{src}.json", f"{dst}.json")
    with serving(js_example) as (base, _):
        done = subprocess.run([NODE, str(js_example / "browser_ui.mjs"), CHROMIUM, f"{base}/browser/index.html",
                               str(model), f"{model}.json", str(image), str(logits), str(tmp_path),
                               str(without_record(pipeline_model, tmp_path / "no_record.onnx"))],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["imageDisabledAtFirst"] and page["imageEnabled"]
    assert page["noRecord"]["error"] and "select the .json written next to it too" in page["noRecord"]["text"]
    assert not page["onlyOnnx"]["error"] and "11 classes" in page["onlyOnnx"]["text"]  # the record inside
    assert page["logits"]["error"] and "--pipeline" in page["logits"]["text"]
    assert not page["ready"]["error"] and "11 classes" in page["ready"]["text"]
    assert not page["segmented"]["error"] and image.name in page["segmented"]["text"]
    runtime = RuntimeSegmenter.load(pipeline_model, threads=2)
    ref = runtime.predict(read_image(image)).labels
    canvas = np.frombuffer(base64.b64decode(page["canvas"]["rgba"]), np.uint8).reshape(*ref.shape, 4)
    expected = np.asarray(runtime.meta.colors, np.uint8)[ref]
    assert (canvas[..., :3] == expected).all(-1).mean() >= 0.999
    counts = np.bincount(ref.ravel(), minlength=len(runtime.names))
    shown = {name: int(re.sub(r"\D", "", pixels)) for name, pixels, _ in page["table"]}  # "12,345" in en-US
    assert sum(shown.values()) == ref.size
    assert sum(abs(shown.get(n, 0) - int(c)) for n, c in zip(runtime.names, counts)) <= 0.001 * ref.size
    # The four downloads, named after the image: the overlay as shown (opacity 1: the colours),
    # the colour map, the label map (class indices) and the class areas.
    stem = image.stem
    assert page["saved"] == [f"{stem}_overlay.png", f"{stem}_color.png", f"{stem}_labels.png", f"{stem}_areas.json"]
    for name in page["saved"][:2]:
        saved = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert (saved == expected).all(-1).mean() >= 0.999, name
    with Image.open(tmp_path / f"{stem}_labels.png") as png:  # a label map as training data holds them
        png.load()
        assert png.mode == "L" and png.size == (ref.shape[1], ref.shape[0])
        labels = np.asarray(png)
    assert (labels == ref).mean() >= 0.999
    areas = json.loads((tmp_path / f"{stem}_areas.json").read_text())
    assert (areas["width"], areas["height"]) == (ref.shape[1], ref.shape[0])
    assert sum(c["pixels"] for c in areas["classes"]) == ref.size
    # the saved label map is the one the page counted: its areas, pixel for pixel
    assert [c["pixels"] for c in areas["classes"]] == np.bincount(labels.ravel(), minlength=len(runtime.names)).tolist()
