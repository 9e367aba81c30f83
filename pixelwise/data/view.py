"""``pixelwise data view``: a grid of label overlays with a legend, to eyeball a dataset (or a
conversion) before training on it. Works on any readable format."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelwise.data.formats import open_source
from pixelwise.data.formats.base import Reader
from pixelwise.data.io import read_image
from pixelwise.data.samples import check_size
from pixelwise.errors import DatasetError
from pixelwise.inference.visualize import overlay


def view_dataset(source: str | Path | Reader, out: str | Path, split: str | None = None,
                 count: int = 8, seed: int = 0, format: str | None = None, cols: int = 4) -> Path:
    """Write a PNG grid of ``count`` random (seeded) overlays of ``split`` with a class legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    reader = source if isinstance(source, Reader) else open_source(source, format)
    items = [it for it in reader.items() if split is None or it.split == split]
    if not items:
        raise DatasetError(f"No images{' in split ' + split if split else ''} in {reader.root}.",
                           path=reader.root, fix="check --split and the dataset path")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(items), size=min(count, len(items)), replace=False).tolist())
    colors = reader.class_colors()
    rows = -(-len(pick) // cols)
    ncols = min(cols, len(pick))
    fig, axes = plt.subplots(rows, ncols, figsize=(3.2 * ncols, 2.6 * rows + 0.8), squeeze=False)
    present: set[int] = set()
    for ax, k in zip(axes.ravel(), pick):
        it = items[k]
        img, lab = read_image(it.image), reader.label(it)
        check_size(lab, img.shape, it.ref if isinstance(it.ref, (str, Path)) else f"for {it.image}", it.image)
        present.update(int(v) for v in np.unique(lab) if v < len(reader.names))
        ax.imshow(overlay(img, lab, colors, alpha=0.5, ignore_index=reader.ignore_index))
        ax.set_title(f"{it.split}/{it.key}"[:40], fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    handles = [Patch(color=np.asarray(colors[c]) / 255.0, label=reader.names[c]) for c in sorted(present)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
