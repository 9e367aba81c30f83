"""``pixelwise data stats``: what is in a dataset, before training on it.

Per split: number of images, image sizes, per-class pixel share and image presence, the mean
and std of image pixels (to compare with the encoder's normalisation), and the class weights
the trainer would use (``class_weights_from_counts`` on the train split). Runs on all cores with
one image per worker in memory. ``save_chart`` draws pixel share and presence as a PNG.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.data.formats.base import Item, Reader, parallel_map
from pixelwise.data.io import read_image
from pixelwise.engine.losses import class_weights_from_counts


@dataclass
class SplitStats:
    images: int = 0
    sizes: Counter = field(default_factory=Counter)  # (h, w) -> count
    pixels: np.ndarray | None = None  # per class
    presence: np.ndarray | None = None  # images containing each class
    ignored: int = 0
    mean: np.ndarray | None = None  # RGB, 0..1
    std: np.ndarray | None = None


@dataclass
class DatasetStats:
    names: list[str]
    ignore_index: int
    splits: dict[str, SplitStats]

    @property
    def class_weights(self) -> np.ndarray:
        """What the trainer would weight the loss with (from the train split, or all splits)."""
        base = self.splits.get("train") or next(iter(self.splits.values()))
        return class_weights_from_counts(base.pixels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"names": self.names, "class_weights": self.class_weights.round(4).tolist(),
                               "splits": {}}
        for name, s in self.splits.items():
            total = max(int(s.pixels.sum()), 1)
            out["splits"][name] = {
                "images": s.images, "sizes": {f"{w}x{h}": n for (h, w), n in s.sizes.most_common()},
                "pixel_share": (s.pixels / total).round(6).tolist(),
                "presence": s.presence.tolist(), "ignored_pixels": s.ignored,
                "mean": s.mean.round(4).tolist(), "std": s.std.round(4).tolist()}
        return out

    def table(self) -> str:
        lines = []
        w = self.class_weights
        for name, s in self.splits.items():
            total = max(int(s.pixels.sum()), 1)
            sizes = ", ".join(f"{ww}x{hh} ({n})" for (hh, ww), n in s.sizes.most_common(3))
            lines.append(f"split {name}: {s.images} images; sizes {sizes}; "
                         f"mean {np.round(s.mean, 3).tolist()} std {np.round(s.std, 3).tolist()}; "
                         f"ignored pixels {s.ignored / (total + s.ignored):.2%}")
            lines.append(f"  {'class':<20}{'pixels %':>10}{'images':>9}{'weight':>9}")
            for c, n in enumerate(self.names):
                lines.append(f"  {n[:19]:<20}{100 * s.pixels[c] / total:>10.2f}{int(s.presence[c]):>9}"
                             f"{w[c]:>9.3f}")
        return "\n".join(lines)


def _one(reader: Reader, item: Item) -> tuple:
    image = read_image(item.image)
    label = reader.label(item)
    n = len(reader.names)
    counts = np.bincount(label.ravel().astype(np.int64), minlength=max(n, reader.ignore_index + 1))
    # exact integer sums per channel (bincount of 0..255 values), 20x cheaper than float arrays
    px = image.reshape(-1, 3)
    v = np.arange(256, dtype=np.float64)
    hist = np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    s1 = hist @ v / 255.0
    s2 = hist @ (v ** 2) / 255.0 ** 2
    ign = int(counts[reader.ignore_index]) if reader.ignore_index < len(counts) else 0
    return image.shape[:2], counts[:n], ign, s1, s2, px.shape[0]


def dataset_stats(source: Reader | str | Path, workers: int | None = None,
                  format: str | None = None) -> DatasetStats:
    """Statistics of every split of a source (any readable format)."""
    from pixelwise.data.formats import open_source

    reader = source if isinstance(source, Reader) else open_source(source, format)
    n = len(reader.names)
    splits: dict[str, SplitStats] = {}
    sums: dict[str, list] = {}
    items = list(reader.items())
    for item, (hw, counts, ign, s1, s2, npx) in zip(items, parallel_map(_one, reader, items, workers)):
        st = splits.setdefault(item.split, SplitStats(pixels=np.zeros(n, np.int64),
                                                       presence=np.zeros(n, np.int64)))
        acc = sums.setdefault(item.split, [np.zeros(3), np.zeros(3), 0])
        st.images += 1
        st.sizes[tuple(hw)] += 1
        st.pixels += counts
        st.presence += counts > 0
        st.ignored += ign
        acc[0] += s1
        acc[1] += s2
        acc[2] += npx
    for name, st in splits.items():
        s1, s2, npx = sums[name]
        st.mean = s1 / max(npx, 1)
        st.std = np.sqrt(np.maximum(s2 / max(npx, 1) - st.mean ** 2, 0))
    return DatasetStats(list(reader.names), reader.ignore_index, splits)


def save_chart(stats: DatasetStats, path: str | Path) -> Path:
    """Bar charts of pixel share and image presence per class and split (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = stats.names
    x = np.arange(len(names))
    width = 0.8 / max(len(stats.splits), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.5 * len(names) + 2), 7), constrained_layout=True)
    for i, (split, s) in enumerate(stats.splits.items()):
        total = max(int(s.pixels.sum()), 1)
        axes[0].bar(x + i * width, 100 * s.pixels / total, width, label=split)
        axes[1].bar(x + i * width, 100 * s.presence / max(s.images, 1), width, label=split)
    axes[0].set_ylabel("pixels (%)")
    axes[0].set_title("Class pixel share")
    axes[1].set_ylabel("images containing the class (%)")
    axes[1].set_title("Class presence")
    for ax in axes:
        ax.set_xticks(x + width * (len(stats.splits) - 1) / 2)
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
