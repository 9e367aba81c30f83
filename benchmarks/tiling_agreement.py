"""Tiled prediction: how far each deployed form's tiled labels are from the checkpoint's.

Tiling changes labels only where the tiles' views of a pixel disagree; an export should agree with
its checkpoint tiled as well as whole. For CamVid val images (360x480), a checkpoint, its fp32
logits ONNX export and its fp32 ``--pipeline`` ONNX export (uint8 image in, probabilities out)
predict each image whole and in tiles of each size; the table gives each form's pixel agreement
with the checkpoint's labels at the same tiling, and the checkpoint's tiled labels against its
whole-image ones.

    python benchmarks/tiling_agreement.py CHECKPOINT [--images 10] [--tiles 100,192,256] [--overlap 32]

CHECKPOINT: e.g. the best.pt ``make demo`` writes (runs/demo/best.pt).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAMVID = HERE.parent.parent / "shared" / "datasets" / "camvid"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--images", type=int, default=10, help="the first N CamVid val images")
    ap.add_argument("--tiles", default="100,192,256", help="tile sizes, comma-separated")
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--data", default=str(CAMVID / "val" / "images"), help="a folder of images")
    ap.add_argument("--out", default=str(HERE / "results" / "tiling_agreement.json"))
    a = ap.parse_args()
    from pixelwise.export import export
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.runtime import RuntimeSegmenter
    from pixelwise.runtime.imageio import read_image
    from pixelwise.utils import set_threads

    set_threads()
    files = sorted(p for p in Path(a.data).iterdir() if p.suffix.lower() in (".jpg", ".png"))[:a.images]
    if not files:
        raise SystemExit(f"no images in {a.data}: pass --data FOLDER")
    tiles = [int(t) for t in a.tiles.split(",")]
    with tempfile.TemporaryDirectory(prefix="pw_tile_agree_") as tmp:
        forms = {"PyTorch checkpoint": Segmenter.load(a.checkpoint, device="cpu")}
        for name, kw in (("ONNX fp32 (logits)", {}), ("ONNX fp32 pipeline (probabilities out)", {"pipeline": True})):
            res = export(a.checkpoint, format="onnx", out=Path(tmp) / f"{len(forms)}.onnx", **kw)
            forms[name] = RuntimeSegmenter.load(res.path)
        images = [read_image(f) for f in files]

        def tiling(t: int | None) -> dict:
            return {"tile": t, "overlap": a.overlap} if t else {}

        ref = {(t, i): forms["PyTorch checkpoint"].predict(im, **tiling(t)).labels
               for t in [None, *tiles] for i, im in enumerate(images)}
        rows = []
        for t in [None, *tiles]:
            row = {"tile": t or "whole image"}
            for name, seg in forms.items():
                eq = tot = 0
                for i, im in enumerate(images):
                    if name == "PyTorch checkpoint":  # its tiled labels against its whole-image ones
                        labels, reference = ref[(t, i)], ref[(None, i)]
                    else:  # an export's labels against the checkpoint's at the same tiling
                        labels, reference = seg.predict(im, **tiling(t)).labels, ref[(t, i)]
                    eq += int((labels == reference).sum())
                    tot += labels.size
                row[name] = round(eq / tot, 6)
            rows.append(row)
            print(row, flush=True)
    res = {"checkpoint": a.checkpoint, "images": [f.name for f in files], "size": list(images[0].shape[:2]),
           "overlap": a.overlap, "rows": rows}
    sys.path.insert(0, str(HERE))
    from report import save_results

    save_results(res, a.out, write_markdown)
    return 0


def write_markdown(res: dict, path: Path) -> None:
    from report import section, table, write_lines

    forms = [k for k in res["rows"][0] if k != "tile"]
    h, w = res["size"]
    lines = [*section("Tiled prediction: agreement of the exports with the checkpoint", None,
                      f"- **Input:** {len(res['images'])} CamVid val images ({h}x{w}), overlap {res['overlap']} px; "
                      f"checkpoint `{res['checkpoint']}`; exports made by `pixelwise.export.export` in the same run"),
             *table(["tiling", "checkpoint: tiled vs whole", *(f"{f} vs checkpoint" for f in forms[1:])],
                    ([r["tile"], f"{r[forms[0]] * 100:.2f}%", *(f"{r[f] * 100:.2f}%" for f in forms[1:])]
                     for r in res["rows"]), "l" + "r" * len(forms)),
             "",
             "Each export row compares its labels with the checkpoint's at the same tiling (the whole-image "
             "row is the export check's measure). The logits export blends tiles at the network's stride as the "
             "checkpoint does; the pipeline graph outputs full-resolution probabilities, so its tiles are "
             "blended after upsampling, and its labels differ on class boundaries where tiles overlap."]
    write_lines(path, lines)


if __name__ == "__main__":
    raise SystemExit(main())
