"""Small real inputs for the format tests: CamVid crops (or drawn shapes without ../shared)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import CAMVID, have_camvid

SAMPLES = (Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "samples").resolve()


def camvid_pairs(n: int = 3, size: tuple[int, int] = (32, 48), split: str = "train"
                 ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, HxWx3 uint8 image, HxW uint8 label with values 0..11) from real CamVid files."""
    h, w = size
    out = []
    if have_camvid():
        stems = sorted(p.stem for p in (CAMVID / split / "images").glob("*.jpg"))[:n]
        for s in stems:
            img = np.asarray(Image.open(CAMVID / split / "images" / f"{s}.jpg").resize((w, h), Image.BILINEAR))
            lab = np.asarray(Image.open(CAMVID / split / "labels" / f"{s}.png").resize((w, h), Image.NEAREST))
            out.append((s, img.copy(), lab.copy()))
    else:
        rng = np.random.default_rng(0)
        for i in range(n):
            lab = np.zeros((h, w), np.uint8)
            for c in range(1, 12):
                y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
                lab[y:y + rng.integers(3, 12), x:x + rng.integers(3, 16)] = c
            img = np.stack([lab * 20, lab * 7, 255 - lab * 13], -1).astype(np.uint8)
            out.append((f"s{i}", img, lab))
    return out


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's content under root: to prove a source was not modified."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
