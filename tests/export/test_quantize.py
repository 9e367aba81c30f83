"""int8 export: a real quantized graph, calibrated on real training images, checked and usable."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from pixelwise.export import ExportError, export
from pixelwise.export.exporter import _calibration_feeds
from pixelwise.export.quantize import float_nodes, quantize_int8
from pixelwise.export.sources import calibration_images
from pixelwise.inference.predictor import Segmenter
from pixelwise.models.registry import create_model
from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.imageio import read_image


def _ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in onnx.load(str(path)).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


@pytest.fixture(scope="module")
def int8_onnx(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "m_int8.onnx"
    return export(tiny_run.best, "onnx", out, int8=True, min_agreement=0.9)


def test_int8_export_is_quantized_calibrated_on_train_and_verified(int8_onnx, tiny_run):
    res = int8_onnx
    ops = _ops(res.path)
    assert ops.get("QuantizeLinear", 0) >= 10 and ops.get("DequantizeLinear", 0) >= 10
    meta = json.loads(res.sidecar.read_text())
    seg = Segmenter.load(tiny_run.best, device="cpu")
    n_train = len(list(Path(seg.dataset_record()["train"]["images"]).glob("*.jpg")))
    assert meta["precision"] == "int8" and not meta["fp16"]
    assert meta["quantization"]["calibration_images"] == n_train  # the train split, not val
    assert meta["verification"]["agreement"] == res.report.agreement >= 0.9
    # The temporary float graph is gone; only the int8 file and its sidecar remain.
    assert sorted(p.name for p in res.path.parent.iterdir()) == ["m_int8.onnx", "m_int8.onnx.json"]


def test_int8_quantizes_stem_keeps_classifier_and_upsampling_in_float(int8_onnx):
    graph = onnx.load(str(int8_onnx.path)).graph
    dq_inputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    for name, n in convs.items():
        if "classifier" in name:
            assert n.input[1] not in dq_inputs, name  # float weights: stays a float Conv
    stem = next(n for name, n in convs.items() if "conv_stem" in name)
    assert stem.input[0] in dq_inputs and stem.input[1] in dq_inputs  # int8 in, int8 weights
    for n in graph.node:
        if n.op_type == "Resize" and "decoder" not in n.name:
            assert not dq_inputs & set(n.input), n.name
    assert float_nodes(["/a/encoder/conv_stem/Conv", "/a/encoder/b/Conv", "/a/decoder/classifier/Conv",
                        "/Resize", "/Slice"]) == ["/Resize", "/Slice", "/a/decoder/classifier/Conv"]


def _stem_weight(path: Path) -> np.ndarray:
    """The int8 stem's weights (the initializer behind the DequantizeLinear it reads)."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    stem = next(n for n in graph.node if n.op_type == "Conv" and "conv_stem" in n.name)
    dq = next(n for n in graph.node if n.op_type == "DequantizeLinear" and stem.input[1] in n.output)
    return onnx.numpy_helper.to_array(inits[dq.input[0]])


@pytest.mark.parametrize("pipeline", [False, True])
def test_int8_onnx_stem_reads_four_channels_with_unchanged_outputs(tiny_run, tmp_path, pipeline):
    """The widened stem (ONNX Runtime's fast int8 path) must not change a single output: a copy
    of channel 0 when the stem reads the graph's input, a zero channel from the stride Pad of a
    --pipeline graph."""
    import onnxruntime as ort

    fp32 = export(tiny_run.best, "onnx", tmp_path / "f.onnx", check=False, pipeline=pipeline,
                  outputs=("labels", "probabilities"))
    graph = onnx.load(str(fp32.path)).graph
    added = {n.op_type for n in graph.node if n.name.startswith("stem_input_channels")}
    assert not added  # the float export is left alone
    seg = Segmenter.load(tiny_run.best, device="cpu")
    ims, _, _ = calibration_images(None, seg.dataset_record(), 4)
    feeds = _calibration_feeds(ims, fp32.metadata)
    name = "image" if pipeline else "input"
    outs = []
    for widen in (True, False):
        path = tmp_path / f"q{int(widen)}.onnx"
        assert quantize_int8(fp32.path, path, feeds, name, widen_stem=widen)["stem_input_channels"] == 3 + widen
        w = _stem_weight(path)
        assert w.shape[1] == 3 + widen and not w[:, 3:].any()
        added = {n.op_type for n in onnx.load(str(path)).graph.node if n.name.startswith("stem_input_channels")}
        expected = ({"Add"} if pipeline else {"Slice", "Concat"}) if widen else set()
        assert added - {"QuantizeLinear", "DequantizeLinear"} == expected
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs.append([sess.run(None, {name: f}) for f in feeds])
    for wide, narrow in zip(*outs):
        for a, b in zip(wide, narrow):
            if a.dtype == np.uint8:
                np.testing.assert_array_equal(a, b)  # labels
            else:
                np.testing.assert_allclose(a, b, atol=1e-5)  # logits / probabilities


