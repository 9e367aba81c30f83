"""Accuracy of the deployed model: CamVid val mIoU of a checkpoint in PyTorch and of its exports
(fp32 ONNX, int8 ONNX, int8 OpenVINO), each scored by the runtime that would serve it
(`pixelwise val --model FILE`) -> benchmarks/results/deploy_accuracy.md

    python benchmarks/deploy_accuracy.py CHECKPOINT [--data dataset.yaml]

CHECKPOINT: e.g. the best.pt that `benchmarks/camvid.py` trained (its run folder is printed and
recorded in camvid.md); the dataset defaults to the one recorded in the checkpoint.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "deploy_accuracy.md"))
    a = ap.parse_args()
    from pixelwise.engine.evaluator import val
    from pixelwise.export import export

    tmp = Path(tempfile.mkdtemp(prefix="pw_deploy_acc_"))
    rows = []

    def score(label: str, model, extra: str = "") -> None:
        t = time.time()
        m = val(model, a.data, split="val", progress=False)
        rows.append((label, m.miou * 100, m.images, extra, time.time() - t))
        print(f"{label}: {m.miou * 100:.2f} mIoU {extra}", flush=True)

    score("PyTorch checkpoint (fp32)", a.checkpoint)
    for label, kw in [("ONNX fp32 (onnxruntime)", dict(format="onnx", out=tmp / "fp32.onnx")),
                      ("ONNX int8 (onnxruntime)", dict(format="onnx", out=tmp / "int8.onnx", int8=True)),
                      ("OpenVINO int8", dict(format="openvino", out=tmp / "ov" / "int8.xml", int8=True)),
                      ("ONNX int8 pipeline, labels only (uint8 image in; onnxruntime)",
                       dict(format="onnx", out=tmp / "pipe.onnx", int8=True, pipeline=True, outputs=("labels",))),
                      ("ONNX int8 pipeline, network at 288x360 inside (onnxruntime)",
                       dict(format="onnx", out=tmp / "pipe75.onnx", int8=True, pipeline=True, imgsz=(288, 360)))]:
        res = export(a.checkpoint, **kw)
        own = res.report.labels_agreement
        score(label, str(res.path), f"export check: {res.report.agreement * 100:.2f}% label agreement "
                                    + (f"(in-graph label map: {own * 100:.2f}%) " if own is not None else "")
                                    + f"on {res.report.images} val images")
    ref = rows[0][1]
    lines = ["## Deployed accuracy (CamVid val)", "",
             f"- **Date:** {dt.datetime.now().isoformat(timespec='seconds')}",
             f"- **Command:** `python benchmarks/deploy_accuracy.py {' '.join(sys.argv[1:])}`",
             "- Each export is written by `pixelwise.export.export` and scored whole-image at full "
             "360x480 by `pixelwise val --model` (the torch-free runtime for exported files, which serves "
             "the graph's own label map).", "",
             "| model | val mIoU | vs checkpoint | images | notes |", "|---|---:|---:|---:|---|"]
    for label, miou, n, extra, _ in rows:
        lines.append(f"| {label} | {miou:.2f} | {miou - ref:+.2f} | {n if n is not None else ''} | {extra} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
