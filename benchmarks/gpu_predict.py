"""The PyTorch predictor on a GPU, fp32 against ``half`` (fp16), each with and without CUDA graphs
-> benchmarks/results/gpu_predict.md

What users get from ``pixelwise val`` / ``pixelwise predict --device cuda [--half]``, measured end to
end, per precision:

- val mIoU of the checkpoint on the dataset's val split (``evaluate_checkpoint``, which runs the
  network eagerly: CUDA graphs serve ``predict``), and its time;
- ``Segmenter.predict`` on every val image held in memory as uint8 HxWx3: host -> GPU,
  normalisation, network, arg-max, label map back in host memory; median of three passes after
  a warm-up, and the share of pixels whose label equals the fp32 predictor's;
- one large image (``--big``, the first val image tiled to that size) predicted in tiles
  (``--tile``), and as one whole image, each with the GPU memory it peaked at: tiling bounds it by
  the tile, the whole image by the image.

    python benchmarks/gpu_predict.py --checkpoint best.pt --data camvid/dataset.yaml [--big 8000]

Smoke test without a GPU (no timing value, fp32 only): ``--device cpu --quick``. On the lent GPU machine it runs
in the same call as ``gpu.py`` (``gpu_carry.sh`` carries the checkpoint and CamVid val with a
dataset YAML); copy ``gpu_predict.json`` and ``.md`` into ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed_big(seg, image: np.ndarray, device: torch.device, **kw) -> dict:
    """Seconds of a first and a second prediction of ``image`` (the first pays for cuDNN's choice
    of kernels for each new input shape), and the GPU memory the second peaked at."""
    out: dict = {}
    for key in ("first_seconds", "seconds"):
        reset_peak(device)
        sync(device)
        t = time.perf_counter()
        try:
            labels = seg.predict(image, **kw).labels
        except torch.OutOfMemoryError as exc:
            return {"error": f"out of GPU memory: {str(exc).splitlines()[0][:120]}"}
        sync(device)
        out[key] = round(time.perf_counter() - t, 2)
    return out | {"peak_gpu_mb": peak_mb(device), "labels": labels}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="dataset YAML whose val split is scored and predicted")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--big", type=int, default=8000, help="side of the large image")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="a few small images: a smoke test of the script")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_predict.json"))
    a = ap.parse_args()
    from pixelwise.data.dataset import SegmentationDataset
    from pixelwise.data.spec import DatasetSpec
    from pixelwise.engine.evaluator import evaluate_checkpoint
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.runtime.imageio import read_image

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine (or --device cpu --quick)")
    spec = DatasetSpec.load(a.data)
    files = [s.image for s in SegmentationDataset(spec, "val").samples][: 4 if a.quick else None]
    images = [np.ascontiguousarray(read_image(f)) for f in files]
    big_side = 600 if a.quick else a.big
    reps = -(-big_side // images[0].shape[0]), -(-big_side // images[0].shape[1])
    big = np.tile(images[0], (*reps, 1))[:big_side, :big_side]
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    res: dict = {"env": env, "checkpoint": Path(a.checkpoint).name, "images": len(images),
                 "size": list(images[0].shape[:2]), "big": big_side, "tile": a.tile, "rows": []}
    print(env, flush=True)
    reference: list[np.ndarray] = []
    forms = [("fp32", False, False), ("fp32 + CUDA graphs", False, True), ("fp16 (half)", True, False),
             ("fp16 + CUDA graphs", True, True)]
    for name, half, graphs in forms if device.type == "cuda" else forms[:1]:  # half is refused on a CPU
        seg = Segmenter.load(a.checkpoint, device=a.device, half=half, cuda_graphs=graphs)
        row: dict = {"precision": name}
        evaluate_checkpoint(seg, spec, split="val", progress=False, max_images=2)  # warm-up: kernel choice
        t = time.perf_counter()
        m = evaluate_checkpoint(seg, spec, split="val", progress=False, max_images=len(images))
        row.update(val_miou=round(m.miou * 100, 2), val_seconds=round(time.perf_counter() - t, 2))
        for im in images[:10]:
            seg.predict(im)
        passes, labels = [], []
        for _ in range(1 if a.quick else 3):
            t = time.perf_counter()
            labels = [seg.predict(im).labels for im in images]
            passes.append(time.perf_counter() - t)
        sec = statistics.median(passes) / len(images)
        row.update(predict_ms=round(sec * 1000, 3), images_per_s=round(1 / sec, 1))
        if reference:
            same = sum(int((x == y).sum()) for x, y in zip(labels, reference))
            row["equal_to_fp32"] = round(same / sum(x.size for x in reference), 6)
        else:
            reference = labels
        tiled = timed_big(seg, big, device, tile=a.tile, batch=8)
        whole = timed_big(seg, big, device)
        if "labels" in tiled and "labels" in whole:
            row["tiled_vs_whole_equal"] = round(float((tiled["labels"] == whole["labels"]).mean()), 6)
        row["tiled"] = {k: v for k, v in tiled.items() if k != "labels"}
        row["whole"] = {k: v for k, v in whole.items() if k != "labels"}
        res["rows"].append(row)
        print(row, flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2))  # what a call stopped at its limit still returns
        del seg
        reset_peak(device)
    from report import save_results

    save_results(res, a.out, write_markdown)
    return 0


def write_markdown(res: dict, path: Path) -> None:
    from report import section, table, write_lines

    env = res["env"]
    h, w = res["size"]
    big = res["big"]

    def run(r: dict) -> tuple[str, str]:
        if "error" in r:
            return r["error"], "-"
        return (f"{r['seconds']:.2f} ({r['first_seconds']:.2f})",
                "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}")

    rows = []
    for r in res["rows"]:
        rows.append([r["precision"], f"{r['val_miou']:.2f}", f"{r['val_seconds']:.1f}", f"{r['predict_ms']:.2f}",
                     r["images_per_s"], f"{r['equal_to_fp32'] * 100:.3f}%" if "equal_to_fp32" in r else "(reference)",
                     *run(r["tiled"]), *run(r["whole"]),
                     f"{r['tiled_vs_whole_equal'] * 100:.3f}%" if "tiled_vs_whole_equal" in r else "-"])
    lines = [*section("GPU predictor (PyTorch, fp32 and --half, CUDA graphs)",
                      f"{env['device']}; torch {env['torch']}, CUDA {env['cuda']}",
                      f"- **Model:** `{res['checkpoint']}`; {res['images']} val images of {h}x{w}",
                      "- **predict:** `Segmenter.predict` per image, uint8 image in host memory -> label map in "
                      "host memory, median of 3 passes",
                      f"- **Large image:** {big}x{big}, tiled ({res['tile']} px tiles, batch 8) and whole; "
                      "seconds of the second prediction (of the first, which pays for cuDNN's choice of "
                      "kernels for new input shapes)",
                      "- **val s:** after a 2-image warm-up; includes reading and decoding the images; "
                      "val runs the network eagerly (CUDA graphs serve predict)"),
             *table(["form", "val mIoU", "val s", "predict ms / image", "images / s", "labels = fp32",
                     f"{big}² tiled s", "tiled peak GPU MB", f"{big}² whole s", "whole peak GPU MB",
                     "tiled = whole"],
                    rows, "lrrrrrrrrrr")]
    write_lines(path, lines)


if __name__ == "__main__":
    raise SystemExit(main())
