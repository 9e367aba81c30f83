"""The torch-free runtime: same outputs as the PyTorch Segmenter, tiling, TTA, batch, errors."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch

from pixelwise.cli import main
from pixelwise.errors import ConfigError
from pixelwise.inference.predictor import Segmenter
from pixelwise.runtime import RuntimeModelError, RuntimeSegmenter
from pixelwise.runtime.imageio import read_image
from pixelwise.runtime.tiling import tile_count

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(tiny_run, onnx_model):
    seg = Segmenter.load(tiny_run.best, device="cpu")
    images = sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))
    return seg, RuntimeSegmenter.load(onnx_model), images


def test_same_predict_api_and_outputs_as_pytorch(pair):
    seg, rt, images = pair
    assert rt.names == seg.names and rt.colors == seg.colors and rt.num_classes == seg.num_classes
    for f in images[:2]:
        a, b = rt.predict(f, probabilities=True), seg.predict(f, probabilities=True)
        assert a.labels.dtype == b.labels.dtype and a.labels.shape == b.labels.shape
        assert (a.labels == b.labels).mean() > 0.999
        assert np.abs(a.probabilities - b.probabilities).max() < 1e-4
        assert a.source == b.source == f
        assert a.class_areas(rt.names) == pytest.approx(b.class_areas(seg.names), abs=1e-3)
        fa, fb = rt.predict(f, flip=True), seg.predict(f, flip=True)
        assert (fa.labels == fb.labels).mean() > 0.999
        np.testing.assert_array_equal(rt.colorize(a.labels), seg.colorize(a.labels))


def test_sizes_off_the_stride_are_padded_by_the_runtime(pair):
    """The logits graph takes multiples of the stride; any other size is padded and cropped by
    the runtime exactly as the model pads, in both the labels fast path and the scores path."""
    seg, rt, images = pair
    assert rt.meta.input_multiple == seg.model.stride > 1
    image = read_image(images[0])
    for h, w in [(45, 77), (33, 101), (image.shape[0], image.shape[1])]:
        crop = np.ascontiguousarray(image[:h, :w])
        ref = seg.predict(crop, probabilities=True)
        fast, full = rt.predict(crop), rt.predict(crop, probabilities=True)
        assert fast.labels.shape == full.labels.shape == (h, w)
        np.testing.assert_array_equal(fast.labels, full.labels)
        assert (fast.labels == ref.labels).mean() > 0.999
        assert np.abs(full.probabilities - ref.probabilities).max() < 1e-4


def test_confidence_and_area_summary(pair):
    _, rt, images = pair
    p = rt.predict(images[0], probabilities=True, confidence=True)
    np.testing.assert_allclose(p.confidence, p.probabilities.max(0), rtol=1e-6)
    assert (p.confidence >= 1.0 / rt.num_classes - 1e-6).all() and (p.confidence <= 1 + 1e-6).all()
    summary = p.area_summary(rt.names)
    assert [s["name"] for s in summary] == rt.names
    assert sum(s["pixels"] for s in summary) == p.labels.size
    assert sum(s["fraction"] for s in summary) == pytest.approx(1.0)


def test_multiscale_and_flip_tta(pair):
    _, rt, images = pair
    image = read_image(images[0])
    one = rt.logits(image)
    tta = rt.logits(image, flip=True, scales=(0.75, 1.0, 1.25))
    assert tta.shape == one.shape
    assert not np.allclose(tta, one)  # the augmentations really contributed
    assert (tta.argmax(1) == one.argmax(1)).mean() > 0.5


def test_tiled_equals_whole_image(pair):
    _, rt, images = pair
    image = read_image(images[0])
    whole = rt.predict(image, confidence=True)
    big_tile = rt.predict(image, tile=4096, confidence=True)  # one tile: exactly the same maths
    np.testing.assert_array_equal(big_tile.labels, whole.labels)
    np.testing.assert_allclose(big_tile.confidence, whole.confidence, atol=1e-5)
    # without confidence, tiles are blended at the logits' stride: one tile is still the whole image
    assert rt.lowres_factor == 4
    np.testing.assert_array_equal(rt.predict(image, tile=4096).labels, whole.labels)
    h, w = image.shape[:2]
    tiled = rt.predict(image, tile=112, overlap=48)
    assert tile_count((h, w), 112, 48) > 1
    # Only the context seen near tile borders differs (this tiny model was trained 2 epochs).
    assert (tiled.labels == whole.labels).mean() > 0.8
    with pytest.raises(ConfigError, match="tiled mode"):
        rt.predict(image, tile=64, probabilities=True)


def test_multiscale_tta_is_the_same_in_both_predictors(pair):
    """A scale above 1 is shrunk back: Pillow anti-aliases there, torch's interpolate did not, so
    the two predictors' TTA differed (max probability difference 0.005 on real weights)."""
    seg, rt, images = pair
    image = read_image(images[0])
    a = rt.predict(image, flip=True, scales=(0.75, 1.0, 1.5), probabilities=True)
    b = seg.predict(image, flip=True, scales=(0.75, 1.0, 1.5), probabilities=True)
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-4
    assert (a.labels == b.labels).mean() > 0.9999


def test_tiled_flip_equals_whole_image_flip_at_any_width(pair):
    """One tile covering the image must give the whole image's labels with flip too. At a width
    off the input multiple the tile is padded on the right; mirrored at the logits' stride, the
    padding moved to the left and shifted the image on the grid."""
    seg, rt, images = pair
    image = read_image(images[0])
    for h, w in [(90, 125), (61, 77)]:
        crop = np.ascontiguousarray(image[:h, :w])
        assert w % rt.meta.input_multiple
        for model in (rt, seg):
            whole = model.predict(crop, flip=True).labels
            np.testing.assert_array_equal(model.predict(crop, flip=True, tile=4096).labels, whole)


def test_tiled_confidence_of_a_pipeline_export(pair, tiny_run, tmp_path):
    """A pipeline export's scores are probabilities already: its tiled confidence used to be
    dropped (None, silently); it is now their blended maximum, exact for one tile."""
    from pixelwise.export import export

    _, rt, images = pair
    pipe = RuntimeSegmenter.load(export(tiny_run.best, "onnx", tmp_path / "p.onnx", pipeline=True,
                                        verify_images=1).path)
    image = read_image(images[0])
    whole = pipe.predict(image, confidence=True).confidence
    np.testing.assert_allclose(pipe.predict(image, tile=4096, confidence=True).confidence, whole, atol=1e-6)
    np.testing.assert_allclose(whole, rt.predict(image, confidence=True).confidence, atol=1e-4)
    tiled = pipe.predict(image, tile=112, overlap=48, confidence=True).confidence
    assert tiled.shape == whole.shape and 0 < tiled.min() and tiled.max() <= 1 + 1e-6


