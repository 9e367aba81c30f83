"""``pixelwise export MODEL --format onnx|openvino|torchscript``: parse, then call ``export()``."""
from __future__ import annotations

import argparse

from pixelwise.cli import size_arg


def cmd_export(a: argparse.Namespace) -> int:
    from pixelwise.export import ExportError, export

    if a.outputs is not None and not a.pipeline:  # a logits graph has one output: the option would be ignored
        raise ExportError(f"--outputs {a.outputs} only applies to --pipeline exports.",
                          fix="add --pipeline or drop --outputs")
    if a.calib_images is not None and not a.int8:
        raise ExportError(f"--calib-images {a.calib_images} only applies to --int8 exports.",
                          fix="add --int8 or drop --calib-images")
    outputs = a.outputs or "labels,probabilities"
    res = export(a.model, a.format, a.out, fp16=a.fp16, int8=a.int8, calib=a.calib,
                 calib_images=32 if a.calib_images is None else a.calib_images,
                 pipeline=a.pipeline, imgsz=a.imgsz,
                 outputs=tuple(o.strip() for o in outputs.split(",") if o.strip()), images=a.images,
                 opset=a.opset, check=not a.no_verify,
                 min_agreement=None if a.min_agreement is None else a.min_agreement / 100.0)
    print(f"exported: {res.path} ({res.format}, {res.metadata.graph} graph, {res.metadata.precision}) "
          f"in {res.seconds:.1f}s")
    if res.metadata.quantization:
        print(f"int8: calibrated on {res.metadata.quantization['calibration_images']} image(s)")
    print(f"metadata: {res.sidecar}")
    if res.report:
        print(res.report.line())
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a checkpoint to ONNX / OpenVINO / TorchScript (verified)")
    e.add_argument("model", help="checkpoint (.pt)")
    e.add_argument("--format", default="onnx", choices=["onnx", "openvino", "torchscript"])
    e.add_argument("--out", help="output file (default: next to the checkpoint)")
    e.add_argument("--fp16", action="store_true", help="half-precision weights and compute")
    e.add_argument("--int8", action="store_true",
                   help="int8 post-training quantization (onnx/openvino): about 1.5x faster on CPU")
    e.add_argument("--calib", help="with --int8: calibration images (default: the training split)")
    e.add_argument("--calib-images", type=int, help="with --int8: how many (default 32)")
    e.add_argument("--pipeline", action="store_true",
                   help="embed pre/post-processing: uint8 HxWx3 image in, labels/probabilities out")
    e.add_argument("--imgsz", type=size_arg, help="with --pipeline: resize to H,W inside the graph")
    e.add_argument("--outputs", help="with --pipeline: labels, probabilities or both (default: both)")
    e.add_argument("--images", help="real images to verify on (default: the training dataset's val images)")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--min-agreement", type=float, default=None,
                   help="required pixel agreement with PyTorch in %% (default 99.9; 95 with --int8)")
    e.add_argument("--no-verify", action="store_true", help="skip the check against PyTorch (not advised)")
    e.set_defaults(func=cmd_export)
