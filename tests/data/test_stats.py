"""data stats against counts computed directly from the label files."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.stats import dataset_stats, save_chart
from pixelwise.engine.losses import class_weights_from_counts
from tests.conftest import CAMVID, needs_camvid, write_dataset


def test_stats_match_label_files(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=4, n_val=2, size=(32, 48))
    st = dataset_stats(y, workers=0)
    labs = sorted((y.parent / "train" / "labels").glob("*.png"))
    counts = sum(np.bincount(np.asarray(Image.open(p)).ravel(), minlength=12) for p in labs)
    presence = sum(np.bincount(np.asarray(Image.open(p)).ravel(), minlength=12) > 0 for p in labs)
    tr = st.splits["train"]
    assert tr.images == 4 and dict(tr.sizes) == {(32, 48): 4}
    assert tr.pixels.tolist() == counts[:11].tolist()
    assert tr.presence.tolist() == presence[:11].tolist()
    assert tr.ignored == counts[11]
    px = np.concatenate([np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3) / 255.0
                         for p in sorted((y.parent / "train" / "images").glob("*.jpg"))])
    assert np.allclose(tr.mean, px.mean(0)) and np.allclose(tr.std, px.std(0))
    assert np.allclose(st.class_weights, class_weights_from_counts(counts[:11]))
    chart = save_chart(st, tmp_path / "chart.png")
    assert Image.open(chart).size[0] > 100


def test_stats_cli_json_and_chart(tmp_path, capsys):
    y = write_dataset(tmp_path / "d", n_train=2, n_val=1, size=(32, 48))
    assert main(["data", "stats", str(y), "--json", "--chart", str(tmp_path / "c.png"),
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[: out.rindex("}") + 1])
    assert set(data["splits"]) == {"train", "val"} and len(data["class_weights"]) == 11
    assert (tmp_path / "c.png").exists()


@needs_camvid
def test_stats_on_full_camvid_match_published_counts():
    """SOURCE.md lists the pixel count of each class over all 701 CamVid labels."""
    text = (CAMVID / "SOURCE.md").read_text()
    line = text.split("classes 0..11:")[1].strip().splitlines()[0]
    expected = [int(v) for v in line.split()]
    st = dataset_stats(CAMVID / "dataset.yaml", workers=2)
    total = sum(s.pixels for s in st.splits.values())
    ignored = sum(s.ignored for s in st.splits.values())
    assert total.tolist() + [ignored] == expected
    assert sum(s.images for s in st.splits.values()) == 701