def test_a_pipeline_export_averages_views_and_tiles_like_the_checkpoint(pair, tiny_run, tmp_path):
    """A pipeline graph gives probabilities; TTA and tiling averaged those where the checkpoint
    averages logits (88-98% label agreement with --scales on the demo model). They now average
    log-probabilities: the logits less a per-pixel constant, so the same arg-max and softmax."""
    from pixelwise.export import export

    seg, _, images = pair
    pipe = RuntimeSegmenter.load(export(tiny_run.best, "onnx", tmp_path / "p.onnx", pipeline=True,
                                        verify_images=1).path)
    image = read_image(images[0])
    for options in (dict(flip=True), dict(scales=(0.75, 1.0, 1.5)), dict(flip=True, scales=(0.5, 1.0))):
        a, b = pipe.predict(image, probabilities=True, **options), seg.predict(image, probabilities=True, **options)
        assert (a.labels == b.labels).mean() > 0.9999, options
        assert np.abs(a.probabilities - b.probabilities).max() < 1e-4, options
    from pixelwise.runtime.tiling import tiled_labels

    rt = pair[1]  # the logits export, blended at full resolution like the pipeline's probabilities
    for flip in (False, True):
        a = pipe.predict(image, tile=112, overlap=48, confidence=True, flip=flip)
        conf = np.empty(image.shape[:2], np.float32)
        labels = tiled_labels(image, rt._tta_fn(flip), rt.num_classes, 112, 48, confidence_out=conf,
                              multiple=rt.meta.stride)
        assert (a.labels == labels).mean() > 0.9999, flip
        assert np.abs(a.confidence - conf).max() < 1e-4, flip


def test_tiled_labels_do_not_depend_on_asking_for_confidence(pair):
    """Confidence used to switch tiling to full-resolution tiles placed differently from the
    stride-level ones: asking for it changed 1.2% of a 2000x3000 image's labels."""
    seg, rt, images = pair
    image = read_image(images[0])
    for model in (rt, seg):
        plain = model.predict(image, tile=64, overlap=16)
        rich = model.predict(image, tile=64, overlap=16, confidence=True)
        np.testing.assert_array_equal(plain.labels, rich.labels)
        assert rich.confidence.shape == image.shape[:2] and 1 / rt.num_classes - 1e-6 <= rich.confidence.min()
        assert rich.confidence.max() <= 1 + 1e-6


def test_blending_is_exact_for_a_pixelwise_scorer():
    """With scores that depend only on each pixel, any tiling must reproduce the whole image:
    this isolates the window/overlap/band bookkeeping from the model's context."""
    from pixelwise.runtime.tiling import tiled_labels

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (203, 317, 3), dtype=np.uint8)
    proj = rng.standard_normal((5, 3)).astype(np.float32)

    def score(tiles: np.ndarray) -> np.ndarray:
        return np.einsum("cк,nhwk->nchw".replace("к", "k"), proj, tiles.astype(np.float32) / 255)

    whole = score(image[None])[0]
    conf = np.empty(image.shape[:2], np.float32)
    for tile, overlap, batch in [(64, 16, 3), (50, 25, 1), (128, 0, 8), (1000, 64, 2)]:
        got = tiled_labels(image, score, 5, tile, overlap, batch, confidence_out=conf)
        np.testing.assert_array_equal(got, whole.argmax(0))
        e = np.exp(whole - whole.max(0))
        np.testing.assert_allclose(conf, (e / e.sum(0)).max(0), rtol=1e-4)


def test_options_that_cannot_work_are_refused_alike_by_both_predictors(pair, tmp_path):
    """A tile below the stride, an overlap beyond half the tile, a scale that would blow the image
    up 100x (24 GB resident for one CamVid image, measured): refused before any pixel is computed,
    with the same words from the checkpoint's predictor and from the export's."""
    from pixelwise.errors import ConfigError

    seg, rt, images = pair
    image = read_image(images[0])
    refused = {"Tile size 0 is below the network's stride": dict(tile=0),
               "Tile size -5 is below": dict(tile=-5),
               "Tile size 16 is below": dict(tile=16),
               "Tile overlap 33 is outside 0..32": dict(tile=64, overlap=33),
               "Tile overlap -1 is outside": dict(tile=64, overlap=-1),
               "scale 100 is outside \\(0, 4\\]": dict(scales=(1, 100)),
               "scale 0 is outside": dict(scales=(0,)),
               "overlap=16 applies to tiled prediction only": dict(overlap=16)}
    refused.update({"scales='0.75,1' is not a list of numbers": dict(scales="0.75,1"),
                    r"scales=\[None\] is not a list of numbers": dict(scales=[None]),
                    "probabilities='no' is not True or False": dict(probabilities="no"),
                    "flip=1 is not True or False": dict(flip=1)})
    for predictor in (rt, seg):  # one error class from both: an app's `except ConfigError` catches either
        error = ConfigError
        for message, options in refused.items():
            with pytest.raises(error, match=message):
                predictor.predict(image, **options)
        one = predictor.predict(image, scales=1.0).labels  # a number, or a 1-D array, is a list of scales
        assert (predictor.predict(image, scales=np.array([1.0])).labels == one).all()
        # Left to its default, the overlap is 64 pixels or half a smaller tile.
        assert predictor.predict(image, tile=64).labels.shape == image.shape[:2]
        # A folder run refuses them before its first file: nothing written, no progress bar.
        from pixelwise.runtime.batch import predict_folder

        with pytest.raises(error, match="applies to tiled prediction only"):
            predict_folder(predictor, images[0].parent, tmp_path / "out", overlap=16)
        assert not (tmp_path / "out").exists()


def test_predictions_and_predictors_describe_themselves_and_the_verbs_are_top_level(pair, onnx_model, tmp_path):
    """Prediction == Prediction raised (numpy's ambiguous truth value); area_summary needed the
    names and took a short list silently; reprs were addresses or 4 KB of array; pw.predict and
    pw.export did not exist."""
    import pixelwise as pw

    seg, rt, images = pair
    for predictor in (seg, rt):
        p = predictor.predict(images[0], probabilities=True)
        assert p != predictor.predict(images[0]) and p == p  # identity, never an array's truth value
        summary = p.area_summary()
        assert [r["name"] for r in summary] == predictor.names and abs(sum(r["fraction"] for r in summary) - 1) < 1e-9
        assert p.class_areas() == p.class_areas(predictor.names)
        with pytest.raises(ConfigError, match="class names given for labels up to"):
            p.area_summary(["a"] if p.labels.max() > 0 else [])
        assert (np.asarray(Image.open(io.BytesIO(p.to_png()))) == p.labels).all()
        text = repr(p)
        assert len(text) < 300 and "labels=uint8[" in text and "probabilities=float32[" in text
        assert str(predictor.num_classes) in repr(predictor) and len(repr(predictor)) < 300
    assert pw.predict(onnx_model, images[0], tmp_path / "verb", progress=False)
    with pytest.raises(pw.PixelwiseError, match="nope"):  # the verb reaches the exporter's own checks
        pw.export(seg.checkpoint, format="nope")
    from pixelwise.export import ExportError, export  # the package stays a package

    assert issubclass(ExportError, pw.PixelwiseError) and callable(export)


