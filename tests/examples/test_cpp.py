"""The C++ example runs a --pipeline export through OpenVINO's C++ API with no pre/post-processing
code of its own: it is compiled for real against the headers and libraries of the `openvino`
wheel, run on real images, and its label maps are compared with pixelwise's Python runtime."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.export import export
from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.imageio import read_image
from tests.examples.helpers import val_images, without_record

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cpp"
CMAKE, CXX = shutil.which("cmake"), shutil.which("g++") or shutil.which("c++")
ov = pytest.importorskip("openvino")
pytestmark = pytest.mark.skipif(not (CMAKE and CXX), reason="cmake and a C++ compiler are not installed")


@pytest.fixture(scope="module")
def segment_exe(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("cpp_build")
    ov_cmake = Path(ov.__file__).parent / "cmake"
    for cmd in ([CMAKE, "-S", str(EXAMPLE), "-B", str(build), f"-DOpenVINO_DIR={ov_cmake}"],
                [CMAKE, "--build", str(build)]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return build / "segment"


def run_example(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args, "--threads", "2"], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_label_maps_match_the_python_runtime(segment_exe, tiny_run, tmp_path, fmt):
    model = export(tiny_run.best, fmt, tmp_path / ("pipe.xml" if fmt == "openvino" else "pipe.onnx"),
                   pipeline=True, outputs=("labels",), verify_images=1).path
    runtime = RuntimeSegmenter.load(model, threads=2)
    for i, f in enumerate(val_images(tiny_run)[:2]):
        rgb = read_image(f)[i * 3:, i * 5:]  # the second one has an odd size
        ppm = tmp_path / f"{f.stem}.ppm"
        Image.fromarray(rgb).save(ppm)  # Pillow writes binary P6
        out = tmp_path / f"{f.stem}_labels.pgm"
        done = run_example(segment_exe, str(model), str(ppm), str(out))
        assert done.returncode == 0, done.stderr
        labels = np.asarray(Image.open(out))
        ref = runtime.predict(rgb).labels
        assert labels.shape == ref.shape and (labels == ref).mean() >= 0.999
        assert np.unique(ref).size > 1  # a model that predicts one class would prove nothing
        report = json.loads(done.stdout)
        assert [c["name"] for c in report["classes"]] == runtime.names
        assert [c["pixels"] for c in report["classes"]] == np.bincount(labels.ravel(),
                                                                      minlength=len(runtime.names)).tolist()
    grey = read_image(val_images(tiny_run)[0]).mean(-1).astype(np.uint8)  # a grey scan, as binary PGM (P5)
    Image.fromarray(grey).save(tmp_path / "scan.pgm")
    done = run_example(segment_exe, str(model), str(tmp_path / "scan.pgm"), str(tmp_path / "scan_labels.pgm"))
    assert done.returncode == 0, done.stderr
    ref = runtime.predict(tmp_path / "scan.pgm").labels
    assert (np.asarray(Image.open(tmp_path / "scan_labels.pgm")) == ref).mean() >= 0.999
    assert not list(tmp_path.glob("*.partial"))


def test_bad_inputs_fail_in_one_line(segment_exe, onnx_model, tiny_run, tmp_path):
    pipe = export(tiny_run.best, "onnx", tmp_path / "pipe.onnx", pipeline=True, outputs=("labels",),
                  check=False).path
    good = tmp_path / "good.ppm"
    Image.fromarray(read_image(val_images(tiny_run)[0])).save(good)
    truncated = tmp_path / "truncated.ppm"
    truncated.write_bytes(good.read_bytes()[:200])
    bare = without_record(pipe, tmp_path / "bare.onnx")  # no sidecar, and no record inside either
    cases = [((str(onnx_model), str(good)), "--pipeline"), ((str(pipe), str(truncated)), "truncated PPM"),
             ((str(pipe), str(val_images(tiny_run)[0])), "not an 8-bit binary PPM (P6) or PGM (P5)"),
             ((str(pipe), str(tmp_path / "missing.ppm")), "missing.ppm: cannot open"),
             ((str(bare), str(good)), "bare.onnx.json: metadata not found, and")]
    for (model, image), message in cases:
        done = run_example(segment_exe, model, image, str(tmp_path / "out.pgm"))
        assert done.returncode == 2 and message in done.stderr, (message, done.stderr)
        assert done.stderr.count("\n") == 1 and not (tmp_path / "out.pgm").exists()
    for threads in ("abc", "0", "-2"):
        done = subprocess.run([str(segment_exe), str(pipe), str(good), str(tmp_path / "out.pgm"), "--threads", threads],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and f"--threads {threads}: pass a whole number" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and not (tmp_path / "out.pgm").exists()


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_a_model_without_its_sidecar_uses_the_record_inside_it(segment_exe, tiny_run, tmp_path, fmt):
    """Only the model file(s) copied, no .json: the class names come from the record pixelwise
    writes inside the model (the IR's rt_info, the ONNX metadata_props)."""
    model = export(tiny_run.best, fmt, tmp_path / "full" / ("pipe.xml" if fmt == "openvino" else "pipe.onnx"),
                   pipeline=True, outputs=("labels",), verify_images=1).path
    (tmp_path / "bare").mkdir()
    for f in (model, model.with_suffix(".bin")):
        if f.exists():
            shutil.copy(f, tmp_path / "bare" / f.name)
    ppm = tmp_path / "street.ppm"
    Image.fromarray(read_image(val_images(tiny_run)[0])).save(ppm)
    reports = []
    for folder in ("full", "bare"):
        done = run_example(segment_exe, str(tmp_path / folder / model.name), str(ppm), str(tmp_path / f"{folder}.pgm"))
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert [c["name"] for c in reports[1]["classes"]] == RuntimeSegmenter.load(model).names
    assert reports[0]["classes"] == reports[1]["classes"]
    assert (tmp_path / "full.pgm").read_bytes() == (tmp_path / "bare.pgm").read_bytes()
