"""CPU inference benchmark (2 threads, 384x480, batch 1 and 8) -> benchmarks/results/inference.md

Two tables, both with every contender in the same run:

1. Network forward (logits out): pixelwise's default model (ModelConfig's arch and encoder, 11
   classes) in PyTorch eager, and exported through pixelwise's own exporter (fp32 and int8) to
   ONNX Runtime and OpenVINO; SMP Unet on the same encoder (eager); Ultralytics yolo26n-sem (eager
   and its raw graph in ONNX Runtime). Also the GEMM rate of every matrix engine here (fp32: torch,
   ONNX Runtime, OpenVINO; int8: ONNX Runtime), timed in the same interleaved rounds, and the
   share of the best one of its precision each model reaches (model FLOPs / latency / GEMM rate).
2. Image -> full-resolution label map (what a user gets): PyTorch eager + arg-max vs pixelwise's
   exports fetching their in-graph 'labels' output vs yolo26n-sem exported *by Ultralytics*
   (`YOLO.export(format="onnx")`, whose graph upsamples and arg-maxes itself), 11 classes each.

Inputs are CamVid val images resized to 384x480 when ../shared is present (else random ones).
pixelwise's model is ``--checkpoint`` (a trained default model) when given: the cost of its
in-graph label map depends on the image and the weights (only blocks on class boundaries are
interpolated, see ``UpsampledLabels``), so the figures that matter come from trained weights on
real images; the report gives the share of such blocks. Without a checkpoint: untrained weights
with trained-like BatchNorm terms (``like_trained``; identical folded biases would change the
exported graphs). int8 is calibrated on CamVid training images when ../shared is present (else on
random images: same speed, meaningless accuracy).

    python benchmarks/inference.py [--checkpoint runs/x/best.pt] [--repeats 8] [--out benchmarks/results/inference.md]
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
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

from pixelwise.config import ModelConfig

THREADS = 2
H, W, C = 384, 480, 11
HERE = Path(__file__).resolve().parent
CAMVID_TRAIN = HERE.parent.parent / "shared" / "datasets" / "camvid" / "train" / "images"
CAMVID_VAL = CAMVID_TRAIN.parent.parent / "val" / "images"
ARCH, ENCODER = ModelConfig().arch, ModelConfig().encoder  # pixelwise's default model
PW = f"pixelwise {ARCH}+{ENCODER}"
PW_FPN = f"pixelwise fpn+{ENCODER} (earlier default)"
YOLO_NAME = "ultralytics yolo26n-sem"


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_jobs(n: int = 2048) -> list[tuple[str, str, float, Callable[[], object]]]:
    """(engine, precision, ops per call, call) for an n x n x n matrix product in every matrix
    engine of this script's stack, fp32 and int8; they are timed interleaved with the models, so
    the reference rate sees the same machine phases as the models it is compared with. The best
    engine per precision is the machine's attainable rate: one library alone can miss it (this
    torch build's CPU GEMM ran at half of ONNX Runtime's on an AVX-512 machine). int8: u8 x s8
    products (VNNI where the CPU has it), the arithmetic of the int8 exports."""
    rng = np.random.default_rng(0)
    a, b = rng.random((2, n, n), dtype=np.float32)
    ops = 2.0 * n ** 3
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    jobs: list[tuple[str, str, float, Callable[[], object]]] = [("torch.mm", "fp32", ops, lambda: torch.mm(ta, tb))]
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        def model(nodes, a_type, out_type, inits=()) -> Path:
            g = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("a", a_type, [n, n])],
                                  [helper.make_tensor_value_info("c", out_type, [n, n])], initializer=list(inits))
            proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
            proto.ir_version = 8
            path = Path(tempfile.mkdtemp(prefix="pw_gemm_")) / "gemm.onnx"
            onnx.save(proto, str(path))
            return path

        f32 = model([helper.make_node("MatMul", ["a", "b"], ["c"])], TensorProto.FLOAT, TensorProto.FLOAT,
                    [numpy_helper.from_array(b, "b")])
        s = ort_session(f32)
        jobs.append(("onnxruntime MatMul", "fp32", ops, lambda: s.run(None, {"a": a})))
        a8 = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b8 = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "b")
        mmi = ort_session(model([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], TensorProto.UINT8,
                                TensorProto.INT32, [b8]))
        jobs.append(("onnxruntime MatMulInteger", "int8", ops, lambda: mmi.run(None, {"a": a8})))
        q = [numpy_helper.from_array(np.array(v, dtype=t), k) for k, v, t in
             (("sa", 0.02, np.float32), ("za", 128, np.uint8), ("sb", 0.01, np.float32), ("zb", 0, np.int8),
              ("sc", 4.0, np.float32), ("zc", 128, np.uint8))]
        qlm = ort_session(model([helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"])],
                                TensorProto.UINT8, TensorProto.UINT8, [b8, *q]))
        jobs.append(("onnxruntime QLinearMatMul", "int8", ops, lambda: qlm.run(None, {"a": a8})))
        import openvino as ov

        core = ov.Core()
        req = core.compile_model(core.read_model(str(f32)), "CPU",
                                 {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        jobs.append(("openvino MatMul (f32)", "fp32", ops, lambda: req.infer({0: a})))
    except Exception as exc:  # noqa: BLE001 - torch's figure still stands
        print(f"GEMM rate of ONNX Runtime/OpenVINO not measured: {exc}")
    return jobs


def like_trained(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm trained-like statistics and affine terms. Fresh BatchNorms fold into
    identical conv biases, which the ONNX exporter merges into one shared constant; in an int8
    graph a bias shared with a quantized conv became a runtime DequantizeLinear that kept the
    float stem conv off ONNX Runtime's fast path (1.2 ms instead of 0.6). Trained models have
    distinct biases, so the timed graphs should too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


class NetworkOnly(torch.nn.Module):
    """Encoder + decoder: the logits at the head's stride, as the network computes them."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def cpu_description() -> str:
    """CPU model and the instruction sets that decide int8/bf16 speed (VNNI, AVX-512, AMX)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    keep = [f for f in ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return f"{model or platform.machine()} ({', '.join(keep) or 'no AVX2'})"


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


def eager_fn(model: torch.nn.Module, x: torch.Tensor, labels: bool = False):
    model = model.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

    def run():
        assert torch.get_num_threads() == THREADS, "something changed torch's thread count"
        with torch.inference_mode():
            y = model(x)
            if labels:
                if y.shape[-2:] != x.shape[-2:]:  # yolo: stride-8 logits
                    y = torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear")
                return y.argmax(1).to(torch.uint8)
            return y

    return run


def export_onnx(module: torch.nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool = True) -> Path:
    axes = {"input": {0: "batch", 2: "height", 3: "width"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(module).eval(), (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], dynamic_axes=axes)
    return path


def bench_images(n: int = 8) -> tuple[np.ndarray, str]:
    """n uint8 HxWx3 images: CamVid val images resized to HxW, or random ones without ../shared."""
    from PIL import Image

    files = sorted(f for f in CAMVID_VAL.glob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n] \
        if CAMVID_VAL.is_dir() else []
    if len(files) == n:
        ims = [np.asarray(Image.open(f).convert("RGB").resize((W, H), Image.BILINEAR)) for f in files]
        return np.stack(ims), f"the first {n} CamVid val images, resized to {H}x{W}"
    return (np.random.default_rng(0).random((n, H, W, 3)) * 255).astype(np.uint8), "random images (CamVid not found)"


def normalized(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 NxHxWx3 -> the model's normalised float32 NCHW input (pixelwise's own normalisation)."""
    from pixelwise.engine.evaluator import normalize_batch

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return normalize_batch(x, mean, std, torch.device("cpu")).contiguous().numpy()