def test_both_predictors_take_and_refuse_the_same_arrays(pair, tmp_path):
    """Same predict API: the PyTorch predictor used to cast float/uint16 arrays to uint8 silently
    (a [0, 1] float image became black) and crash in a conv on an empty one; .npy files (memory-
    mapped for huge tiles) were readable by the export's predictor only."""
    from pixelwise.errors import ImageReadError, PixelwiseError

    seg, rt, _ = pair
    np.save(tmp_path / "tile.npy", np.full((40, 50, 3), 90, np.uint8))
    for predictor in (seg, rt):
        for bad, message in [(np.random.rand(16, 16, 3), "Expected uint8 pixels, got float64"),
                             (np.zeros((16, 16, 3), np.uint16), "got uint16"),
                             (np.zeros((0, 0, 3), np.uint8), "no pixels"),
                             (np.zeros((10, 0, 3), np.uint8), "no pixels"),
                             (np.zeros((1, 16, 16, 3), np.uint8), "Expected an HxWx3 RGB image")]:
            with pytest.raises(ImageReadError, match=message):
                predictor.predict(bad)
        assert predictor.predict(tmp_path / "tile.npy").labels.shape == (40, 50)
        with pytest.raises(ImageReadError, match="not found.*Fix: check the path$"):
            predictor.predict(tmp_path / "missing.png")
        # other objects: a PIL image is an image; None, lists, bytes get one line, not a TypeError
        pil = Image.fromarray(np.full((40, 50, 3), 90, np.uint8))
        np.testing.assert_array_equal(predictor.predict(pil).labels, predictor.predict(tmp_path / "tile.npy").labels)
        for bad in (None, [[1, 2]], b"\x89PNG"):
            with pytest.raises(ImageReadError, match=f"Cannot predict a {type(bad).__name__}.*Fix:"):
                predictor.predict(bad)
        # tiling options of the wrong kind: refused, not an all-zero map (batch=-1) or a raw error
        image = np.full((64, 64, 3), 90, np.uint8)
        for options, message in ((dict(tile=64, batch=0), "batch=0 is not a positive"),
                                 (dict(tile=64, batch=-1), "batch=-1 is not a positive"),
                                 (dict(tile="64"), "tile='64' is not a whole number")):
            with pytest.raises(PixelwiseError, match=message):
                predictor.predict(image, **options)
        # overlays take what predict takes, and refuse labels that are not this image's map
        grey = np.full((40, 50), 90, np.uint8)
        labels = predictor.predict(grey).labels
        for image in (grey, np.dstack([grey] * 4), pil, tmp_path / "tile.npy"):
            assert predictor.overlay(image, labels).shape == (40, 50, 3)
        for image, lab, message in ((grey[:20], labels, "labels are 50x40 but the image is 50x20"),
                                    (grey, labels.astype(float), "integer label map")):
            with pytest.raises(PixelwiseError, match=message):
                predictor.overlay(image, lab)


def test_val_of_no_image_is_refused(onnx_model, tiny_run):
    from pixelwise.engine.validate import val
    from pixelwise.errors import ConfigError

    for model in (onnx_model, tiny_run.best):
        with pytest.raises(ConfigError, match="--max-images 0: metrics of no image are undefined"):
            val(model, max_images=0)


def test_cli_refuses_contradictory_options_and_devices_in_one_line(onnx_model, pair, tmp_path):
    image = str(pair[2][0])
    cases = {("--overlap", "10"): "--overlap 10 applies to tiled prediction only",
             ("--device", "cuda"): "no CUDA provider",
             ("--device", "foo"): "Unknown device 'foo'"}
    for args, message in cases.items():
        done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", image, "--model", str(onnx_model),
                               "--out", str(tmp_path / "out"), "--quiet", *args], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert RuntimeSegmenter.load(onnx_model, device="cpu").backend.session.get_providers() == ["CPUExecutionProvider"]
    # --out single.png: a mistaken file name, not a folder to create (a folder of that name is used)
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", image, "--model", str(onnx_model),
                           "--out", str(tmp_path / "single.png"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 2 and "named like an image" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "single.png").exists()
    (tmp_path / "made.png").mkdir()
    assert main(["predict", image, "--model", str(onnx_model), "--out", str(tmp_path / "made.png"), "--quiet"]) == 0
    assert len(list((tmp_path / "made.png").iterdir())) == 3


