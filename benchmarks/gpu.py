"""GPU inference: pixelwise's default model against the same peers as ``inference.py``, in fp32,
fp16, bf16, CUDA graphs and torch.compile -> benchmarks/results/gpu.md

Written to run in one call on a lent GPU machine (see "Running it on the device" below), within a
time budget: every contender is timed in eager fp32 first, then the faster forms, and a form
that would start after ``--budget`` seconds is listed as skipped instead of being run, so the
results come back even when compiling takes longer than planned.

What is timed, per model, at 384x480 and each batch size: a normalised image batch already on
the GPU -> the label map at the input size (logits, bilinear upsampling where the network's
output is smaller, arg-max), the output users get. CUDA events around blocks of calls, median
block over ``--repeats`` blocks, after warm-up.

Forms: ``eager fp32`` (cuDNN's default TF32 convolutions, as PyTorch runs them), ``eager fp16`` and
``eager bf16`` (weights and inputs in that type, channels_last), ``CUDA graph fp16`` (the fp16
forward captured once and replayed: no per-kernel launch cost, what TensorRT's engines also
avoid), and ``torch.compile fp16`` (Inductor's fused kernels with CUDA graphs,
``mode="reduce-overhead"``). TensorRT itself and ONNX Runtime's CUDA provider are not on that
machine and cannot be installed there (no registry; their wheels exceed what a call carries).

Models: pixelwise's default (``--checkpoint``: a trained one, BatchNorm folded as its predictor
loads it; else the default architecture with trained-like BatchNorm terms), SMP Unet on the same
encoder, Ultralytics yolo26n-sem (11 classes, from its model YAML) and torchvision
LRASPP-MobileNetV3-Large; a peer whose package is missing is reported as skipped.

With ``--checkpoint`` and ``--data`` (a folder of images, e.g. CamVid val), also the label
agreement of pixelwise's fp16 and bf16 forms with its fp32 one, at full resolution.

    python benchmarks/gpu.py [--checkpoint best.pt] [--data val/images] [--batches 1,8,32] [--budget 420]

Smoke test without a GPU (tiny sizes, no timing value): ``--device cpu --quick``.

Running it on the device (the ``run`` tool of this workplace; Python 3.12 there, with torch, timm,
torchvision and OpenCV but not SMP or Ultralytics, and no registry): ``benchmarks/gpu_carry.sh``
fills the git-ignored ``.gpu_carry/`` with their wheels, a checkpoint and CamVid val images
(under 64 MiB), then one call:

    run(carry=[".gpu_carry"], timeout_s=540, command="python3 -m pip install -q --no-index --no-deps
        --target /tmp/site .gpu_carry/whl/*.whl && YOLO_OFFLINE=1 PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py
        --checkpoint .gpu_carry/best.pt --data .gpu_carry/camvid/val/images --out $OUT/gpu.json")

and copy ``gpu.json`` and ``gpu.md`` from the returned files into ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from inference import like_trained  # noqa: E402 - trained-like BatchNorm terms, as the CPU benchmark gives them

H, W, C = 384, 480, 11
FORMS = ("eager fp32", "eager fp16", "eager bf16", "CUDA graph fp16", "torch.compile fp16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Labels(torch.nn.Module):
    """A segmentation network -> the label map at the input's size (what every contender returns)."""

    def __init__(self, net: torch.nn.Module, pick: Callable[[object], torch.Tensor] | None = None):
        super().__init__()
        self.net, self.pick = net, pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        y = self.pick(y) if self.pick else y
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y.argmax(1)


def pixelwise_model(checkpoint: str | None) -> tuple[torch.nn.Module, str]:
    if checkpoint:
        from pixelwise.inference.predictor import Segmenter

        seg = Segmenter.load(checkpoint, device="cpu")  # BatchNorm folded, as predict runs it
        spec = getattr(seg.model, "spec", {}) or {}
        return seg.model, f"pixelwise {spec.get('arch', '?')}+{spec.get('encoder', '?')} (trained, {Path(checkpoint).name})"
    from pixelwise.config import ModelConfig
    from pixelwise.models import create_model
    from pixelwise.models.fuse import fold_batchnorm

    cfg = ModelConfig()
    model = like_trained(create_model(cfg.arch, cfg.encoder, num_classes=C, pretrained=None)).eval()
    model, _ = fold_batchnorm(model, torch.randn(1, 3, 2 * model.stride, 3 * model.stride))
    return model, f"pixelwise {cfg.arch}+{cfg.encoder} (untrained, BatchNorm folded)"


