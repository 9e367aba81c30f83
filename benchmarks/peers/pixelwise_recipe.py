"""Contender 1: pixelwise's default recipe, trained with its own time-budgeted trainer."""
from __future__ import annotations

import csv
import time
from pathlib import Path

from .common import SMOKE_VAL_IMAGES, metrics_record, train_size, val_split


def run(data: str, minutes: float, workdir: Path, smoke: bool = False) -> dict:
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.engine.evaluator import val
    from pixelwise.engine.trainer import train

    max_val = SMOKE_VAL_IMAGES if smoke else None
    kw = dict(time_budget=minutes, project=str(workdir), name="pixelwise", val_interval=10**6,
              progress=False)
    if smoke:
        kw["val_max_images"] = max_val
    t0 = time.time()
    res = train(data, **kw)
    wall = time.time() - t0
    rows = list(csv.DictReader(open(res.run_dir / "results.csv")))
    # 'seconds' is the training wall clock (data waits included) before the final validation
    train_seconds = float(rows[-1]["seconds"]) if rows else float("nan")
    cfg = load_checkpoint(res.best)["config"]
    batch = int(cfg["batch_size"])
    images = res.iterations * batch
    m = val(res.best, data, split="val", progress=False, max_images=max_val)
    out = metrics_record(m, val_split(data, max_val)[2])
    out.update(epochs=round(images / train_size(data), 2), epochs_reported=res.epochs,
               iterations=res.iterations, batch_size=batch, images_seen=images,
               train_seconds=round(train_seconds, 1), train_img_s=round(images / train_seconds, 3),
               wall_seconds=round(wall, 1),
               settings={"arch": cfg["model"]["arch"], "encoder": cfg["model"]["encoder"],
                         "pretrained": cfg["model"]["pretrained"],
                         "freeze_stages": cfg["model"]["freeze_stages"],
                         "crop": list(cfg["augment"]["crop"]), "scale_range": list(cfg["augment"]["scale_range"]),
                         "optimizer": cfg["optimizer"], "lr": cfg["lr"], "batch_size": batch,
                         "loss": cfg["loss"], "class_weights": cfg["class_weights"],
                         "run_dir": str(res.run_dir)})
    return out