def mixed_block_share(low_logits: np.ndarray) -> float:
    """Share of the blocks the in-graph label map interpolates (``UpsampledLabels``: the 2x2
    low-resolution neighbourhoods whose arg-max differs); the rest take the low-resolution label."""
    from pixelwise.export.graph import mixed_blocks

    labels = torch.from_numpy(low_logits).argmax(1, keepdim=True).float()
    return float(mixed_blocks(torch.nn.functional.pad(labels, (1, 1, 1, 1), mode="replicate")).float().mean())


def calibration_folder(tmp: Path) -> tuple[Path, str]:
    """CamVid training images when ../shared is here; else random images (speed only)."""
    if CAMVID_TRAIN.is_dir():
        return CAMVID_TRAIN, f"int8 calibrated on 32 CamVid training images ({CAMVID_TRAIN})"
    from PIL import Image

    folder = tmp / "calib"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder, "int8 calibrated on random images (CamVid not found): speed figures only"


def ultralytics_onnx(tmp: Path, batch: int) -> Path:
    """yolo26n-sem with 11 classes, exported by Ultralytics itself (its default ONNX settings)."""
    import shutil

    from ultralytics import YOLO
    from ultralytics.nn.tasks import SemanticSegmentationModel

    yolo = YOLO("yolo26n-sem.yaml")
    old = yolo.model
    yolo.model = like_trained(SemanticSegmentationModel("yolo26n-sem.yaml", nc=C, verbose=False))
    yolo.model.args, yolo.model.task = old.args, old.task  # what YOLO() sets and the exporter reads
    out = Path(yolo.export(format="onnx", imgsz=(H, W), batch=batch, device="cpu", verbose=False))
    dst = tmp / f"yolo26n-sem_ultralytics_b{batch}.onnx"
    shutil.move(str(out), dst)
    return dst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=8, help="interleaved rounds, 2 timed calls each (median taken)")
    ap.add_argument("--out", default=str(HERE / "results" / "inference.md"))
    ap.add_argument("--pairs", type=int, default=150, help="alternating calls per head-to-head (pixelwise vs yolo)")
    ap.add_argument("--checkpoint", help="a trained checkpoint of the default model (else untrained weights)")
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    from pixelwise.export import export
    from pixelwise.export.exporter import _export_onnx
    from pixelwise.export.graph import LogitsGraph
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.models.registry import create_model
    from pixelwise.runtime.backends import OpenVinoBackend, OrtBackend

    tmp = Path(tempfile.mkdtemp(prefix="pw_bench_"))
    rows: list[dict] = []
    notes: list[str] = []
    jobs: list[tuple[dict, Callable[[], object]]] = []
    for engine, prec, ops, fn in gemm_jobs():
        jobs.append((dict(table="gemm", name=engine, runtime=prec, batch=1, gflop=ops / 1e9), fn))
    duels: list[tuple[int, str, Callable[[], object], Callable[[], object]]] = []

    def record(table: str, name: str, runtime: str, batch: int, fn: Callable[[], object],
               gflop: float | None = None) -> None:
        """Queue a measurement; all run interleaved at the end (see ``run_interleaved``)."""
        jobs.append((dict(table=table, name=name, runtime=runtime, batch=batch, gflop=gflop), fn))

    # --- pixelwise default: eager vs its own exports (the product's exporter and runtime backends)
    torch.manual_seed(0)
    if a.checkpoint:
        seg = Segmenter.load(a.checkpoint, device="cpu")
        model = copy.deepcopy(seg.model).float().eval().to(memory_format=torch.contiguous_format)
        spec = (model.spec.get("arch"), model.spec.get("encoder"), model.num_classes)
        if spec != (ARCH, ENCODER, C):
            raise SystemExit(f"{a.checkpoint} is {spec}; this benchmark times the default {(ARCH, ENCODER, C)}")
        notes.append(f"pixelwise weights: {a.checkpoint} (trained default model)")
    else:
        model = like_trained(create_model(ARCH, ENCODER, C)).eval()
        seg = Segmenter(copy.deepcopy(model), [f"class{i}" for i in range(C)], [], 255, "cpu")
        notes.append("pixelwise weights: untrained (trained-like BatchNorm terms); the in-graph label map's "
                     "cost depends on the weights, pass --checkpoint for a trained model's figures")
    # PyTorch eager as pixelwise's own PyTorch predictor runs it: BatchNorm folded into the convs
    # (Segmenter.load does it; runs before the fifth session timed the unfolded model, 1.6x slower).
    from pixelwise.models.fuse import fold_batchnorm

    model, folded = fold_batchnorm(model.eval(), torch.randn(1, 3, 64, 96))
    notes.append("PyTorch eager rows of pixelwise run the model as its PyTorch predictor does, BatchNorm folded "
                 "into the convs" + (f" ({folded} folded here)" if folded else ""))
    images, images_note = bench_images()
    notes.append(f"inputs: {images_note}")
    feeds = {b: normalized(images[:b], model.mean, model.std) for b in (1, 8)}
    gf = flops(model, torch.randn(1, 3, H, W)) / 1e9
    calib, calib_note = calibration_folder(tmp)
    notes.append(calib_note)
    f32 = export(seg, "onnx", tmp / "fp32.onnx", check=False).path
    q8 = export(seg, "onnx", tmp / "int8.onnx", int8=True, calib=calib, check=False).path
    # OpenVINO gets its own exports (IR), as users get them from `pixelwise export --format openvino`.
    f32_ov = export(seg, "openvino", tmp / "ov" / "fp32.xml", check=False).path
    q8_ov = export(seg, "openvino", tmp / "ov" / "int8.xml", int8=True, calib=calib, check=False).path
    pipe = export(seg, "onnx", tmp / "pipe_int8.onnx", int8=True, calib=calib, pipeline=True,
                  outputs=("labels",), check=False).path
    # Another operating point (not the like-for-like comparison): the network at 0.75 scale inside
    # the graph, label map still at the input's 384x480. Its CamVid accuracy: deploy_accuracy.py.
    pipe75 = export(seg, "onnx", tmp / "pipe75_int8.onnx", int8=True, calib=calib, pipeline=True,
                    imgsz=(288, 360), outputs=("labels",), check=False).path
    backends = {"onnxruntime fp32": OrtBackend(f32, THREADS), "openvino fp32": OpenVinoBackend(f32_ov, THREADS),
                "onnxruntime int8": OrtBackend(q8, THREADS), "openvino int8": OpenVinoBackend(q8_ov, THREADS)}
    # The network alone (stride-4 logits, no upsampling or arg-max), like yolo26n-sem's raw row:
    # how well the runtime computes the model's FLOPs, apart from the full-resolution tail.
    raw = ort_session(export_onnx(NetworkOnly(model), torch.randn(1, 3, H, W), tmp / "pw_raw.onnx"))
    # The ONNX graph as written until 2026-12-02: logits upsampled to the input size in the graph
    # (NHWC Resize), labels arg-maxed from them. Same network, for the before/after of the tail.
    full_tail = tmp / "fp32_full_logits.onnx"
    _export_onnx(LogitsGraph(copy.deepcopy(model), labels=True, pad=False, channels_last=True).eval(), full_tail,
                 False, (), 17, True)
    full_tail_be = ort_session(full_tail)
    low = backends["onnxruntime fp32"].run(feeds[8], ["logits"])[0]
    notes.append(f"mixed blocks (2x2 stride-4 neighbourhoods whose arg-max differs; only these are interpolated "
                 f"by the in-graph label map): {mixed_block_share(low) * 100:.1f}% of the 8 input images' blocks")
    for b in (1, 8):
        x = torch.from_numpy(feeds[b])
        xn = feeds[b]
        record("forward", PW, "torch eager fp32", b, eager_fn(model, x), gf)
        for rt, be in backends.items():
            tag = " (stride-4 logits; labels computed too)"
            record("forward", PW, rt + tag, b, lambda be=be, xn=xn: be.run(xn, ["logits"]), gf)
        record("forward", PW, "onnxruntime fp32 (raw stride-4 logits)", b,
               lambda xn=xn: raw.run(None, {"input": xn}), gf)
        record("labels", PW, "torch eager fp32 + argmax", b, eager_fn(model, x, labels=True))
        for rt, be in backends.items():
            record("labels", PW, rt + " (in-graph labels)", b, lambda be=be, xn=xn: be.run(xn, ["labels"]), gf)
        record("labels", PW, "onnxruntime fp32, earlier graph (full-size logits, Resize + ArgMax)", b,
               lambda xn=xn: full_tail_be.run(["labels"], {"input": xn}), gf)
    # The earlier default head (Semantic FPN merged at stride 4), int8 like the default.
    torch.manual_seed(0)
    fpn_seg = Segmenter(like_trained(create_model("fpn", ENCODER, C)).eval(), [f"class{i}" for i in range(C)], [], 255, "cpu")
    fpn_q8 = OrtBackend(export(fpn_seg, "onnx", tmp / "fpn_int8.onnx", int8=True, calib=calib, check=False).path, THREADS)
    for b in (1, 8):
        record("labels", PW_FPN, "onnxruntime int8 (in-graph labels)", b, lambda xn=feeds[b]: fpn_q8.run(xn, ["labels"]))
    image = np.ascontiguousarray(images[0])
    pipe_be = OrtBackend(pipe, THREADS)
    record("labels", PW, "onnxruntime int8 pipeline (uint8 image in)", 1, lambda: pipe_be.run(image, ["labels"]))
    pipe75_be = OrtBackend(pipe75, THREADS)
    record("labels", PW, "onnxruntime int8 pipeline, network at 288x360 inside", 1,
           lambda: pipe75_be.run(image, ["labels"]))

    # --- SMP Unet, same encoder
    try:
        import segmentation_models_pytorch as smp

        smp_model = like_trained(smp.Unet("tu-efficientnet_lite0", encoder_weights=None, classes=C)).eval()
        sgf = flops(smp_model, torch.randn(1, 3, H, W)) / 1e9
        for b in (1, 8):
            record("forward", "smp Unet tu-efficientnet_lite0", "torch eager fp32", b,
                   eager_fn(smp_model, torch.from_numpy(feeds[b])), sgf)
    except Exception as exc:  # noqa: BLE001 - report, do not fail the whole benchmark
        notes.append(f"SMP row skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    # --- Ultralytics yolo26n-sem, 11 classes: eager, raw graph, and Ultralytics' own ONNX export
    try:
        from ultralytics.nn.tasks import SemanticSegmentationModel

        yolo = like_trained(SemanticSegmentationModel("yolo26n-sem.yaml", nc=C, verbose=False)).eval()
        for p in yolo.parameters():
            p.requires_grad_(False)
        ygf = flops(yolo, torch.randn(1, 3, H, W)) / 1e9
        ysess = ort_session(export_onnx(yolo, torch.randn(1, 3, H, W), tmp / "yolo_raw.onnx"))
        ult = {b: ort_session(ultralytics_onnx(tmp, b)) for b in (1, 8)}
        # yolo26n-sem's input: RGB scaled to [0, 1] (Ultralytics' own preprocessing).
        yfeeds = {b: np.ascontiguousarray(images[:b].transpose(0, 3, 1, 2), np.float32) / 255.0 for b in (1, 8)}
        for b in (1, 8):
            s = ult[b]
            for rt in ("onnxruntime int8", "openvino int8"):  # pixelwise's two runtimes, each against it
                duels.append((b, rt, lambda be=backends[rt], xn=feeds[b]: be.run(xn, ["labels"]),
                              lambda s=s, xn=yfeeds[b]: s.run(None, {s.get_inputs()[0].name: xn})))
        for b in (1, 8):
            xn = yfeeds[b]
            x = torch.from_numpy(xn)
            record("forward", YOLO_NAME, "torch eager fp32", b, eager_fn(yolo, x), ygf)
            record("forward", YOLO_NAME, "onnxruntime fp32 (raw stride-8 logits)", b,
                   lambda xn=xn: ysess.run(None, {"input": xn}), ygf)
            record("labels", YOLO_NAME, "torch eager fp32 + upsample + argmax", b, eager_fn(yolo, x, labels=True))
            s = ult[b]
            feed = {s.get_inputs()[0].name: xn}
            record("labels", YOLO_NAME, "onnxruntime fp32 (Ultralytics export)", b,
                   lambda s=s, feed=feed: s.run(None, feed))
    except Exception as exc:  # noqa: BLE001 - report, do not fail the whole benchmark
        msg = f"yolo26n-sem skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(msg)
        notes.append(msg)

    # Ultralytics' exporter (select_device) sets torch to cpu_count - 1 threads, 1 on this 2-core VM:
    # every PyTorch eager row timed after it ran on one thread until the fifth session.
    torch.set_num_threads(THREADS)
    notes.append(f"PyTorch eager rows run with torch.get_num_threads() = {torch.get_num_threads()} (reset after "
                 "Ultralytics' exporter, which sets cpu_count - 1; runs before the fifth session timed eager "
                 "on 1 thread)")
    measured = run_interleaved(jobs, a.repeats)
    gemms = {(r["name"], r["runtime"]): r["gflop"] * 1e9 / sec for r, sec in measured if r["table"] == "gemm"}
    best_gemm = {p: max(v for (_, q), v in gemms.items() if q == p) for p in {q for _, q in gemms}}
    print("GEMM 2048^3: " + ", ".join(f"{k} {p} {v / 1e9:.1f}" for (k, p), v in gemms.items()) + " G(FL)OP/s")
    for row, sec in measured:
        if row["table"] == "gemm":
            continue
        b = row["batch"]
        ref = best_gemm.get("int8" if "int8" in row["runtime"] else "fp32")
        row.update(ms=sec * 1000 / b, ips=b / sec,
                   pct=(row["gflop"] * 1e9 * b / sec) / ref * 100 if row["gflop"] and ref else None)
        rows.append(row)
    head_to_head = [dict(batch=b, runtime=rt, **run_paired(fa, fb, a.pairs)) for b, rt, fa, fb in duels]
    write_report(Path(a.out), rows, gemms, best_gemm, notes, head_to_head, " ".join(["python", "benchmarks/inference.py", *sys.argv[1:]]))
    print(f"written: {a.out}")
    return 0


def run_interleaved(jobs: list[tuple[dict, Callable[[], object]]], rounds: int) -> list[tuple[dict, float]]:
    """Median seconds per call of every job, measured in rounds that visit every job once.

    This machine is a shared VM whose speed drifts by tens of percent over minutes; timing one
    contender after another would hand the drift to whoever ran in a slow minute. Interleaving
    gives every contender the same mix of fast and slow minutes."""
    for _, fn in jobs:  # warm-up (first-run allocations, OpenVINO/ORT lazy init)
        fn()
        fn()
    times: list[list[float]] = [[] for _ in jobs]
    for r in range(rounds):
        for i, (_, fn) in enumerate(jobs):
            # Lets the previous contender's thread pool go idle: ONNX Runtime's threads spin after a
            # call, and an OpenVINO call straight after one took 22 ms instead of 18 (untimed call
            # or not); after 50 ms of sleep it took 18. The untimed call then warms this contender.
            time.sleep(0.05)
            fn()
            for _ in range(2):
                t = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t)
        print(f"round {r + 1}/{rounds}", flush=True)
    out = []
    for (row, _), ts in zip(jobs, times):
        sec = statistics.median(ts)
        out.append((row, sec))
        print(f"[{row['table']}] {row['name']:<34}{row['runtime']:<44} batch {row['batch']}: "
              f"{sec * 1000 / row['batch']:8.1f} ms/img", flush=True)
    return out