def test_tiled_memory_is_bounded_by_the_tile(tiny_run, tmp_path):
    """Memory-mapped images of 768 and 1536 rows: numpy's peak does not grow with the image
    (only the tile band is held) and stays far below one whole-image probability map."""
    from pixelwise.export import export
    from pixelwise.models.registry import create_model
    from pixelwise.runtime.tiling import tiled_labels, tiled_labels_lowres

    torch.manual_seed(0)
    names = [f"c{i}" for i in range(6)]
    seg = Segmenter(create_model("fpn", "test_efficientnet", len(names)), names, [], 255, "cpu")
    images = sorted(Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"]).glob("*.jpg"))
    rt = RuntimeSegmenter.load(export(seg, "onnx", tmp_path / "small.onnx", images=images[:1]).path)
    texture = read_image(images[0])
    W, tile, overlap = 1024, 128, 32
    peaks, lowres_peaks = {}, {}
    for H in (768, 1536):
        img = np.lib.format.open_memmap(tmp_path / f"huge{H}.npy", mode="w+", dtype=np.uint8, shape=(H, W, 3))
        for y in range(0, H, 256):  # a real texture, written band by band
            img[y:y + 256] = np.resize(texture, (256, W, 3))
        img.flush()
        del img
        out = np.lib.format.open_memmap(tmp_path / f"labels{H}.npy", mode="w+", dtype=np.uint8, shape=(H, W))
        src = read_image(tmp_path / f"huge{H}.npy")  # memory-mapped, read tile by tile
        tracemalloc.start()
        tiled_labels(src, rt.scores, rt.num_classes, tile, overlap, batch=8, out=out)
        peaks[H] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out[-1].max() < rt.num_classes
        tracemalloc.start()
        tiled_labels_lowres(src, rt._lowres_fn(False), rt.num_classes, 4, 32, tile, overlap, batch=8, out=out)
        lowres_peaks[H] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out[-1].max() < rt.num_classes
    whole_probs = rt.num_classes * 1536 * W * 4
    assert peaks[1536] < 1.15 * peaks[768], peaks  # twice the rows, (almost) the same peak
    # What numpy holds: the band of blended scores (classes x tile x W) and one batch of tile
    # scores (upsampled in numpy from the graph's stride-level logits), both independent of H.
    band_and_batch = 4 * rt.num_classes * tile * (W + 8 * tile)
    assert peaks[1536] < 1.5 * band_and_batch, (peaks, band_and_batch)
    assert peaks[1536] < 0.25 * whole_probs, (peaks, whole_probs)
    # At the logits' stride the band is 16x smaller; the batch of normalised tiles dominates.
    assert lowres_peaks[1536] < 1.15 * lowres_peaks[768], lowres_peaks
    assert lowres_peaks[1536] < 0.5 * peaks[1536], (lowres_peaks, peaks)


def test_batch_folder_with_progress(pair, tmp_path, capsys):
    from pixelwise.runtime.batch import predict_folder

    _, rt, images = pair
    written = predict_folder(rt, images[0].parent, tmp_path / "out", save_overlay=True)
    assert len(written) == 3 * len(images)
    lab = read_image(written[0])
    assert lab.shape[:2] == read_image(images[0]).shape[:2]


def test_an_input_reached_through_a_link_is_never_written_over(tmp_path, monkeypatch):
    """refuse_overwriting_inputs resolves folders once per folder: an input that is itself a link
    (writing its path would replace it, and its target is the user's), and a path that goes
    through a link and then '..' (the real folder is the link target's parent), are still sources."""
    from pixelwise.errors import DatasetError
    from pixelwise.runtime.batch import refuse_overwriting_inputs

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "img.png").write_bytes(b"user data")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_labels.png").symlink_to(tmp_path / "elsewhere" / "img.png")
    with pytest.raises(DatasetError, match="overwrite the input image .*a_labels.png"):
        refuse_overwriting_inputs([tmp_path / "in" / "a.png", tmp_path / "in" / "a_labels.png"],
                                  [tmp_path / "in" / "a_labels.png"])
    with pytest.raises(DatasetError, match="overwrite the input image .*img.png"):  # the target, by another path
        refuse_overwriting_inputs([tmp_path / "in" / "a_labels.png"], [tmp_path / "elsewhere" / "img.png"])
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "lnk").symlink_to(tmp_path / "deep" / "x")
    monkeypatch.chdir(tmp_path)
    for through in (tmp_path / "top" / "lnk" / ".." / "b.png", Path("top/lnk/../b.png")):  # is deep/b.png
        with pytest.raises(DatasetError, match="overwrite the input image"):
            refuse_overwriting_inputs([tmp_path / "deep" / "b.png"], [through])
    refuse_overwriting_inputs([tmp_path / "top" / "b.png"], [Path("top/lnk/../b.png")])  # not the same file


def test_batch_outputs_never_overwrite_each_other(pair, tmp_path):
    """Same stems in two folders (a glob over patients' scans) or in one folder with two
    extensions: each input gets its own outputs, which by stem alone overwrote each other."""
    from pixelwise.errors import DatasetError
    from pixelwise.runtime.batch import output_stems, predict_folder

    _, rt, images = pair
    for d in ("p1", "p2"):
        (tmp_path / "scans" / d).mkdir(parents=True)
    a, b = read_image(images[0]), read_image(images[1])
    Image.fromarray(a).save(tmp_path / "scans" / "p1" / "slice.png")
    Image.fromarray(b).save(tmp_path / "scans" / "p2" / "slice.png")
    Image.fromarray(b).save(tmp_path / "scans" / "p1" / "slice.jpg", quality=95)
    Image.fromarray(a).save(tmp_path / "scans" / "p2" / "other.png")
    written = predict_folder(rt, str(tmp_path / "scans" / "*" / "*"), tmp_path / "out", save_color=False,
                             progress=False)
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in written) == [
        "p1/slice.jpg_labels.png", "p1/slice.png_labels.png", "p2/other_labels.png", "p2/slice_labels.png"]
    assert (read_image(tmp_path / "out" / "p1" / "slice.png_labels.png")[..., 0] == rt.predict(a).labels).all()
    assert (read_image(tmp_path / "out" / "p2" / "slice_labels.png")[..., 0] == rt.predict(b).labels).all()
    with pytest.raises(DatasetError, match="in subfolders") as nested:  # a folder is not searched deeper
        predict_folder(rt, tmp_path / "scans", tmp_path / "nested", progress=False)
    assert "'**'" not in str(nested.value) and "**" in str(nested.value)
    # Outputs into the input folder: a rerun leaves the earlier outputs out and writes them anew;
    # a source that is not one of them is never overwritten (nothing is written either).
    p2 = tmp_path / "scans" / "p2"
    first = predict_folder(rt, p2, p2, save_color=False, progress=False)
    assert sorted(p.name for p in first) == ["other_labels.png", "slice_labels.png"]
    kept = (p2 / "slice_labels.png").read_bytes()
    with pytest.warns(UserWarning, match="Left out 2 file"):
        predict_folder(rt, p2, p2, save_color=False, progress=False)
    assert (p2 / "slice_labels.png").read_bytes() == kept
    assert sorted(p.name for p in p2.iterdir()) == ["other.png", "other_labels.png", "slice.png", "slice_labels.png"]
    Image.fromarray(a).save(p2 / "photo_labels.png")  # named like an output, but of no input: an image
    with pytest.raises(DatasetError, match="overwrite the input image"):  # given as files, no folder scan
        predict_folder(rt, p2, p2, files=[p2 / "photo.png", p2 / "photo_labels.png"], progress=False)
    with pytest.warns(UserWarning, match="Left out 2 file"):
        assert "photo_labels_labels.png" in {p.name for p in predict_folder(rt, p2, p2, save_color=False,
                                                                            progress=False)}
    # One folder: names stay the plain stems.
    assert output_stems([Path("d/x.jpg"), Path("d/y.png")]) == {Path("d/x.jpg"): "x", Path("d/y.png"): "y"}
    with pytest.raises(DatasetError, match="same outputs"):
        output_stems([Path("d/x.jpg"), Path("d/x.jpg")])


