import subprocess
import sys
from pathlib import Path

import yaml


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