def run_paired(fa: Callable[[], object], fb: Callable[[], object], pairs: int) -> dict:
    """Head-to-head: A and B in alternation, A A B B A A B B ..., the second call of each couple timed.

    This VM's speed jumps between a fast and a slow phase that last seconds (the same call took
    8 ms and 20 ms within one minute), so contenders timed in turn, even round by round, land
    in different phases; alternating every few milliseconds gives both the same phases. Each
    couple starts after 50 ms idle: the other session's thread pool keeps spinning after its
    call returns, and an untimed call alone did not absorb it (both contenders took 22.5 ms at
    batch 1 without the pause, 11 and 13 with it, as each does alone). The ratio of each pair is
    compared; the median over pairs is the figure."""
    for _ in range(3):
        fa(), fb()
    ta, tb = [], []
    for _ in range(pairs):
        for fn, ts in ((fa, ta), (fb, tb)):
            time.sleep(0.05)
            fn()
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    ratios = sorted(b / a for a, b in zip(ta, tb))
    return dict(pairs=pairs, a_ms=statistics.median(ta) * 1000, b_ms=statistics.median(tb) * 1000,
                a_p10=float(np.percentile(ta, 10)) * 1000, b_p10=float(np.percentile(tb, 10)) * 1000,
                ratio=statistics.median(ratios), ratio_p25=float(np.percentile(ratios, 25)),
                ratio_p75=float(np.percentile(ratios, 75)))


