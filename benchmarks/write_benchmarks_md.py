"""Assemble BENCHMARKS.md from the result files the benchmark scripts write.

Each script writes its own section to benchmarks/results/<name>.md (machine, date, command,
peers' numbers from the same run); this script only concatenates them, in a fixed order, so the
figures in BENCHMARKS.md are always the ones a script produced.

    .venv/bin/python benchmarks/write_benchmarks_md.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["camvid.md", "camvid_default.md", "camvid_default_deploy.md", "camvid_fpn64.md", "step_time.md", "data_loading.md", "inference.md",
         "deploy_accuracy.md", "serve_load.md"]

HEADER = """# Benchmarks

Every figure below was produced by a script in `benchmarks/` (its command is given with it) and
copied here by `benchmarks/write_benchmarks_md.py`. Timings are wall-clock on the machine named in
each section; peers ran in the same script, on the same machine.

Training (CamVid, 25 minutes on 2 CPU cores): the default recipe is now FPN-Lite on
EfficientNet-Lite0, 71.58 val mIoU (57.5 epochs at 14.15 img/s), against 68.19 for the earlier
FPN default (26.1 epochs at 6.45 img/s) and, in the side-by-side run, SMP Unet-EffLite0 33.62 and
yolo26n-sem 17.99. The issue that set the target quotes peers measured with its own set-up (SMP
43.3, yolo26n-sem 32.9); the settings used here are in the table's details. pixelwise clears the
target (>= 48.3) and the ambition (55) against either set, with no class at zero.

Deployment, 2026-12-02 afternoon (this session's VM was an Intel Xeon with AVX-512 VNNI and AMX;
the morning's runs, summarised below, were on an AMD EPYC with AVX-512 VNNI and BF16, no AMX).
ONNX and OpenVINO exports now compute their label map without upsampling the logits
(`UpsampledLabels`: a pixel between four low-resolution samples that share one arg-max has that
arg-max, so only the blocks on class boundaries are interpolated; 8.6% of the benchmark images'
blocks) and keep their logits at the network's stride. In the same runs, same trained weights,
CamVid images, the fp32 ONNX graph took 14.5-16.4 ms at batch 1 where the earlier graph took
17.1-18.2 (labels identical in an A/B before). The checkpoint is a fresh training of the default
recipe by the same command as "the current default recipe" below (its own section follows it):
71.46 val mIoU. Its int8 export scores 70.81 through ONNX Runtime and 70.84 through OpenVINO
(both with the new label map; fp32 export 71.46, identical
to PyTorch); the morning's checkpoint (71.58) kept 71.69 in int8: calibration moves int8
accuracy by a few tenths either way.
Speed, three inference runs on CamVid images (the last one below): the int8 deployed default is
6.2-6.8x (batch 1) and 10.7-13.3x (batch 8) faster than PyTorch eager, and faster than
yolo26n-sem's own ONNX export timed in alternation: through ONNX Runtime 1.25-1.27x at batch 1
and 1.32x at batch 8; through OpenVINO (now the faster runtime for the int8 model on this Intel
CPU; measured in the last run) 1.41x and 1.60x. Share of the fp32 GEMM rate (307-373 GFLOP/s for
the 2048^3 fp32 GEMM, ONNX Runtime or OpenVINO, in the same rounds): the whole fp32 graph, image
to label map, 55.7-58.4% at batch 1 and 52.9-54.4% at batch 8 (the earlier graph, same runs:
49.5-50.7% and 46.7-47.6%); the network alone 61.0-62.2%. The 60% target is not met on this
machine: what keeps the graph below it is memory-bound work at stride 2 (the 16->96 expansion
conv of the first stride-4 block writes 17.7 MB per image at 95 GFLOP/s and its depthwise conv
runs at 31: 2.1 ms of 14.5 in ONNX Runtime's node profile; running that part in strips of rows
to stay in cache was slower), no longer the graph's tail. With AMX, int8 GEMMs run at 3.5-4.4
TOP/s, so the int8 model reaches 7-10% of the int8 GEMM rate (98-124% of the fp32 one, counted
in fp32 FLOPs).
The morning (AMD EPYC, earlier graph with full-size logits; six runs): int8 5.1-6.6x (batch 1)
and 11.6-13.5x (batch 8) faster than eager; 1.07-1.34x yolo26n-sem's speed at batch 1 and
1.02-1.20x at batch 8 in alternating timings; whole fp32 graph 51.0-63.8% of the fp32 GEMM rate
(network alone 58.7-71.1%); int8 71.69 / 71.73 val mIoU (ONNX Runtime / OpenVINO) for the
71.58 checkpoint.
OpenVINO runs fp32 and int8 exports with its precision hint at f32 (by default it computes them
in bf16 on these CPUs, which the export check did not verify); its label map tail went from 2.5
to 1.2 ms per image at batch 1 (3.9 to 1.1 at batch 8) with `UpsampledLabels`.
No GPU was lent to this task, so the GPU figures the issues ask for are not here.
"""


def main() -> None:
    results = HERE / "results"
    parts = [HEADER]
    names = ORDER + sorted(p.name for p in results.glob("*.md") if p.name not in ORDER)
    for name in names:
        path = results / name
        if path.exists():
            text = path.read_text().strip()
            if text.startswith("# "):  # demote each file's title to a section
                text = "#" + text
            parts.append(text)
    (HERE.parent / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {HERE.parent / 'BENCHMARKS.md'} from {len(parts) - 1} result file(s)")


if __name__ == "__main__":
    main()
