"""Training-loader throughput vs training step rate on CamVid.

Builds the loader exactly as the trainer does (SegmentationDataset -> SeededAugmentDataset with
``train_transform`` -> DataLoader with ``EpochSampler``) and measures images/s for each worker
count, then times the default model's training step (forward + backward + AdamW) at the same
batch size. When the loader delivers more images/s than the step consumes, data loading is not
the bottleneck. Writes a Markdown table to benchmarks/results/data_loading.md.

    python benchmarks/data_loading.py --workers 0,1,2 --batches 12
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.spec import DatasetSpec
from pixelwise.data.transforms import AugmentConfig, train_transform
from pixelwise.engine.sampler import EpochSampler, SeededAugmentDataset

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid" / "dataset.yaml"


def loader_rate(spec: DatasetSpec, workers: int, batch: int, batches: int, crop: tuple[int, int]) -> float:
    ds = SegmentationDataset(spec, "train")
    aug = SeededAugmentDataset(ds, train_transform(AugmentConfig(scale_range=(0.5, 1.5), crop=crop),
                                                   spec.ignore_index), seed=0)
    sampler = EpochSampler(len(ds), batch, seed=0)
    loader = DataLoader(aug, batch_sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _, _ = next(it)
        n += x.shape[0]
    dt = time.perf_counter() - t
    del it, loader
    return n / dt


def step_rate(num_classes: int, batch: int, crop: tuple[int, int], steps: int) -> float:
    from pixelwise.models.registry import create_model

    model = create_model("fpn", "efficientnet_lite0", num_classes)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, *crop)
    y = torch.randint(0, num_classes, (batch, *crop))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(CAMVID))
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--crop", default="288,384")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data_loading.md"))
    a = p.parse_args()
    crop = tuple(int(v) for v in a.crop.split(","))
    spec = DatasetSpec.load(a.data)
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    rows = []
    for w in (int(v) for v in a.workers.split(",")):
        r = loader_rate(spec, w, a.batch, a.batches, crop)
        rows.append((w, r))
        print(f"workers={w}: {r:.1f} images/s")
    s = step_rate(spec.num_classes, a.batch, crop, a.steps)
    print(f"training step (fpn/efficientnet_lite0, CPU, batch {a.batch}): {s:.1f} images/s")
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Data loading vs training step (CamVid)", "",
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores (shared), torch "
        f"{torch.__version__}, CPU. Crop {crop[0]}x{crop[1]}, batch {a.batch}, scale 0.5-1.5, flip, "
        f"photometric jitter; {a.batches} batches after warm-up per row.", "",
        "| loader workers | loader images/s | training step images/s (fpn, efficientnet_lite0) | loader / step |",
        "|---:|---:|---:|---:|"]
    lines += [f"| {w} | {r:.1f} | {s:.1f} | {r / s:.1f}x |" for w, r in rows]
    lines += ["", "Reproduce: `python benchmarks/data_loading.py --workers "
              f"{a.workers} --batches {a.batches}`"]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