def test_int8_onnx_export_widens_the_stem(int8_onnx):
    assert _stem_weight(int8_onnx.path).shape[1] == 4
    assert int8_onnx.metadata.quantization["stem_input_channels"] == 4


def test_int8_runtime_predictions_and_val_close_to_fp32(int8_onnx, onnx_model, tiny_run):
    from pixelwise.runtime import evaluate_onnx

    q, f = RuntimeSegmenter.load(int8_onnx.path), RuntimeSegmenter.load(onnx_model)
    seg = Segmenter.load(tiny_run.best, device="cpu")
    same = []
    for path in sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg")):
        image = read_image(path)
        a, b = q.predict(image, probabilities=True), f.predict(image)
        assert a.labels.shape == b.labels.shape == image.shape[:2]
        same.append((a.labels == b.labels).mean())
        np.testing.assert_allclose(a.probabilities.sum(0), 1.0, atol=1e-4)
    # A 2-epoch model has flat logits, so int8 flips more labels than a trained one (99% on CamVid).
    assert np.mean(same) > 0.85
    got, ref = evaluate_onnx(int8_onnx.path, split="val"), evaluate_onnx(onnx_model, split="val")
    assert abs(got.miou - ref.miou) < 0.05  # quantization costs little accuracy


def test_int8_openvino_and_pipeline(tiny_run, tmp_path):
    seg = Segmenter.load(tiny_run.best, device="cpu")
    val_images = sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))
    ov = export(tiny_run.best, "openvino", tmp_path / "ov" / "m.xml", int8=True, min_agreement=0.9)
    assert ov.path.suffix == ".xml" and ov.path.with_suffix(".bin").exists()
    assert not list((tmp_path / "ov").glob("*.onnx"))  # intermediate graphs removed
    assert json.loads(ov.sidecar.read_text())["precision"] == "int8"
    assert ov.metadata.quantization["stem_input_channels"] == 3  # OpenVINO's int8 stem is fast as it is
    pipe = export(tiny_run.best, "onnx", tmp_path / "p.onnx", int8=True, pipeline=True,
                  outputs=("labels", "probabilities"), min_agreement=0.9)
    assert _ops(pipe.path).get("QuantizeLinear", 0) >= 10
    assert pipe.metadata.quantization["stem_input_channels"] == 4  # from the stride Pad
    a, b = RuntimeSegmenter.load(ov.path), RuntimeSegmenter.load(pipe.path)
    image = read_image(val_images[0])
    assert (a.predict(image).labels == b.predict(image).labels).mean() > 0.9


def test_int8_bad_combinations_and_missing_calibration(tmp_path):
    torch.manual_seed(0)
    seg = Segmenter(create_model("fpn", "test_efficientnet", 3), ["a", "b", "c"], [], 255, "cpu")
    with pytest.raises(ExportError, match="exclude each other"):
        export(seg, "onnx", tmp_path / "m.onnx", int8=True, fp16=True, check=False)
    with pytest.raises(ExportError, match="not torchscript"):
        export(seg, "torchscript", tmp_path / "m.ts", int8=True, check=False)
    with pytest.raises(ExportError, match="--calib"):  # no dataset on record, no --calib
        export(seg, "onnx", tmp_path / "m.onnx", int8=True, check=False)
    with pytest.raises(ExportError, match="--calib .*missing: no image there"):
        export(seg, "onnx", tmp_path / "m.onnx", int8=True, calib=tmp_path / "missing", check=False)
    assert not (tmp_path / "m.onnx").exists()