def write_report(path: Path, rows: list[dict], gemms: dict[tuple[str, str], float], best_gemm: dict[str, float],
                 notes: list[str], head_to_head: list[dict], command: str) -> None:
    import onnxruntime
    import openvino

    def best(table: str, name: str, b: int, runtimes: tuple[str, ...], full_scale: bool = False) -> dict | None:
        cand = [r for r in rows if r["table"] == table and r["name"] == name and r["batch"] == b
                and r["runtime"].startswith(runtimes) and not (full_scale and "inside" in r["runtime"])
                and "raw" not in r["runtime"] and "earlier graph" not in r["runtime"]]
        return min(cand, key=lambda r: r["ms"]) if cand else None

    def table(kind: str, with_flops: bool) -> list[str]:
        head = "| model | runtime | batch | ms / image | images / s |" + (" GFLOPs / image | % GEMM |" if with_flops else "")
        out = [head, "|---|---|---:|---:|---:|" + ("---:|---:|" if with_flops else "")]
        for r in (r for r in rows if r["table"] == kind):
            cells = f"| {r['name']} | {r['runtime']} | {r['batch']} | {r['ms']:.1f} | {r['ips']:.2f} |"
            if with_flops:
                cells += f" {r['gflop']:.2f} | {r['pct']:.1f} |" if r["pct"] else " | |"
            out.append(cells)
        return out

    lines = ["## Inference speed (CPU)", "",
             f"- **Date:** {dt.datetime.now().isoformat(timespec='seconds')}",
             f"- **Machine:** {cpu_description()}, {THREADS} threads; torch "
             f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, "
             f"python {sys.version.split()[0]}",
             f"- **Command:** `{command}`",
             "- **Input:** 384x480, 11 classes, batch 1 and 8, median of interleaved rounds (every contender once per round; "
             "the head-to-head with yolo26n-sem alternates every two calls); images and weights in the notes "
             "below (pixelwise's in-graph label map costs more where more of the image lies on class "
             "boundaries; no other row depends on the values).",
             *[f"- {prec} GEMM rate (2048x2048x2048, {THREADS} threads, timed in the same interleaved rounds "
               "as the models), best of " + ", ".join(f"{k} {v / 1e9:.1f}" for (k, q), v in gemms.items() if q == prec)
               + f": **{best_gemm[prec] / 1e9:.1f} G{'FL' if prec == 'fp32' else ''}OP/s**"
               for prec in ("fp32", "int8") if prec in best_gemm],
             "- '% GEMM' = the model's FLOPs per second / the best GEMM rate of its own precision (fp32 rows: "
             "fp32 GEMM; int8 rows: int8 GEMM, the model's multiply-adds counted as for fp32). OpenVINO runs "
             "fp32 and int8 exports with its precision hint at f32, as pixelwise's runtime sets it.", "",
             "### Network forward (logits out)", "",
             "pixelwise's exports keep their logits at the network's stride (the runtime upsamples them "
             "only when scores are asked for) and both runtimes compute every output of a graph, so their rows "
             "here include the in-graph label map; the raw row is the network alone.", "",
             *table("forward", True), "",
             "### Image to full-resolution label map", "",
             "What a user gets: an HxW label map at the input size. pixelwise's exports fetch their in-graph "
             "'labels' output; yolo26n-sem is the ONNX file Ultralytics' own exporter writes (it upsamples "
             "and arg-maxes inside the graph).", "", *table("labels", True), ""]
    if head_to_head:
        lines += ["### Head to head: deployed default vs yolo26n-sem", "",
                  f"{PW} exported with `--int8` (ONNX Runtime, and OpenVINO with its own export), in-graph labels, against yolo26n-sem's "
                  "Ultralytics ONNX export, called in alternation (A A B B ..., each couple after 50 ms idle, "
                  "the second call of each couple timed) so both see the same machine phase; 'speed ratio' is yolo's time / pixelwise's time "
                  "per pair (above 1: pixelwise is faster).", "",
                  "| batch | pixelwise runtime | pairs | pixelwise ms/img (median / p10) | yolo26n-sem ms/img (median / p10) | speed ratio: median (p25-p75) |",
                  "|---:|---|---:|---:|---:|---:|"]
        for d in head_to_head:
            b = d["batch"]
            lines.append(f"| {b} | {d['runtime']} | {d['pairs']} | {d['a_ms'] / b:.1f} / {d['a_p10'] / b:.1f} | "
                         f"{d['b_ms'] / b:.1f} / {d['b_p10'] / b:.1f} | **{d['ratio']:.2f}** "
                         f"({d['ratio_p25']:.2f}-{d['ratio_p75']:.2f}) |")
        lines.append("")
    for b in (1, 8):
        dep = best("labels", PW, b, ("onnxruntime", "openvino"), full_scale=True)
        eag = best("labels", PW, b, ("torch eager",))
        yolo = best("labels", YOLO_NAME, b, ("onnxruntime",))
        dep_f = best("forward", PW, b, ("onnxruntime", "openvino"))
        eag_f = best("forward", PW, b, ("torch eager",))
        if dep and eag:
            sp = eag["ms"] / dep["ms"]
            line = (f"- batch {b}: deployed default ({dep['runtime']}, {dep['ms']:.1f} ms/img) is **{sp:.2f}x** "
                    f"its PyTorch eager (target >= 2x: {'met' if sp >= 2 else 'NOT met'})")
            if dep_f and eag_f:
                line += f"; forward only: {eag_f['ms'] / dep_f['ms']:.2f}x ({dep_f['runtime']})"
            if yolo:
                line += (f"; in the table above, vs yolo26n-sem's Ultralytics ONNX ({yolo['ms']:.1f} ms/img): "
                         f"{yolo['ms'] / dep['ms']:.2f}x")
            for duel in (d for d in head_to_head if d["batch"] == b):
                line += (f"; head to head (alternating calls, {duel['runtime']}): **{duel['ratio']:.2f}x** "
                         f"yolo26n-sem's speed (target >= 1x: {'met' if duel['ratio'] >= 1 else 'NOT met'})")
            lines.append(line)
    low = best("labels", PW, 1, ("onnxruntime int8 pipeline, network at",))
    yolo1 = best("labels", YOLO_NAME, 1, ("onnxruntime",))
    if low and yolo1:
        lines.append(f"- other operating point (not like-for-like: the network runs at 288x360 inside the graph, "
                     f"labels at 384x480): {low['ms']:.1f} ms/img at batch 1, {yolo1['ms'] / low['ms']:.2f}x "
                     "yolo26n-sem's speed; its CamVid accuracy is in 'Deployed accuracy'")
    net = [r for r in rows if r["name"] == PW and r["pct"] and "raw" in r["runtime"]]
    if net:
        top = max(net, key=lambda r: r["pct"])
        lines.append(f"- the network alone (stride-4 logits, no full-resolution upsampling or arg-max) in fp32: "
                     f"{top['pct']:.1f}% of the fp32 GEMM rate ({top['runtime']}, batch {top['batch']})")
    fp32 = [r for r in rows if r["name"] == PW and r["pct"] and r["table"] == "labels"
            and not r["runtime"].startswith("torch") and "int8" not in r["runtime"] and "earlier" not in r["runtime"]]
    for b in (1, 8):
        cand = [r for r in fp32 if r["batch"] == b]
        if not cand:
            continue
        top = max(cand, key=lambda r: r["pct"])
        before = next((r for r in rows if r["batch"] == b and "earlier graph" in r["runtime"]), None)
        was = f"; the earlier graph: {before['pct']:.1f}%" if before else ""
        lines.append(f"- batch {b}: share of the fp32 GEMM rate for the default model in fp32, whole graph (image "
                     f"to label map at the input size): {top['pct']:.1f}% ({top['runtime']}; target >= 60%: "
                     f"{'met' if top['pct'] >= 60 else 'NOT met'}){was}")
    int8 = [r for r in rows if r["name"] == PW and r["pct"] and "int8" in r["runtime"]]
    if int8 and "fp32" in best_gemm:
        top = max(int8, key=lambda r: r["pct"])
        mixed = top["gflop"] * 1e9 * top["ips"] / best_gemm["fp32"] * 100
        lines.append(f"- deployed default (int8): {top['gflop'] * top['ips']:.0f} GOP/s (its FLOPs counted as in "
                     f"fp32) = {top['pct']:.1f}% of the int8 GEMM rate ({top['runtime']}, batch {top['batch']}); "
                     f"against the fp32 GEMM rate, which mixes precisions: {mixed:.1f}%")
    for n in notes:
        lines.append(f"- note: {n}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
