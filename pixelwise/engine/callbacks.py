"""Run outputs written as training goes: results.csv (one row per epoch) and curve plots."""
from __future__ import annotations

import csv
from pathlib import Path

from pixelwise.data.io import atomic_write_bytes
from pixelwise.engine.plots import plot_results

COLUMNS = ["epoch", "iteration", "train_loss", "lr", "val_mIoU", "val_mAcc", "val_aAcc", "seconds"]


class ResultsLogger:
    """Appends epoch rows to ``results.csv``; rewrites it atomically so a kill never truncates it."""

    def __init__(self, run_dir: Path, resume: bool = False):
        self.path = run_dir / "results.csv"
        self.rows: list[dict] = []
        if resume and self.path.exists():
            with open(self.path, newline="") as fh:
                self.rows = list(csv.DictReader(fh))

    def log(self, row: dict) -> None:
        self.rows = [r for r in self.rows if int(r["epoch"]) != int(row["epoch"])] + [row]
        lines = [",".join(COLUMNS)]
        for r in self.rows:
            lines.append(",".join("" if r.get(c) is None else str(r.get(c)) for c in COLUMNS))
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())
        plot_results(self.path, self.path.parent / "results.png")
