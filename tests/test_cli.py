import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixelwise.cli", *args], capture_output=True, text=True)


def test_help_and_version():
    assert run("--version").stdout.strip()
    out = run("--help").stdout
    for verb in ("train", "val", "predict", "models"):
        assert verb in out


def test_user_errors_are_one_line_without_traceback(tmp_path: Path):
    cases = [
        run("train", str(tmp_path / "missing.yaml")),
        run("val", "--model", str(tmp_path / "none.pt"), "--data", str(tmp_path / "x.yaml")),
    ]
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "train", "names": ["a", "b"]}))
    cases.append(run("train", str(tmp_path / "d.yaml"), "--max-iters", "1"))
    for proc in cases:
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pixelwise: error:"), proc.stderr
    assert "missing.yaml" in cases[0].stderr
    assert "none.pt" in cases[1].stderr
    assert "train/images" in cases[2].stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc (a folder no one can write)")
def test_an_unwritable_output_folder_is_one_line(onnx_model, tmp_path: Path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(image)
    proc = run("predict", str(image), "--model", str(onnx_model), "--out", "/proc/pixelwise-nope/out", "--quiet")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "/proc/pixelwise-nope" in lines[0] and "Fix:" in lines[0]


def test_corrupt_image_met_in_a_loader_worker_is_one_line(tmp_path: Path):
    """The error travels from a DataLoader worker process and still prints as one clean line."""
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "d", n_train=4, n_val=1)
    bad = sorted((tmp_path / "d" / "train" / "images").iterdir())[1]
    bad.write_bytes(bad.read_bytes()[:200])
    proc = run("train", str(data), "--workers", "1", "--batch", "2", "--crop", "64,96", "--max-iters", "4",
               "--pretrained", "none", "--project", str(tmp_path / "runs"), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("pixelwise: warning:")]
    assert len(lines) == 1, proc.stderr  # (a tiny dataset's absent classes are warned about, one line each)
    assert bad.name in lines[0] and "Traceback" not in lines[0] and "Fix:" in lines[0]


def test_predict_writes_the_files_asked_for(onnx_model, tmp_path: Path):
    """--save chooses the files per image (a large folder often wants the label maps alone)."""
    from pixelwise.runtime.imageio import read_image

    image = tmp_path / "street.png"
    Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)).save(image)
    for save, extra, written in ((["--save", "labels"], [], ["street_labels.png"]),
                                 (["--save", "overlay,labels"], ["--confidence"],
                                  ["street_confidence.png", "street_labels.png", "street_overlay.png"]),
                                 ([], [], ["street_color.png", "street_labels.png", "street_overlay.png"])):
        out = tmp_path / f"out{len(save)}{len(extra)}"
        proc = run("predict", str(image), "--model", str(onnx_model), "--out", str(out), "--quiet", *save, *extra)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in out.iterdir()) == written
    assert read_image(tmp_path / "out20" / "street_labels.png").shape == (64, 96, 3)
    proc = run("predict", str(image), "--model", str(onnx_model), "--save", "labels,sepia")
    assert proc.returncode == 2 and "unknown output sepia; choose from labels, color, overlay, confidence" in proc.stderr