def test_batch_folder_skips_unreadable_files_and_says_which(pair, onnx_model, tmp_path):
    import shutil

    from pixelwise.errors import ImageReadError, UnreadableImagesError
    from pixelwise.runtime.batch import predict_folder

    _, rt, images = pair
    src = tmp_path / "src"
    src.mkdir()
    for f in images[:2]:
        shutil.copy(f, src / f.name)
    (src / "a_truncated.jpg").write_bytes(images[0].read_bytes()[:300])
    (src / "b_not_an_image.png").write_text("not an image")
    # .npy inputs (huge tiles) go wrong too: not numpy data, cut short, pickled objects
    (src / "c_garbage.npy").write_text("garbage")
    np.save(src / "d_cut.npy", np.zeros((64, 64, 3), np.uint8))
    (src / "d_cut.npy").write_bytes((src / "d_cut.npy").read_bytes()[:1000])
    np.save(src / "e_objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad_files = ["a_truncated.jpg", "b_not_an_image.png", "c_garbage.npy", "d_cut.npy", "e_objects.npy"]
    out = tmp_path / "out"
    with pytest.raises(UnreadableImagesError) as err:
        predict_folder(rt, src, out, progress=False)
    assert "5 of 7 images could not be read" in str(err.value) and "a_truncated.jpg" in str(err.value)
    assert sorted(p.name for p, _ in err.value.skipped) == bad_files
    # every readable image was still predicted, after the unreadable ones (sorted first)
    assert sorted(p.name for p in err.value.written) == sorted(f"{f.stem}_{k}.png" for f in images[:2]
                                                               for k in ("labels", "color"))
    assert all(p.exists() for p in err.value.written)
    listed = (out / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [str(src / f) for f in bad_files]
    with pytest.raises(ImageReadError) as first:  # strict: stops at the first one
        predict_folder(rt, src, tmp_path / "strict", progress=False, skip_unreadable=False)
    assert not isinstance(first.value, UnreadableImagesError) and "a_truncated.jpg" in str(first.value)
    for bad in bad_files:
        (src / bad).unlink()
    assert len(predict_folder(rt, src, out, progress=False)) == 4
    assert not (out / "skipped.txt").exists()  # the earlier run's list is gone
    r = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(images[0].parent / "*.jpg"),
                        "--model", str(onnx_model), "--out", str(tmp_path / "cli"), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    (src / "c_empty.jpg").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(src), "--model", str(onnx_model),
                        "--out", str(tmp_path / "cli"), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "c_empty.jpg" in r.stderr and "skipped.txt" in r.stderr


def test_batch_inputs_outputs_and_write_errors_are_told_apart(pair, onnx_model, tmp_path):
    """A folder named like an image, an earlier run's outputs in its own input folder, one named
    unreadable file, a file name holding a newline, a folder or file in the way of an output:
    each was a skipped 'image', a photo predicted again, a generic list or a temp file's name."""
    from pixelwise.errors import DatasetError, ImageReadError, UnreadableImagesError
    from pixelwise.runtime.batch import predict_folder

    _, rt, images = pair
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(images[0], src / "a.jpg")
    (src / "dir.png").mkdir()  # a folder, not an image
    assert [p.name for p in predict_folder(rt, src, src, progress=False)] == ["a_labels.png", "a_color.png"]
    with pytest.warns(UserWarning, match=r"Left out 2 file\(s\) in .* named as this run.s outputs"):
        again = predict_folder(rt, src, src, progress=False, save_labels=False, save_overlay=True)
    assert [p.name for p in again] == ["a_color.png", "a_overlay.png"]  # no a_labels_color.png
    (tmp_path / "link").symlink_to(src)  # the same folder through a symlink: the same earlier outputs
    with pytest.warns(UserWarning, match="Left out 3 file"):
        predict_folder(rt, src, tmp_path / "link", progress=False)
    # A photo whose own name ends like an output: its outputs were taken for inputs on the rerun,
    # which then refused to overwrite them.
    shutil.copy(images[0], src / "user_color.png")
    with pytest.warns(UserWarning, match="Left out 3 file"):
        predict_folder(rt, src, src, progress=False)
    with pytest.warns(UserWarning, match="Left out 5 file"):  # a_labels, a_color, a_overlay, user_color_*
        again = predict_folder(rt, src, src, progress=False)
    assert sorted(p.name for p in again) == ["a_color.png", "a_labels.png", "user_color_color.png",
                                             "user_color_labels.png"]
    for f in ("user_color.png", "user_color_labels.png", "user_color_color.png"):
        (src / f).unlink()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError) as one:  # one named file: its own error, no list written
        predict_folder(rt, bad, tmp_path / "one", progress=False)
    assert not isinstance(one.value, UnreadableImagesError) and not (tmp_path / "one" / "skipped.txt").exists()
    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(images[0], odd / "a.jpg")
    (odd / "b\tc\nd.jpg").write_bytes(b"x")
    with pytest.raises(UnreadableImagesError):
        predict_folder(rt, odd, tmp_path / "o2", progress=False)
    lines = (tmp_path / "o2" / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[0] == str(odd / "b\\tc\\nd.jpg")
    floats = tmp_path / "floats"  # every file skipped for one reason: its own fix, not the generic one
    floats.mkdir()
    for name in ("f1.npy", "f2.npy"):
        np.save(floats / name, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UnreadableImagesError, match="Fix: convert the image to 8-bit RGB"):
        predict_folder(rt, floats, tmp_path / "of", progress=False)
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "street.mp4").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"1 video\(s\).*Fix: predict each video on its own"):
        predict_folder(rt, clips, tmp_path / "ov", progress=False)
    (tmp_path / "o3" / "a_labels.png").mkdir(parents=True)  # a folder where an output goes
    (tmp_path / "o4").write_text("a file where the output folder goes")
    cli = [sys.executable, "-m", "pixelwise.cli", "predict", str(src / "a.jpg"), "--model", str(onnx_model), "--quiet"]
    for out, said in (("o3", "a folder has that name"), ("o4", "a file is where a folder is needed")):
        r = subprocess.run([*cli, "--out", str(tmp_path / out)], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and said in r.stderr, r.stderr
        assert ".tmp" not in r.stderr and (out != "o3" or str(tmp_path / "o3" / "a_labels.png") in r.stderr)
    r = subprocess.run([*cli, "--out", str(tmp_path / "o5")], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, WORLD_SIZE="2", LOCAL_RANK="0"))  # torchrun -m pixelwise.cli: every rank did it all
    assert r.returncode == 2 and "pixelwise.inference.distributed" in r.stderr and not (tmp_path / "o5").exists()
    r = subprocess.run([*cli, "--out", str(tmp_path / "o6")], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, WORLD_SIZE="4"))  # a scheduler's variable alone: one process, fine
    assert r.returncode == 0, r.stderr


