"""CPU inference benchmark (2 threads, 384x480, batch 1 and 8) -> benchmarks/results/inference.md

pixelwise default model (fpn + efficientnet_lite0, 11 classes) through ONNX Runtime and OpenVINO
vs its PyTorch eager self, SMP Unet on the same encoder (eager), and Ultralytics yolo26n-sem
(built offline from its yaml, exported to ONNX, run in ONNX Runtime). Untrained weights: speed
does not depend on them. Also measures the fp32 GEMM rate (torch.mm, 2 threads) and reports
which share of it each model reaches (model FLOPs / latency / GEMM FLOP/s).

    python benchmarks/inference.py [--repeats 10] [--out benchmarks/results/inference.md]
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

THREADS = 2
H, W, C = 384, 480, 11


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    sec = timeit(lambda: torch.mm(a, b), repeats)
    return 2 * n ** 3 / sec


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return float(fc.get_total_flops())


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def openvino_fn(path: Path):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    return lambda x: req.infer({0: x})


def eager_fn(model: torch.nn.Module, x: torch.Tensor):
    model = model.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            return model(x)

    return run


def export_onnx(module: torch.nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool = True) -> Path:
    axes = {"input": {0: "batch", 2: "height", 3: "width"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(module).eval(), (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], dynamic_axes=axes)
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference.md"))
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    from pixelwise.export.graph import LogitsGraph
    from pixelwise.models.registry import create_model

    tmp = Path(tempfile.mkdtemp(prefix="pw_bench_"))
    rows: list[dict] = []
    notes: list[str] = []
    gemm = gemm_rate()
    print(f"fp32 GEMM (torch.mm 2048^2, {THREADS} threads): {gemm / 1e9:.1f} GFLOP/s", flush=True)

    def record(name: str, runtime: str, batch: int, sec: float, gflop: float | None) -> None:
        ms = sec * 1000 / batch
        pct = (gflop * 1e9 * batch / sec) / gemm * 100 if gflop else None
        rows.append(dict(name=name, runtime=runtime, batch=batch, ms=ms, ips=batch / sec, gflop=gflop, pct=pct))
        print(f"{name:<34}{runtime:<14} batch {batch}: {ms:8.1f} ms/img  {batch / sec:6.2f} img/s"
              + (f"  {pct:5.1f}% of GEMM" if pct else ""), flush=True)

    # --- pixelwise default: eager vs exported
    model = create_model("fpn", "efficientnet_lite0", C).eval()
    x1 = torch.randn(1, 3, H, W)
    gf = flops(model, x1) / 1e9
    graph = LogitsGraph(copy.deepcopy(model)).eval()
    onnx_path = export_onnx(graph, torch.randn(1, 3, H + 6, W + 10), tmp / "pixelwise.onnx")
    sess = ort_session(onnx_path)
    ov = openvino_fn(onnx_path)
    for b in (1, 8):
        x = torch.randn(b, 3, H, W)
        xn = x.numpy()
        reps = a.repeats if b == 1 else max(3, a.repeats // 3)
        record("pixelwise fpn+efficientnet_lite0", "torch eager", b, timeit(eager_fn(model, x), reps), gf)
        record("pixelwise fpn+efficientnet_lite0", "onnxruntime", b, timeit(lambda: sess.run(None, {"input": xn}), reps), gf)
        record("pixelwise fpn+efficientnet_lite0", "openvino", b, timeit(lambda: ov(xn), reps), gf)

    # --- SMP Unet, same encoder
    try:
        import segmentation_models_pytorch as smp

        smp_model = None
        for enc in ("tu-efficientnet_lite0", "timm-tf_efficientnet_lite0"):
            try:
                smp_model = smp.Unet(enc, encoder_weights=None, classes=C).eval()
                smp_name = f"smp Unet {enc}"
                break
            except Exception as exc:  # noqa: BLE001 - try the next spelling
                notes.append(f"smp encoder {enc} unavailable: {type(exc).__name__}: {exc}")
        if smp_model is not None:
            sgf = flops(smp_model, x1) / 1e9
            for b in (1, 8):
                x = torch.randn(b, 3, H, W)
                reps = a.repeats if b == 1 else max(3, a.repeats // 3)
                record(smp_name, "torch eager", b, timeit(eager_fn(smp_model, x), reps), sgf)
    except ImportError:
        notes.append("segmentation_models_pytorch not installed: SMP row skipped")

    # --- Ultralytics yolo26n-sem (offline from yaml) -> ONNX
    try:
        from ultralytics import YOLO

        yolo = YOLO("yolo26n-sem.yaml").model.eval()
        for p in yolo.parameters():
            p.requires_grad_(False)
        ygf = flops(yolo, x1) / 1e9
        ypath = export_onnx(yolo, x1, tmp / "yolo26n-sem.onnx")
        ysess = ort_session(ypath)
        yin = ysess.get_inputs()[0].name
        for b in (1, 8):
            x = torch.randn(b, 3, H, W)
            xn = x.numpy()
            reps = a.repeats if b == 1 else max(3, a.repeats // 3)
            record("ultralytics yolo26n-sem", "torch eager", b, timeit(eager_fn(yolo, x), reps), ygf)
            record("ultralytics yolo26n-sem", "onnxruntime", b, timeit(lambda: ysess.run(None, {yin: xn}), reps), ygf)
    except Exception as exc:  # noqa: BLE001 - report, do not fail the whole benchmark
        msg = f"yolo26n-sem skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(msg)
        notes.append(msg)

    write_report(Path(a.out), rows, gemm, notes)
    print(f"written: {a.out}")
    return 0


def write_report(path: Path, rows: list[dict], gemm: float, notes: list[str]) -> None:
    import onnxruntime

    def best(name: str, b: int, runtimes: tuple[str, ...]) -> dict | None:
        cand = [r for r in rows if r["name"] == name and r["batch"] == b and r["runtime"] in runtimes]
        return min(cand, key=lambda r: r["ms"]) if cand else None

    lines = ["## Inference speed (CPU)", "",
             f"{THREADS} threads, input 384x480, untrained weights (speed does not depend on them). "
             f"Median of repeated runs. Machine: {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, python {sys.version.split()[0]}.",
             f"fp32 GEMM rate (torch.mm 2048x2048, {THREADS} threads): **{gemm / 1e9:.1f} GFLOP/s**; "
             "'% GEMM' = model FLOPs per second / that rate.", "",
             "| model | runtime | batch | ms / image | images / s | GFLOPs / image | % GEMM |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['runtime']} | {r['batch']} | {r['ms']:.1f} | {r['ips']:.2f} | "
                     f"{r['gflop']:.2f} | {r['pct']:.1f} |" if r["gflop"] else
                     f"| {r['name']} | {r['runtime']} | {r['batch']} | {r['ms']:.1f} | {r['ips']:.2f} | | |")
    lines.append("")
    pw = "pixelwise fpn+efficientnet_lite0"
    for b in (1, 8):
        dep, eag = best(pw, b, ("onnxruntime", "openvino")), best(pw, b, ("torch eager",))
        yolo = best("ultralytics yolo26n-sem", b, ("onnxruntime", "torch eager"))
        if dep and eag:
            speed = eag["ms"] / dep["ms"]
            lines.append(f"- batch {b}: deployed default ({dep['runtime']}) is **{speed:.2f}x** its PyTorch eager "
                         f"(target >= 2x: {'met' if speed >= 2 else 'NOT met'})"
                         + (f"; vs yolo26n-sem ({yolo['runtime']}) {yolo['ms'] / dep['ms']:.2f}x "
                            f"(target >= 1x: {'met' if dep['ms'] <= yolo['ms'] else 'NOT met'})" if yolo else ""))
    for n in notes:
        lines.append(f"- note: {n}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