def peer_models() -> list[tuple[str, Callable[[], torch.nn.Module]]]:
    def smp_unet() -> torch.nn.Module:
        import segmentation_models_pytorch as smp

        return Labels(like_trained(smp.Unet("tu-efficientnet_lite0", encoder_weights=None, classes=C)))

    def yolo_sem() -> torch.nn.Module:
        from ultralytics.nn.tasks import SemanticSegmentationModel

        net = like_trained(SemanticSegmentationModel("yolo26n-sem.yaml", nc=C, verbose=False)).eval()
        net = net.fuse(verbose=False) if hasattr(net, "fuse") else net  # as Ultralytics predicts
        return Labels(net, lambda y: y[0] if isinstance(y, (list, tuple)) else y)

    def lraspp() -> torch.nn.Module:
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        return Labels(like_trained(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=C)),
                      lambda y: y["out"])

    return [("SMP Unet + tu-efficientnet_lite0", smp_unet), ("ultralytics yolo26n-sem", yolo_sem),
            ("torchvision LRASPP-MobileNetV3-Large", lraspp)]


def timed(fn: Callable[[], object], device: torch.device, repeats: int, block: int, warmup: int) -> float:
    """Median seconds per call over ``repeats`` blocks of ``block`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(block):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / block)
        else:
            t = time.perf_counter()
            for _ in range(block):
                fn()
            times.append((time.perf_counter() - t) / block)
    return statistics.median(times)


def cuda_graph(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``module(x)`` captured once; each call replays it on the same input buffer."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            module(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = module(x)

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def form_fn(form: str, module: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> Callable[[], object]:
    dtype = DTYPES[form.split()[-1]]
    m = copy.deepcopy(module).to(device=device, dtype=dtype)  # a copy: .to() casts in place, and fp16 would stay
    x = batch.to(device=device, dtype=dtype)
    if dtype != torch.float32:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if form.startswith("CUDA graph"):
        if device.type != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device")
        return cuda_graph(m, x)
    if form.startswith("torch.compile"):
        compiled = torch.compile(m, mode="reduce-overhead" if device.type == "cuda" else "default", fullgraph=False)
        return lambda: compiled(x)
    return lambda: m(x)


def gemm_rates(device: torch.device, n: int) -> dict[str, float]:
    """TFLOP/s of an n^3 matrix product per type (fp32 without TF32, TF32, fp16, bf16)."""
    rates = {}
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)):
        if device.type != "cuda" and name != "fp32":
            continue
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        sec = timed(lambda a=a, b=b: a @ b, device, repeats=5, block=10 if device.type == "cuda" else 1, warmup=3)
        torch.backends.cuda.matmul.allow_tf32 = old
        rates[name] = round(2 * n ** 3 / sec / 1e12, 1)
    return rates


def label_agreement(model: torch.nn.Module, data: Path, device: torch.device, limit: int) -> dict[str, float]:
    """fp16 / bf16 labels against fp32 labels on real images at full resolution (padded to the stride)."""
    import numpy as np

    from pixelwise.runtime.imageio import read_image

    files = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:limit]
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1) * 255
    stride = int(getattr(model, "stride", 32))
    same = {k: 0 for k in ("fp16", "bf16")}
    total = 0
    nets = {k: copy.deepcopy(Labels(model)).to(device=device, dtype=DTYPES[k]).eval() for k in DTYPES}
    for f in files:
        img = torch.from_numpy(np.ascontiguousarray(read_image(f))).to(device).permute(2, 0, 1)[None].float()
        h, w = img.shape[-2:]
        x = (img - mean) / std
        x = F.pad(x, (0, -w % stride, 0, -h % stride))
        with torch.inference_mode():
            ref = nets["fp32"](x)[..., :h, :w]
            for k in same:
                same[k] += int((nets[k](x.to(DTYPES[k]))[..., :h, :w] == ref).sum())
        total += h * w
    return {k: round(v / max(total, 1), 6) for k, v in same.items()} | {"images": len(files)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", help="a trained pixelwise checkpoint (default: the default model, untrained)")
    ap.add_argument("--data", help="a folder of images for the fp16/bf16 label agreement (with --checkpoint)")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no further form is started")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts: a smoke test of the script")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu.json"))
    a = ap.parse_args()
    t0 = time.monotonic()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine (or --device cpu --quick for a smoke test)")
    torch.backends.cudnn.benchmark = True
    h, w = (64, 96) if a.quick else (H, W)
    batches = [1, 2] if a.quick else [int(b) for b in a.batches.split(",")]
    repeats, block, warmup = (2, 1, 1) if a.quick else (a.repeats, 20, 10)
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "python": sys.version.split()[0]}
    print(env, flush=True)
    res: dict = {"env": env, "size": [h, w], "batches": batches, "gemm_tflops": gemm_rates(device, 256 if a.quick else 8192),
                 "rows": [], "skipped": []}
    print(res["gemm_tflops"], flush=True)
    try:
        pw, pw_name = pixelwise_model(a.checkpoint)
    except Exception as exc:  # noqa: BLE001 - e.g. another timm there: time the architecture, untrained
        res["skipped"].append(f"checkpoint {a.checkpoint}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        print("skipped", res["skipped"][-1], flush=True)
        pw, pw_name = pixelwise_model(None)
        a.data = None  # the label agreement needs the trained weights
    contenders = [(pw_name, lambda: Labels(pw))] + peer_models()
    torch.manual_seed(0)
    modules: dict[str, torch.nn.Module] = {}
    for name, build in contenders:
        try:
            modules[name] = build().eval()
        except Exception as exc:  # noqa: BLE001 - a missing peer package is reported, not fatal
            res["skipped"].append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            print("skipped", res["skipped"][-1], flush=True)

    def run(name: str, form: str, b: int) -> None:
        if time.monotonic() - t0 > a.budget:
            res["skipped"].append(f"{name}, {form}, batch {b}: time budget ({a.budget:.0f} s) spent")
            return
        module = modules[name]
        try:
            with torch.inference_mode() if not form.startswith("torch.compile") else torch.no_grad():
                t = time.monotonic()
                fn = form_fn(form, module, torch.randn(b, 3, h, w), device)
                sec = timed(fn, device, repeats, block, warmup)
                setup = time.monotonic() - t
        except Exception as exc:  # noqa: BLE001 - e.g. CUDA graphs on the CPU smoke test
            res["skipped"].append(f"{name}, {form}, batch {b}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            return
        row = {"model": name, "form": form, "batch": b, "ms_per_image": round(sec * 1000 / b, 4),
               "images_per_s": round(b / sec, 1), "setup_s": round(setup, 1),
               "params_m": round(sum(p.numel() for p in module.parameters()) / 1e6, 2)}
        res["rows"].append(row)
        print(row, flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2))  # what a call stopped at its limit still returns

    # The quick forms for every model first, then the label agreement, then compiling (about a
    # minute per model and batch size), pixelwise and yolo26n-sem first: what the budget cuts is
    # the least needed.
    for name in modules:
        for form in FORMS[:-1]:
            for b in batches:
                run(name, form, b)
    if a.checkpoint and a.data:
        res["agreement"] = label_agreement(pw, Path(a.data), device, 8 if a.quick else 101)
        print(res["agreement"], flush=True)
    order = sorted(modules, key=lambda n: (n != pw_name, "yolo" not in n))
    for name in order:
        for b in batches:
            run(name, FORMS[-1], b)
        torch._dynamo.reset()
    res["seconds"] = round(time.monotonic() - t0, 1)
    from report import save_results

    save_results(res, a.out, write_markdown)
    return 0


def write_markdown(res: dict, path: Path) -> None:
    from report import section, table, write_lines

    env = res["env"]
    h, w = res["size"]
    lines = [*section("GPU inference", f"{env['device']}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}",
                      f"- **Input:** {h}x{w}, normalised batch already on the device -> label map at the input size",
                      "- **Matrix products (TFLOP/s, 8192^3):** " + ", ".join(f"{k} {v}" for k, v in res["gemm_tflops"].items())),
             *table(["model", "form", "batch", "ms / image", "images / s", "set-up + timing s"],
                    ([r["model"], r["form"], r["batch"], f"{r['ms_per_image']:.3f}", r["images_per_s"], r["setup_s"]]
                     for r in res["rows"]), "llrrrr")]
    if res.get("agreement"):
        ag = res["agreement"]
        lines += ["", f"pixelwise's labels in fp16 / bf16 against fp32, {ag['images']} images at full resolution: "
                  f"{ag['fp16'] * 100:.3f}% / {ag['bf16'] * 100:.3f}% of pixels."]
    if res["skipped"]:
        lines += ["", "Not run: " + "; ".join(res["skipped"]) + "."]
    write_lines(path, lines)


if __name__ == "__main__":
    raise SystemExit(main())
