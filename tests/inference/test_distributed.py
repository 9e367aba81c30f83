"""torchrun with 2 CPU processes (gloo) writes the same outputs as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_ranks_match_one_process(tiny_run, tmp_path):
    from pixelwise.inference.distributed import run, shard
    from pixelwise.inference.predictor import Segmenter

    src = Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"])
    assert shard(list(range(5)), 1, 2) == [1, 3]
    single = run(str(tiny_run.best), str(src), str(tmp_path / "one"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "pixelwise.inference.distributed", str(tiny_run.best),
                        str(src), "--out", str(tmp_path / "two"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["images"] == len(list(src.glob("*.jpg")))
    names = sorted(Path(p).name for p in single)
    assert sorted(Path(p).name for p in manifest["outputs"]) == names
    for n in names:
        assert (tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes(), n