def test_import_and_predict_without_torch(onnx_model, pair, tmp_path):
    """A fake ``torch`` that raises on import comes first on sys.path: the runtime must not care."""
    _, _, images = pair
    fake = tmp_path / "fake"
    for blocked in ("torch", "onnx"):  # onnx comes with the export extra, not the runtime's
        (fake / blocked).mkdir(parents=True)
        (fake / blocked / "__init__.py").write_text(f"raise ImportError('{blocked} is blocked in this test')\n")
    bare = tmp_path / "bare" / onnx_model.name  # no sidecar: OpenVINO reads the record inside, without onnx
    bare.parent.mkdir()
    shutil.copy(onnx_model, bare)
    code = textwrap.dedent(f"""
        import sys
        from pixelwise.runtime import RuntimeSegmenter
        from pixelwise.runtime.batch import predict_folder
        seg = RuntimeSegmenter.load({str(onnx_model)!r})
        assert RuntimeSegmenter.load({str(bare)!r}, backend="openvino").names == seg.names
        p = seg.predict({str(images[0])!r}, probabilities=True, flip=True, confidence=True)
        t = seg.predict({str(images[0])!r}, tile=64, overlap=16)
        predict_folder(seg, {str(images[0].parent)!r}, {str(tmp_path / 'o')!r}, progress=False)
        seg.overlay(seg.colorize(p.labels), p.labels)
        assert "torch" not in sys.modules or getattr(sys.modules["torch"], "__file__", "").startswith({str(fake)!r})
        print("OK", p.labels.shape, t.labels.shape, sorted(m for m in sys.modules if m.startswith("torch")))
    """)
    env = dict(os.environ, PYTHONPATH=f"{fake}{os.pathsep}{ROOT}")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "OK" in r.stdout and "[]" in r.stdout
    # the CLI too: predict (tiled, with areas and confidence) and val of an export, no torch
    cli = [sys.executable, "-m", "pixelwise.cli"]
    r = subprocess.run([*cli, "predict", str(images[0].parent), "--model", str(onnx_model), "--out",
                        str(tmp_path / "cli"), "--tile", "64", "--areas", "--confidence", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "cli" / "areas.csv").exists() and list((tmp_path / "cli").glob("*_confidence.png"))
    r = subprocess.run([*cli, "val", "--model", str(onnx_model), "--out", str(tmp_path / "val"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mean" in r.stdout and (tmp_path / "val" / "metrics_val.json").exists()
    # a --model that is no checkpoint is named as such, not answered with "needs torch"
    for wrong in (onnx_model.with_name(onnx_model.name + ".json"), tmp_path / "cli"):
        for command in (["predict", str(images[0]), "--out", str(tmp_path / "w")], ["val"]):
            r = subprocess.run([*cli, *command, "--model", str(wrong)], capture_output=True, text=True, env=env,
                               timeout=120)
            assert r.returncode == 2 and "needs torch" not in r.stderr and wrong.name in r.stderr, r.stderr[-2000:]
            assert r.stderr.count("\n") == 1 and ("not a model pixelwise reads" in r.stderr or "is a folder" in r.stderr)
    # and the guard works: importing torch in that environment really fails
    r = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "blocked" in r.stderr


def test_errors_name_the_file_and_the_fix(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(RuntimeModelError, match="not found.*Fix"):
        RuntimeSegmenter.load(tmp_path / "nope.onnx")
    with pytest.raises(RuntimeModelError, match=r"best\.pt is a PyTorch checkpoint.*Fix: export it first"):
        RuntimeSegmenter.load(tmp_path / "best.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(RuntimeModelError, match="junk.onnx.*Fix"):
        RuntimeSegmenter.load(tmp_path / "junk.onnx")
    node = helper.make_node("Identity", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), tmp_path / "foreign.onnx")
    with pytest.raises(RuntimeModelError, match="pixelwise export"):
        RuntimeSegmenter.load(tmp_path / "foreign.onnx")


def test_damaged_or_mismatched_metadata_is_refused_in_one_line(onnx_model, tmp_path):
    """A cut or non-object record inside the model, or one lacking fields, was a JSONDecodeError,
    AttributeError or TypeError traceback; a sidecar naming 5 classes for an 11-class graph was
    used silently, naming and colouring every class wrongly."""
    import json

    import onnx

    good = json.loads(onnx_model.with_name(onnx_model.name + ".json").read_text())
    n = len(good["names"])
    cases = {"cut": json.dumps(good)[:50], "list": "[1, 2]",
             "fields": json.dumps({"format": good["format"], "names": good["names"]}),
             "colors": json.dumps({**good, "colors": good["colors"][:-1]}),
             "nonames": json.dumps({k: v for k, v in good.items() if k != "names"})}
    for name, text in cases.items():
        model = onnx.load(str(onnx_model))
        for prop in model.metadata_props:
            if prop.key == "pixelwise":
                prop.value = text
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, path)
        with pytest.raises(RuntimeModelError, match=rf"{name}\.onnx .*Fix: "):
            RuntimeSegmenter.load(path)
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(onnx_model), "--model",
                           str(tmp_path / "fields.onnx"), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no 'colors'" in done.stderr, done.stderr
    other = tmp_path / "other.onnx"  # no record inside, and a sidecar copied from another export beside it
    model = onnx.load(str(onnx_model))
    kept = [p for p in model.metadata_props if p.key != "pixelwise"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, other)
    fewer = {**good, "names": good["names"][:5], "colors": good["colors"][:5]}
    other.with_name("other.onnx.json").write_text(json.dumps(fewer))
    with pytest.raises(RuntimeModelError, match=rf"names 5 classes but the graph scores {n} per pixel"):
        RuntimeSegmenter.load(other)
    with pytest.raises(RuntimeModelError, match=rf"names 5 classes but the graph scores {n} per pixel"):
        RuntimeSegmenter.load(other, backend="openvino")


def test_another_network_beside_a_copied_record_is_refused_at_load(onnx_model, tmp_path):
    """Someone else's ONNX with a pixelwise .json copied beside it: its input/output names and
    ranks are not the record's, which ONNX Runtime said only at the first image (a traceback in
    predict and val, a 500 from the server); now the load refuses it, in both backends."""
    import torch

    sidecar = onnx_model.with_name(onnx_model.name + ".json").read_text()

    class Conv(torch.nn.Module):
        def __init__(self, inputs: int = 1):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 11, 1)

        def forward(self, *xs):
            return self.conv(xs[0] + (xs[1] if len(xs) > 1 else 0))

    x = torch.zeros(1, 3, 8, 8)
    cases = {"names": ((x,), ["x"], ["y"], "has no output named 'logits' \\(it has: y\\)"),
             "two": ((x, x), ["a", "b"], ["logits"], "takes 2 inputs"),
             "rank": ((torch.zeros(1, 3, 8),), ["x"], ["logits"], "takes a rank-3 input")}
    for name, (args, ins, outs, says) in cases.items():
        path = tmp_path / f"{name}.onnx"
        model = Conv() if name != "rank" else torch.nn.Conv1d(3, 11, 1)
        torch.onnx.export(model, args, str(path), input_names=ins, output_names=outs, dynamo=False)
        path.with_name(path.name + ".json").write_text(sidecar)
        for backend in ("onnxruntime", "openvino"):
            with pytest.raises(RuntimeModelError, match=rf"{name}\.onnx {says}.*not the graph its metadata"):
                RuntimeSegmenter.load(path, backend=backend)
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(onnx_model), "--model",
                           str(tmp_path / "names.onnx"), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not the graph" in done.stderr, done.stderr
    # a graph fixed to one size: refused at the first other size in one line, not ONNX Runtime's traceback
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(Conv(), (torch.zeros(1, 3, 64, 64),), str(fixed), input_names=["input"],
                      output_names=["logits"], dynamo=False)
    fixed.with_name(fixed.name + ".json").write_text(sidecar)
    seg = RuntimeSegmenter.load(fixed)
    with pytest.raises(RuntimeModelError, match=r"fixed\.onnx cannot run on a 1x3x96x128 float32 input.*"
                                                r"Fix: re-export .*reshaped to fixed sizes"):
        seg.predict(np.zeros((96, 128, 3), np.uint8))
    # ONNX Runtime's reason follows a long prefix; a failed allocation is told to tile, not to re-export
    from pixelwise.runtime.backends import _cannot_run

    oom = RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
                       "running Conv node. Name:'/encoder/model/conv_stem/Conv' Status Message: "
                       "/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:359 Failed to allocate "
                       "memory for requested buffer of size 1610612736")
    err = str(_cannot_run(fixed, np.zeros((1, 3, 4096, 4096), np.float32), oom))
    assert "Failed to allocate memory for requested buffer of size 1610612736" in err and "--tile" in err
    other = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. "
                         "Name:'/MemoryBlock/Shape_conv' Status Message: CUDNN_STATUS_BAD_PARAM")
    err = str(_cannot_run(fixed, np.zeros((1, 3, 64, 64), np.float32), other))  # node names do not decide the fix
    assert "CUDNN_STATUS_BAD_PARAM" in err and "--tile" not in err and "fixed sizes" not in err


def test_damaged_openvino_and_onnx_files_are_refused_with_the_fix(tiny_run, onnx_model, tmp_path):
    """A .xml without its .bin, a cut .bin or .xml, a cut .onnx read by OpenVINO: each one is a
    RuntimeModelError naming the file and the fix (the CLI's one line), not OpenVINO's traceback."""
    from pixelwise.export import export

    ir = export(tiny_run.best, "openvino", tmp_path / "ir" / "m.xml", verify_images=1).path
    cases = {}
    for name, cut_xml, cut_bin, bin_too in [("no_bin", False, False, False), ("cut_bin", False, True, True),
                                            ("cut_xml", True, False, True)]:
        folder = tmp_path / name
        folder.mkdir()
        xml = ir.read_bytes()
        (folder / "m.xml").write_bytes(xml[: len(xml) // 2] if cut_xml else xml)
        (folder / "m.xml.json").write_bytes(ir.with_name("m.xml.json").read_bytes())
        if bin_too:
            weights = ir.with_suffix(".bin").read_bytes()
            (folder / "m.bin").write_bytes(weights[:2000] if cut_bin else weights)
        cases[name] = folder / "m.xml"
    with pytest.raises(RuntimeModelError, match=r"no weights file m\.bin.*Fix: copy the \.bin"):
        RuntimeSegmenter.load(cases["no_bin"])
    for name in ("cut_bin", "cut_xml"):
        with pytest.raises(RuntimeModelError, match=rf"{name}/m\.xml cannot be loaded by OpenVINO.*Fix: re-export"):
            RuntimeSegmenter.load(cases[name])
    cut = tmp_path / "cut.onnx"  # no sidecar: the metadata would come from inside it
    cut.write_bytes(onnx_model.read_bytes()[:5000])
    with pytest.raises(RuntimeModelError, match=r"cut\.onnx cannot be loaded by OpenVINO.*Fix: re-export"):
        RuntimeSegmenter.load(cut, backend="openvino")
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(onnx_model.parent), "--model",
                           str(cases["cut_bin"]), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "cut_bin/m.xml" in done.stderr


def test_an_openvino_ir_without_its_sidecar_uses_the_record_inside_it(tiny_run, tmp_path):
    """The IR carries the metadata in its rt_info, like an ONNX file in its metadata_props: a
    user who copies only the .xml and .bin still gets the model's classes, colours and
    normalisation (the runtime refused it: 'no pixelwise metadata and no sidecar')."""
    from pixelwise.export import export

    ir = export(tiny_run.best, "openvino", tmp_path / "ir" / "m.xml", verify_images=1).path
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (ir, ir.with_suffix(".bin")):
        shutil.copy(f, bare / f.name)
    for f in (ir, ir.with_suffix(".bin"), ir.with_name("m.xml.json")):  # upper-case names went to ONNX Runtime
        shutil.copy(f, tmp_path / ("M" + f.name[1:].replace(".xml", ".XML")))  # M.XML, M.bin, M.XML.json
    assert RuntimeSegmenter.load(tmp_path / "M.XML").backend.runtime == "openvino"
    full, alone = RuntimeSegmenter.load(ir), RuntimeSegmenter.load(bare / "m.xml")
    assert alone.names == full.names and alone.meta.colors == full.meta.colors
    assert (alone.meta.mean, alone.meta.std, alone.meta.stride) == (full.meta.mean, full.meta.std, full.meta.stride)
    image = read_image(sorted(Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"]).glob("*.jpg"))[0])
    assert (alone.predict(image).labels == full.predict(image).labels).all()


def test_labels_output_is_the_logits_argmax_and_used_by_predict(onnx_model, tiny_run):
    """Exports carry an in-graph label map; predict() fetches only it when no scores are asked."""
    from pixelwise.runtime.backends import OrtBackend

    be = OrtBackend(onnx_model)
    assert be.output_names == ["logits", "labels"] and be.meta.output_names == ["logits", "labels"]
    seg = RuntimeSegmenter.load(onnx_model)
    assert seg.has_labels_output
    files = sorted(Path(Segmenter.load(tiny_run.best, device="cpu").dataset_record()["val"]["images"]).glob("*.jpg"))
    for f in files:
        image = read_image(f)
        logits, labels = be.run(seg.normalize(image[None]))
        assert labels.dtype == np.uint8 and labels.shape == (1, *image.shape[:2])
        # The logits stay at the network's stride; the labels are those of the logits upsampled
        # as the model does (bilinear, half-pixel), computed without upsampling them.
        assert logits.shape == (1, seg.num_classes, *(np.array(image.shape[:2]) // seg.meta.logits_scale))
        up = torch.nn.functional.interpolate(torch.from_numpy(logits), size=image.shape[:2], mode="bilinear",
                                             align_corners=False).numpy()
        assert (labels == up.argmax(1)).mean() > 0.9999
        np.testing.assert_array_equal(seg.predict(image).labels, labels[0])  # fast path
        scored = seg.predict(image, confidence=True).labels  # scores path: upsampled in numpy
        assert (scored == labels[0]).mean() > 0.9999


def test_exports_written_before_channels_last_logits_still_predict_the_same(onnx_model, tiny_run, tmp_path):
    """ONNX exports now carry stride-level NCHW logits (metadata logits_scale); before that they
    carried full-size NxHxWxC logits (logits_layout: NHWC) and, earlier still, full-size NCHW
    logits (no logits_layout in the metadata). Files of every kind must give the same scores."""
    import json

    import onnx

    from pixelwise.export.exporter import _export_onnx
    from pixelwise.export.graph import LogitsGraph, upsample_factor

    seg = Segmenter.load(tiny_run.best, device="cpu")
    new = RuntimeSegmenter.load(onnx_model)
    assert (new.meta.logits_layout, new.meta.logits_scale) == ("NCHW", upsample_factor(seg.model))
    assert new.meta.logits_scale > 1
    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_model)).metadata_props}["pixelwise"])
    image = read_image(sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0])[:70, :100]
    for layout in ("NHWC", "NCHW"):
        old_path = tmp_path / f"{layout}.onnx"
        _export_onnx(LogitsGraph(seg.model.eval(), labels=True, pad=False, channels_last=layout == "NHWC"),
                     old_path, False, (), 17, True)
        old_meta = {k: v for k, v in meta.items() if k not in ("logits_scale", "logits_layout")}
        if layout == "NHWC":
            old_meta["logits_layout"] = "NHWC"  # what an older pixelwise wrote
        m = onnx.load(str(old_path))
        m.metadata_props.add(key="pixelwise", value=json.dumps(old_meta))
        onnx.save(m, str(old_path))
        old = RuntimeSegmenter.load(old_path)
        assert (old.meta.logits_layout, old.meta.logits_scale) == (layout, 1)
        np.testing.assert_allclose(old.scores(image[None]), new.scores(image[None]), atol=1e-4)
        assert (old.predict(image).labels == new.predict(image).labels).mean() > 0.9999


def test_a_grey_npy_stays_memory_mapped(tmp_path):
    """Huge inputs are memory-mapped .npy files, read tile by tile; a grey one was copied whole
    into memory at three times its size."""
    path = tmp_path / "grey.npy"
    np.save(path, (np.arange(300 * 400) % 251).astype(np.uint8).reshape(300, 400))
    image = read_image(path)
    assert image.shape == (300, 400, 3)
    # a view of the file's mapping (np.repeat's copy is an np.memmap too, but maps nothing)
    assert not image.flags.owndata and any(getattr(b, "_mmap", None) is not None for b in _bases(image))
    np.testing.assert_array_equal(image[..., 2], np.load(path))


def _bases(a):
    while a is not None:
        yield a
        a = getattr(a, "base", None)


def test_label_maps_above_256_classes_are_16_bit_pngs():
    """Both predictors give int32 labels above 256 classes; Pillow cannot write those as PNG."""
    import io as _io

    from pixelwise.runtime.imageio import encode_png

    labels = np.array([[0, 255, 256], [300, 1000, 7]], np.int32)
    back = np.asarray(Image.open(_io.BytesIO(encode_png(labels))))
    np.testing.assert_array_equal(back, labels)
    # an image of such a model whose ids are all below 256 is 16-bit too: one type for every file
    small = np.asarray(Image.open(_io.BytesIO(encode_png(np.array([[0, 3]], np.int32)))))
    assert small.dtype == np.uint16 and small.tolist() == [[0, 3]]
    assert np.asarray(Image.open(_io.BytesIO(encode_png(np.array([[0, 3]], np.uint8))))).dtype == np.uint8


def test_val_of_an_export_refuses_the_labels_the_checkpoint_refuses(onnx_model, tiny_run, tmp_path):
    """The runtime's evaluator checked only label sizes, then scored around unknown values, so
    'val model.onnx' reported a mIoU on data that 'val best.pt' refused."""
    from tests.conftest import write_dataset
    from pixelwise.engine.validate import val
    from pixelwise.errors import LabelError

    data = write_dataset(tmp_path / "bad", n_train=1, n_val=2)
    lab = sorted((tmp_path / "bad" / "val" / "labels").glob("*.png"))[0]
    arr = np.array(Image.open(lab))
    arr[:4, :4] = 42
    Image.fromarray(arr).save(lab)
    for model in (onnx_model, tiny_run.best):
        with pytest.raises(LabelError, match="holds value\\(s\\) 42") as err:
            val(model, data)
        assert lab.name in str(err.value)


def test_refusals_name_the_option_the_glob_and_the_file_kind(tiny_run, pair, tmp_path):
    """A labels-only export said only 'without probabilities' whatever was asked; a glob that
    matched nothing was told to use other extensions; a text file as --model got a pickle error."""
    from pixelwise.errors import DatasetError
    from pixelwise.export import export
    from pixelwise.runtime.batch import expand_sources

    labels_only = RuntimeSegmenter.load(export(tiny_run.best, "onnx", tmp_path / "l.onnx", pipeline=True,
                                               outputs=("labels",), verify_images=1).path)
    image = read_image(pair[2][0])
    for name, options in {"flip": dict(flip=True), "tile": dict(tile=64), "confidence": dict(confidence=True),
                          "scales": dict(scales=(1.0, 1.5))}.items():
        with pytest.raises(RuntimeModelError, match=f"labels-only pipeline export: {name} need"):
            labels_only.predict(image, **options)
    assert labels_only.predict(image).labels.shape == image.shape[:2]
    from pixelwise.runtime.batch import predict_folder

    with pytest.raises(RuntimeModelError, match="confidence need"):  # --save confidence: before any work
        predict_folder(labels_only, pair[2][0].parent, tmp_path / "conf", save_confidence=True)
    assert not (tmp_path / "conf").exists()
    with pytest.raises(DatasetError, match="matches no file"):
        expand_sources(str(tmp_path / "nowhere" / "*.jpg"))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(pair[2][0]), "--model", str(notes),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "is not a model pixelwise reads" in done.stderr and "Unpickling" not in done.stderr
