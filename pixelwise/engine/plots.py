"""PNG plots of a run: loss/mIoU curves from results.csv, and the confusion matrix."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pixelwise.data.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_results(csv_path: str | Path, out_path: str | Path) -> None:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    ep = [int(r["epoch"]) for r in rows]
    loss = [float(r["train_loss"]) for r in rows]
    val = [(int(r["epoch"]), float(r["val_mIoU"])) for r in rows if r.get("val_mIoU") not in ("", None)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(ep, loss, marker="o", ms=3)
    axes[0].set(title="train loss", xlabel="epoch")
    if val:
        axes[1].plot([v[0] for v in val], [v[1] for v in val], marker="o", ms=3, color="tab:green")
    axes[1].set(title="val mIoU (%)", xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
    _save(fig, Path(out_path))


def plot_confusion(metrics, out_path: str | Path) -> None:
    cm = metrics.confusion.astype(np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(metrics.names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), metrics.names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), metrics.names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion (row-normalised), mIoU {metrics.miou * 100:.1f}")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j] * 100:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    _save(fig, Path(out_path))
