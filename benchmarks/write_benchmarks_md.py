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
keeps its accuracy (71.70 val mIoU through ONNX Runtime vs 71.58 in PyTorch) and runs 6-7x
(batch 1) and 11-14x (batch 8) faster than PyTorch eager. Against yolo26n-sem's own ONNX export,
timed in alternation (this VM's speed jumps between phases that last seconds, so contenders timed
in turn land in different phases), it was faster in all five runs of the day: 1.24x, 1.09x,
1.16x, 1.12x and 1.09x at batch 1, 1.11x, 1.12x, 1.16x, 1.09x and 1.15x at batch 8 (the last
run is below; the first three alternated call by call, the last two A A B B with the second call
timed).
The share of the fp32 GEMM rate is now taken against the best of three GEMM engines (torch.mm
reached about half of ONNX Runtime's and OpenVINO's rate on this CPU; the 2026-11-25 figure of
78.8% was against torch.mm alone): 53.2%, 63.3%, 61.8%, 56.6% and 65.4% in the five runs, so the
60% target is not reliably met here.
OpenVINO is now run with its precision hint at f32 for fp32 and int8 exports (it silently ran
them in bf16 on this CPU before, which is faster but not what the export check verified); at f32
its CPU plugin is slower than ONNX Runtime here.
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