def test_calibration_images_spread_and_cropped(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        size = (1300, 1100) if i == 0 else (40, 60)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    ims, files, _ = calibration_images(folder, None, limit=4, max_side=1024)
    assert [f.name for f in files] == ["00.png", "03.png", "06.png", "09.png"]  # spread, not the first 4
    assert ims[0].shape == (1024, 1024, 3) and ims[1].shape == (40, 60, 3)
    big = np.asarray(Image.open(folder / "00.png"))
    np.testing.assert_array_equal(ims[0], big[138:1162, 38:1062])  # centre crop at full scale


def test_int8_export_leaves_nothing_in_the_working_directory(tiny_run, tmp_path, monkeypatch):
    """ONNX Runtime's tools can drop temporary models (and 12 MB external-data files) in the
    current directory: exporting from a project folder must not litter it."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    res = export(tiny_run.best, "onnx", tmp_path / "out" / "p.onnx", int8=True, pipeline=True,
                 imgsz=(64, 96), outputs=("labels",), min_agreement=0.5)
    assert res.path.exists()
    assert list(work.iterdir()) == []


def _broken_files(folder: Path, names=("03_cut.png", "06_empty.jpg", "09_notes.png")) -> list[str]:
    """The unreadable files users' folders hold: a cut download, an empty file, a text file."""
    good = io.BytesIO()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(good, format="PNG")
    cut, empty, text = (folder / n for n in names)
    cut.write_bytes(good.getvalue()[:60])
    empty.write_bytes(b"")
    text.write_text("not an image")
    return list(names)


def test_calibration_skips_unreadable_files_and_takes_the_next(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in (0, 1, 2, 4, 5, 7, 8):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    broken = _broken_files(folder)  # exactly the spread picks 3, 6 and 9 of 0, 3, 6, 9
    ims, files, skipped = calibration_images(folder, None, limit=4)
    # a broken pick's next file stands in; the last one has none after it, so the first unused does
    assert [f.name for f in files] == ["00.png", "04.png", "07.png", "01.png"]
    assert [im.shape for im in ims] == [(40, 60, 3)] * 4
    assert [f.name for f, _ in skipped] == broken
    assert skipped[1][1].endswith("06_empty.jpg: the file is empty.")
    assert skipped[2][1].endswith("09_notes.png: its 12 bytes are in no image format Pillow reads.")
    assert "truncated" in skipped[0][1] and all("Fix:" not in why for _, why in skipped)
    ims, files, skipped = calibration_images(folder, None, limit=20)  # fewer files than asked
    assert len(ims) == 7 and len(skipped) == 3


def test_int8_export_goes_on_past_broken_calibration_files(tiny_run, tmp_path, capsys):
    from pixelwise.cli import main

    seg = Segmenter.load(tiny_run.best, device="cpu")
    train = sorted(Path(seg.dataset_record()["train"]["images"]).glob("*.jpg"))
    folder = tmp_path / "calib"
    folder.mkdir()
    for f in train:
        (folder / f.name).write_bytes(f.read_bytes())
    broken = _broken_files(folder)
    out = tmp_path / "q.onnx"
    assert main(["export", str(tiny_run.best), "--out", str(out), "--int8", "--calib", str(folder),
                 "--calib-images", str(len(train) + 3), "--min-agreement", "50"]) == 0
    printed = capsys.readouterr().err
    for name in broken:  # each named once, on its own line, with the reason
        assert sum(name in line and line.startswith("pixelwise: warning: skipped unreadable image: Cannot decode")
                   for line in printed.splitlines()) == 1, printed
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["quantization"]["calibration_images"] == len(train)  # every readable file, no more

    with pytest.warns(UserWarning, match="skipped unreadable image: Cannot decode image .*03_cut.png"):
        res = export(tiny_run.best, "onnx", tmp_path / "q2.onnx", int8=True, calib=folder, min_agreement=0.5)
    assert {f.name for f, _ in res.skipped} == set(broken)


def test_export_with_only_unreadable_images_names_the_first_and_why(tiny_run, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    _broken_files(folder)
    with pytest.raises(ExportError, match=r"No readable image to calibrate .*3 file\(s\).*03_cut.png.*--calib"):
        export(tiny_run.best, "onnx", tmp_path / "m.onnx", int8=True, calib=folder, check=False)
    with pytest.raises(ExportError, match=r"No readable image to verify .*03_cut.png.*--images"):
        export(tiny_run.best, "onnx", tmp_path / "m.onnx", images=folder)
    assert not (tmp_path / "m.onnx").exists()
