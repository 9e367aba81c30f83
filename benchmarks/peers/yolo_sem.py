"""Contender 3: Ultralytics yolo26n-sem trained from scratch with Ultralytics' own trainer.

The dataset is laid out the way ``ultralytics.data.dataset.SemanticDataset`` expects, in a
temporary folder of symlinks to CamVid's files (the shared copy is never written to):

    <tmp>/images/{train,val}/<stem>.jpg -> camvid/<split>/images/<stem>.jpg
    <tmp>/masks/{train,val}/<stem>.png  -> camvid/<split>/labels/<stem>.png

with ``masks_dir: masks`` and ``label_mapping: {11: ignore_label}`` (Ultralytics ignores 255;
CamVid's void is 11). Everything else is Ultralytics' defaults (batch 16, mosaic, SGD/auto
optimizer, its own time-based schedule), except: ``time`` = the budget, ``device=cpu``,
``pretrained=False``, ``plots=False`` (plots fetch Arial.ttf), ``val=False`` (no per-epoch
validation eating the budget; Ultralytics still validates once at the end).

The score is computed here, not by Ultralytics' validator: ``best.pt`` predicts every val image
at full 360x480 (``YOLO.predict``, which letterboxes to ``imgsz`` and maps logits back to the
original size) and the class map is scored with pixelwise's ConfusionMatrix.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from .common import SMOKE_VAL_IMAGES, metrics_record, score, val_split

IMGSZ = 480
SETTINGS = {"model": "yolo26n-sem.yaml (from scratch)", "imgsz": IMGSZ, "device": "cpu", "workers": 1,
            "pretrained": False, "plots": False, "val": False, "batch": "default (16)", "seed": 0}


def offline_env(workdir: Path) -> dict[str, str]:
    """Environment for an Ultralytics process that must not touch the network or ~/.config."""
    return {"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(workdir / "ultralytics_config"),
            "YOLO_VERBOSE": "True"}


def stub_fonts(config_dir: Path) -> None:
    """Ultralytics' dataset check calls ``check_font('Arial.ttf')`` whatever ``plots`` says, and
    that probes/downloads github.com even with YOLO_OFFLINE=1. A local font under the name it looks
    for (matplotlib's DejaVuSans) in the private config folder satisfies it without the network."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    dst_dir = config_dir / "Ultralytics"
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if src.exists() and not (dst_dir / name).exists():
            (dst_dir / name).symlink_to(src)


def build_dataset(data: str | Path, root: Path) -> Path:
    """Symlinked SemanticDataset layout + its YAML; returns the YAML path."""
    from pixelwise.data.pairing import paired_samples
    from pixelwise.data.spec import DatasetSpec

    spec = DatasetSpec.load(data)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for s in paired_samples(spec.split(split)):
            img, lab = Path(s.image).resolve(), Path(s.label).resolve()
            li = root / "images" / split / f"{img.stem}{img.suffix.lower()}"
            lm = root / "masks" / split / f"{img.stem}.png"  # masks pair by the image's stem
            for link, target in ((li, img), (lm, lab)):
                if not link.is_symlink():
                    link.symlink_to(target)
    cfg = {"path": str(root), "train": "images/train", "val": "images/val", "masks_dir": "masks",
           "names": {i: n for i, n in enumerate(spec.names)}}
    if spec.ignore_index is not None and spec.ignore_index != 255:
        cfg["label_mapping"] = {int(spec.ignore_index): "ignore_label"}
    out = root / "camvid_sem.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def run(data: str, minutes: float, workdir: Path, smoke: bool = False, imgsz: int = IMGSZ) -> dict:
    env = offline_env(workdir)
    os.environ.update(env)  # before the first ultralytics import
    stub_fonts(Path(env["YOLO_CONFIG_DIR"]))
    from ultralytics import YOLO

    yaml_path = build_dataset(data, workdir / "yolo_camvid")
    stats = {"images": 0, "train_seconds": 0.0, "epoch_t0": None, "epoch": None, "metrics": None}

    def on_pretrain_routine_end(trainer):
        # Ultralytics' select_device sets torch to cpu_count - 1 threads (1 on a 2-core VM); the
        # other contenders train on every core, so this one does too (runs before the fifth
        # session trained it on one thread).
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
        stats["torch_threads"] = torch.get_num_threads()
        original = trainer.preprocess_batch

        def counting(batch):
            stats["images"] += int(batch["img"].shape[0])
            return original(batch)

        trainer.preprocess_batch = counting

    def on_train_epoch_start(trainer):
        stats["epoch_t0"] = time.time()

    def on_train_epoch_end(trainer):  # runs before the epoch's validation
        stats["train_seconds"] += time.time() - stats["epoch_t0"]
        stats["epoch"] = trainer.epoch + 1

    def on_train_end(trainer):
        stats["metrics"] = {k: float(v) for k, v in (trainer.metrics or {}).items()
                            if isinstance(v, (int, float))}

    model = YOLO("yolo26n-sem.yaml")
    for event, fn in (("on_pretrain_routine_end", on_pretrain_routine_end),
                      ("on_train_epoch_start", on_train_epoch_start),
                      ("on_train_epoch_end", on_train_epoch_end), ("on_train_end", on_train_end)):
        model.add_callback(event, fn)
    t0 = time.time()
    model.train(data=str(yaml_path), time=minutes / 60.0, imgsz=imgsz, device="cpu", workers=1,
                pretrained=False, plots=False, val=False, project=str(workdir), name="yolo",
                exist_ok=True, seed=0, verbose=False)
    wall = time.time() - t0
    save_dir = Path(model.trainer.save_dir)
    weights = save_dir / "weights" / "best.pt"
    if not weights.exists():
        weights = save_dir / "weights" / "last.pt"
    batch = int(model.trainer.batch_size)

    predictor = YOLO(str(weights))

    def predict(path: Path, _image):
        r = predictor.predict(source=str(path), imgsz=imgsz, device="cpu", verbose=False, save=False)[0]
        return r.semantic_mask.data.cpu().numpy()

    max_val = SMOKE_VAL_IMAGES if smoke else None
    m = score(data, predict, max_val)
    out = metrics_record(m, val_split(data, max_val)[2])
    n_train = len(list((workdir / "yolo_camvid" / "images" / "train").iterdir()))
    images = stats["images"]
    ultra = stats["metrics"] or {}
    out.update(torch_threads=stats.get("torch_threads"), epochs=round(images / n_train, 2), epochs_reported=stats["epoch"], batch_size=batch,
               images_seen=images, train_seconds=round(stats["train_seconds"], 1),
               train_img_s=round(images / stats["train_seconds"], 3) if stats["train_seconds"] else None,
               wall_seconds=round(wall, 1), weights=str(weights),
               ultralytics_val_miou=round(ultra["metrics/mIoU"] * 100, 2) if "metrics/mIoU" in ultra else None,
               settings={**SETTINGS, "imgsz": imgsz, "batch": batch, "dataset_yaml": str(yaml_path)})
    return out
