"""Assemble BENCHMARKS.md from the result files the benchmark scripts write.

Each script writes its own section to benchmarks/results/<name>.md (machine, date, command,
peers' numbers from the same run); this script only concatenates them, in a fixed order, so the
figures in BENCHMARKS.md are always the ones a script produced.

    .venv/bin/python benchmarks/write_benchmarks_md.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["camvid.md", "camvid_default.md", "camvid_fpn64.md", "step_time.md", "data_loading.md", "inference.md",
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

Deployment (2026-12-02, an AMD EPYC with AVX-512 VNNI and BF16; the 2026-11-25 figures came from
an AVX2 machine without VNNI, where int8 gained far less): the default exported with `--int8`
(stem now quantized too) keeps its accuracy (71.69 val mIoU through ONNX Runtime, 71.73 through
OpenVINO, vs 71.58 in PyTorch) and ran 5.1-6.6x (batch 1) and 11.6-13.5x (batch 8) faster than
PyTorch eager in the six runs of the inference benchmark after that change (below: the last).
Against yolo26n-sem's own ONNX export, timed in alternation (this VM's speed jumps between
phases that last seconds), it was faster in every run: 1.15x, 1.14x, 1.08x at batch 1 and 1.14x,
1.17x, 1.02x at batch 8 in the first three; the last three paused 50 ms before each couple of
calls (ONNX Runtime's pool keeps spinning after a call: without the pause both contenders took
about twice their own time at batch 1): 1.07x, 1.16x, 1.34x at batch 1 and 1.16x, 1.10x, 1.20x
at batch 8.
Share of the GEMM rate, with the GEMMs now timed in the same interleaved rounds as the models
(earlier runs timed them once, up front, in whatever phase that was) and an int8 reference
added (ONNX Runtime's u8 x s8 GEMMs, 1.0-1.3 TOP/s with VNNI): the whole fp32 graph (image to
label map at the input size) reached 63.8%, 56.5%, 52.3%, 51.0%, 63.7% and 63.8% of the fp32
GEMM rate in the six runs (the first five computed from their tables' label-map rows and GEMM
rates; the script printed the share of the logits-out rows then, which also copy the
full-resolution logits: 61.2%, 56.0%, 54.0%, 49.0%, 49.7%). The network alone, without the
full-resolution upsampling and arg-max: 58.7%, 71.1% and 69.3% in the last three. So the 60%
target is not reliably met here. The deployed int8 model reached 24-31% of the int8 GEMM rate;
counted against the fp32 GEMM rate, the reference the issue quotes (which mixes precisions),
89-109%.
OpenVINO runs fp32 and int8 exports with its precision hint at f32 (by default it computes them
in bf16 on this CPU, which the export check did not verify). Its exports now upsample NCHW and
arg-max over the last axis (its TopK over the channels of NCHW took 4 of 20 ms); until today the
benchmark's OpenVINO fp32 row also ran the ONNX file laid out for ONNX Runtime (now its own IR:
31.7 -> 17-20 ms in the day's runs).
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
