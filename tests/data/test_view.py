"""data view writes a real PNG grid whose pixels carry the class colours of the overlay."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.view import view_dataset
from tests.conftest import write_dataset


def test_view_grid_png(tmp_path):
    y = write_dataset(tmp_path / "d", n_train=3, n_val=1, size=(32, 48))
    out = view_dataset(y, tmp_path / "v.png", count=4, seed=0)
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[0] > 100 and im.shape[1] > 300
    assert len(np.unique(im.reshape(-1, 3), axis=0)) > 50  # images, not a blank canvas
    assert main(["data", "view", str(y), "--out", str(tmp_path / "w.png"), "--split", "val"]) == 0
    assert Image.open(tmp_path / "w.png").size[0] > 100
