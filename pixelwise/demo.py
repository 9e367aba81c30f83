"""`make demo`: train, evaluate and predict end to end on a real dataset in a few minutes.

    python -m pixelwise.demo --data path/to/dataset.yaml --minutes 3

Uses CamVid from ../shared by default (see the Makefile's DEMO_DATA); any dataset YAML works.
Pretrained weights come from an installed package, so nothing is downloaded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixelwise.errors import PixelwiseError, one_line


def run(data: str, minutes: float, out: str = "runs") -> Path:
    from pixelwise.data.pairing import paired_samples
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.engine.evaluator import val
    from pixelwise.engine.trainer import train
    from pixelwise.inference.predictor import predict

    spec = DatasetSpec.load(data)
    print(f"[1/3] training on {spec.source} ({spec.num_classes} classes) for {minutes} min")
    # The default recipe, on smaller crops so that a few minutes give several epochs (and curves);
    # each epoch is validated on a subset, the final model on the whole split below.
    res = train(data, time_budget=minutes, project=out, name="demo", exist_ok=True, val_interval=1,
                val_max_images=20, augment={"crop": (224, 320)})
    print(f"[2/3] evaluating {res.best}")
    metrics = val(res.best, data, split="val", out_dir=res.run_dir / "val")
    print(metrics.table())
    split = "test" if "test" in spec.splits else "val"
    images = [s.image for s in paired_samples(spec.split(split))[:6]]
    src = res.run_dir / "demo_inputs"
    src.mkdir(exist_ok=True)
    for p in images:  # links, not copies: the user's files are never touched
        link = src / p.name
        if not link.exists():
            link.symlink_to(p.resolve())
    print(f"[3/3] predicting {len(images)} {split} images")
    predict(res.best, src, res.run_dir / "predictions")
    print(f"\nDone. Look at {res.run_dir}: results.png (curves), val/confusion_val.png, "
          f"val/metrics_val.json, predictions/*_overlay.png; checkpoints best.pt and last.pt.")
    return res.run_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/datasets/camvid/dataset.yaml")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--out", default="runs")
    a = p.parse_args(argv)
    if not Path(a.data).exists():
        print(f"pixelwise demo: dataset {a.data} not found. Point it at your own dataset YAML: "
              "make demo DEMO_DATA=path/to/dataset.yaml (README: 'From zero to a model on your own data')", file=sys.stderr)
        return 2
    try:
        run(a.data, a.minutes, a.out)
    except PixelwiseError as exc:
        print(f"pixelwise: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
