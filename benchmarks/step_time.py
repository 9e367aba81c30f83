"""Training-step time: pixelwise vs segmentation_models_pytorch, same architecture and encoder.

Both build U-Net on EfficientNet-Lite0 (timm) and run the same step: forward, CE loss with
ignore index, backward, AdamW update, on the same random batch, on the CPU with the same threads.
pixelwise runs its trainer's own step (`Trainer.step` path: uint8 -> normalise -> channels_last);
SMP runs the plain loop a user writes. Median of N timed steps after warm-up.

    .venv/bin/python benchmarks/step_time.py [--batch 4] [--size 360,480] [--steps 6]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def time_steps(step, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", default="360,480")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="markdown file (default benchmarks/results/step_time.md)")
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split(","))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 255, (a.batch, 3, h, w), dtype=torch.uint8)
    labels = torch.randint(0, 11, (a.batch, h, w))
    results = {}

    # ---- pixelwise: the trainer's own step (frozen stages off: same trainable set as SMP)
    from pixelwise.engine.evaluator import normalize_batch
    from pixelwise.engine.losses import SegmentationLoss
    from pixelwise.models import create_model

    for label, channels_last in (("pixelwise unet (channels_last, default on CPU)", True),
                                 ("pixelwise unet (NCHW)", False)):
        model = create_model("unet", "efficientnet_lite0", 11).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        loss_fn = SegmentationLoss(11, ignore_index=11)

        def step(model=model, opt=opt, loss_fn=loss_fn, cl=channels_last):
            x = normalize_batch(images, model.mean, model.std, torch.device("cpu"), cl)
            loss = loss_fn(model(x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        results[label] = time_steps(step, a.steps)

    # ---- SMP: the plain loop
    import segmentation_models_pytorch as smp

    model = smp.Unet("tu-efficientnet_lite0", encoder_weights=None, classes=11).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32

    def smp_step():
        x = (images.float() / 255 - mean) / mean
        x = F.pad(x, (0, pw, 0, ph))
        out = model(x)[..., :h, :w]
        loss = F.cross_entropy(out, labels, ignore_index=11)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    results["smp Unet (plain loop)"] = time_steps(smp_step, a.steps)
    print(f"batch {a.batch} at {h}x{w}, {a.threads} threads, median of {a.steps} steps")
    for k, v in results.items():
        print(f"  {k:<48} {v:6.2f} s/step  {a.batch / v:6.2f} img/s")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    write_markdown(results, a, h, w)


def write_markdown(results: dict, a, h: int, w: int) -> None:
    import datetime as dt
    import platform
    import sys
    from pathlib import Path

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    lines = ["# Training step: pixelwise vs SMP (same U-Net + EfficientNet-Lite0)", "",
             f"- **Date:** {dt.datetime.now().isoformat(timespec='seconds')}",
             f"- **Machine:** {cpu}, {a.threads} threads; torch {torch.__version__}",
             f"- **Command:** `python benchmarks/step_time.py {' '.join(sys.argv[1:])}`".rstrip(),
             f"- **Step:** forward + CE + backward + AdamW, batch {a.batch} at {h}x{w}, median of {a.steps}", "",
             "| implementation | s/step | img/s |", "|---|---:|---:|"]
    for k, v in results.items():
        lines.append(f"| {k} | {v:.2f} | {a.batch / v:.2f} |")
    out = Path(a.out) if a.out else Path(__file__).resolve().parent / "results" / "step_time.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
