"""torchrun with 2 CPU processes (gloo) writes the same outputs as one process, and reports unreadable files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pixelwise.errors import UnreadableImagesError

ROOT = Path(__file__).resolve().parents[2]


def test_two_ranks_match_one_process(tiny_run, tmp_path):
    from pixelwise.inference.distributed import run, shard
    from pixelwise.inference.predictor import Segmenter

    val = Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"])
    src = tmp_path / "src" / "cam1"
    shutil.copytree(val, src)
    (src / "zz_corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # on rank 1's shard of two
    # A second folder with a file of the same name: its outputs go to their own folder (by stem
    # alone one would overwrite the other), named the same on every rank.
    first = sorted(val.glob("*.jpg"))[0]
    (tmp_path / "src" / "cam2").mkdir()
    shutil.copy(first, tmp_path / "src" / "cam2" / first.name)
    pattern = str(tmp_path / "src" / "*" / "*.jpg")
    assert shard(list(range(5)), 1, 2) == [1, 3]
    with pytest.raises(UnreadableImagesError) as err:
        run(str(tiny_run.best), pattern, str(tmp_path / "one"), tile=64, overlap=16,  # tiled, as huge images are
            save=("labels", "overlay"))
    single = err.value.written
    assert [p.name for p, _ in err.value.skipped] == ["zz_corrupt.jpg"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "pixelwise.inference.distributed", str(tiny_run.best),
                        pattern, "--out", str(tmp_path / "two"), "--tile", "64", "--overlap", "16", "--quiet",
                        "--save", "labels,overlay"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert r.returncode != 0 and "1 of" in r.stderr and "zz_corrupt.jpg" in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("pixelwise: error: [rank 0 of 2]") == 1, r.stderr[-3000:]  # rank 0's one line (torchrun adds its own)
    (tmp_path / "in_the_way").write_text("a file where the output folder goes")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "pixelwise.inference.distributed", str(tiny_run.best), str(first),
                        "--out", str(tmp_path / "in_the_way"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    # torchrun prints its own ChildFailedError traceback; none comes from pixelwise's code
    assert r.returncode != 0 and str(ROOT / "pixelwise") not in r.stderr and "FileExistsError" not in r.stderr, r.stderr
    # each rank says it in one line; torchrun may stop the slower rank once the other has failed,
    # before it gets there (while importing torch: then silently), so one such line is enough
    assert "a file is where a folder is needed" in r.stderr and " of 2] " in r.stderr, r.stderr[-3000:]
    # One rank fails (a folder where its output goes) while the other waits in the gather: that one
    # printed the backend's 25-line traceback ("Connection closed by peer"); now one line.
    blocked = tmp_path / "blocked"
    clean = tmp_path / "clean"
    clean.mkdir()
    for f in sorted(src.glob("*.jpg"))[:2]:
        if "corrupt" not in f.name:
            shutil.copy(f, clean / f.name)
    second = sorted(clean.glob("*.jpg"))[1]  # rank 1's only image
    (blocked / f"{second.stem}_labels.png").mkdir(parents=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "pixelwise.inference.distributed", str(tiny_run.best), str(clean),
                        "--out", str(blocked), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert r.returncode != 0 and "[rank 1 of 2]" in r.stderr, r.stderr[-3000:]
    assert str(ROOT / "pixelwise") not in r.stderr, r.stderr[-3000:]  # no traceback through pixelwise's code
    # rank 0 met the closed gather (one line), or torchrun stopped it first: while predicting (one
    # line), or in the gather or before it (silently; torchrun's report names the SIGTERM). Never
    # the backend's traceback.
    assert ("[rank 0 of 2] Another process of this run stopped" in r.stderr or "stopped by SIGTERM" in r.stderr
            or "exitcode  : -15" in r.stderr), r.stderr[-3000:]
    assert r.stderr.count("Traceback (most recent call last)") <= 1, r.stderr[-3000:]  # torchrun's own report only
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["images"] == len(list(src.glob("*.jpg"))) + 1
    assert [Path(s["path"]).name for s in manifest["skipped"]] == ["zz_corrupt.jpg"]
    assert (tmp_path / "two" / "skipped.txt").read_text().startswith(str(src / "zz_corrupt.jpg"))
    names = sorted(str(Path(p).relative_to(tmp_path / "one")) for p in single)
    assert sorted(str(Path(p).relative_to(tmp_path / "two")) for p in manifest["outputs"]) == names
    assert f"cam2/{first.stem}_labels.png" in names and f"cam1/{first.stem}_labels.png" in names
    assert f"cam1/{first.stem}_overlay.png" in names and not any(n.endswith("_color.png") for n in names)  # --save
    for n in names:
        assert (tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes(), n
