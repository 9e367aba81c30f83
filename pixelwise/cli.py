"""Command line: parse, then call the same Python API that users import. Nothing else lives here.

User errors (``PixelwiseError``) print as one line, without a traceback, and exit with 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

from pixelwise.errors import ConfigError, PixelwiseError, file_system_line, one_line, one_line_warnings
from pixelwise.shutdown import sigterm_unwinds


# Which install extra provides a module a command may need (the core is torch-free).
EXTRA_OF_MODULE = {"torch": "train", "torchvision": "train", "timm": "train", "albumentations": "train",
                   "cv2": "video", "matplotlib": "train", "onnx": "export", "openvino": "openvino",
                   "onnxruntime": "runtime", "fastapi": "serve", "uvicorn": "serve", "pycocotools": "formats"}


def size_arg(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("use H,W (e.g. 288,384) or one number")
    return parts[0], parts[1]


OUTPUT_KINDS = ("labels", "color", "overlay", "confidence")
HALF_HELP = ("fp16 weights and compute for a checkpoint, on a GPU: half the GPU memory, no faster per image, "
             "labels 99.94%% equal to fp32 on CamVid (refused on a CPU, where it ran about 70x "
             "slower)")


def outputs_arg(text: str) -> tuple[str, ...]:
    """``--save labels,overlay``: which files prediction writes per image."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown output {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(OUTPUT_KINDS)} (comma-separated)")
    return kinds


def save_flags(kinds: Sequence[str]) -> dict[str, bool]:
    """``("labels", "overlay")`` -> the ``save_*`` keywords of ``predict`` / ``predict_folder``."""
    return {f"save_{kind}": kind in kinds for kind in OUTPUT_KINDS}


def _float_pair(text: str) -> tuple[float, float]:
    a, b = (float(p) for p in text.split(","))
    return a, b


def cmd_train(a: argparse.Namespace) -> int:
    from pixelwise.config import TrainConfig
    from pixelwise.engine.trainer import train

    if a.resume:
        res = train(resume=a.resume, progress=not a.quiet)
    else:
        cfg = TrainConfig.load(a.config) if a.config else TrainConfig()
        over = {k: v for k, v in {
            "epochs": a.epochs, "time_budget": a.time, "batch_size": a.batch, "lr": a.lr,
            "optimizer": a.optimizer, "schedule": a.schedule, "loss": a.loss, "device": a.device,
            "workers": a.workers, "seed": a.seed, "project": a.project, "name": a.name,
            "val_interval": a.val_interval, "max_iters": a.max_iters, "threads": a.threads}.items()
            if v is not None}
        if a.exist_ok:
            over["exist_ok"] = True
        if a.no_class_weights:
            over["class_weights"] = None
        model = {k: v for k, v in {"arch": a.model, "encoder": a.encoder,
                                   "pretrained": a.pretrained}.items() if v is not None}
        if a.freeze is not None:
            model["freeze_stages"] = a.freeze
        aug = {k: v for k, v in {"crop": a.crop, "scale_range": a.scale, "base_scale": a.base_scale}.items()
               if v is not None}  # a 0 given is refused by the config's checks, not dropped
        res = train(a.data, config=cfg, progress=not a.quiet, model=model, augment=aug, **over)
    print(f"run folder: {res.run_dir}\nbest: {res.best} (val mIoU {max(res.best_miou, 0) * 100:.2f})\n"
          f"last: {res.last}")
    return 0


def default_val_folder(model: str | Path) -> Path:
    """``<model folder>/val`` for a run's ``best.pt``; ``val_<model>`` for any other model file
    (``val_best_onnx``, ``val_last``), so that scoring the exports of a run in turn keeps each one's
    metrics instead of writing over the checkpoint's."""
    m = Path(model)
    if m.name == "best.pt":
        return m.parent / "val"
    return m.parent / f"val_{m.stem}{'' if m.suffix == '.pt' else '_' + m.suffix.lstrip('.')}"


def cmd_val(a: argparse.Namespace) -> int:
    from pixelwise.engine.validate import val

    out = a.out or str(default_val_folder(a.model))
    m = val(a.model, a.data, split=a.split, out_dir=out, device=a.device, flip=a.flip,
            max_images=a.max_images, progress=not a.quiet, half=a.half)
    print(m.table())
    written = [f for f in (Path(out) / f"metrics_{a.split}.json", Path(out) / f"confusion_{a.split}.png") if f.exists()]
    print(f"written: {', '.join(map(str, written))}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    world = os.environ.get("WORLD_SIZE", "1")
    launched = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ  # torchrun's own, not a scheduler's
    if launched and world.isdigit() and int(world) > 1:  # torchrun -m pixelwise.cli predict: each rank did it all
        raise ConfigError(f"'pixelwise predict' is running in {world} processes (torchrun), and each would "
                          "predict every image.", fix="shard the work with torchrun ... -m "
                          "pixelwise.inference.distributed MODEL SOURCE --out OUT (see the README)")
    if a.overlap is not None and a.tile is None:
        raise ConfigError(f"--overlap {a.overlap} applies to tiled prediction only.",
                          fix="add --tile SIZE, or drop --overlap")
    from pixelwise.runtime.batch import check_video_options, is_video_source, predict

    tiling = {} if a.tile is None else {"tile": a.tile, "overlap": a.overlap}
    if is_video_source(a.source):
        from pixelwise.inference.video import predict_video

        check_video_options(a.source, per_image=[f"--{o}" for o in ("save", "confidence", "areas") if getattr(a, o)])
        res = predict_video(a.model, a.source, a.out, mode=a.video or "overlay", device=a.device,
                            progress=not a.quiet, flip=a.flip, half=a.half, **tiling,
                            **({"scales": a.scales} if a.scales else {}))
        print(f"video written: {res.path} ({res.frames} frames at {res.fps:.1f} fps)")
        return 0
    kinds = set(a.save or ("labels", "color", "overlay")) | ({"confidence"} if a.confidence else set())
    files = predict(a.model, a.source, a.out, flip=a.flip, device=a.device, progress=not a.quiet,
                    **tiling, scales=a.scales, **save_flags(kinds), areas_csv="areas.csv" if a.areas else None,
                    video=a.video, half=a.half)
    print(f"{len(files)} file{'' if len(files) == 1 else 's'} written to {a.out}")
    return 0


def _scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        scales = ()
    if not scales or any(v <= 0 for v in scales):
        raise argparse.ArgumentTypeError(f"expected positive numbers separated by commas, e.g. 0.75,1,1.25; got {text!r}")
    return scales


def cmd_models(a: argparse.Namespace) -> int:
    from pixelwise.models.registry import arch_info, count_parameters, create_model, list_models

    print(f"{'architecture':<16}{'params (M)':>11}  description   [encoder {a.encoder}, {a.classes} classes]")
    for name in list_models():
        m = create_model(name, a.encoder, a.classes)
        print(f"{name:<16}{count_parameters(m) / 1e6:>11.2f}  {arch_info(name).description}")
    print("encoders: any timm model with features_only support (timm.list_models()); offline "
          "pretrained weights: efficientnet_lite0")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pixelwise", description="Semantic segmentation: train, val, predict.")
    p.add_argument("--version", action="store_true", help="print the version")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model on a dataset YAML")
    t.add_argument("data", nargs="?", help="dataset YAML (or a folder with dataset.yaml)")
    t.add_argument("--resume", nargs="?", const="runs/train", help="continue a run (folder or last.pt)")
    t.add_argument("--config", help="a config.yaml to start from (e.g. from an earlier run)")
    t.add_argument("--model", help="architecture (see 'pixelwise models'); default fpn_lite")
    t.add_argument("--encoder", help="timm encoder name; default efficientnet_lite0")
    t.add_argument("--pretrained", help="offline | timm | none | PATH to weights")
    t.add_argument("--freeze", type=int, help="encoder stages kept frozen (default 2)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--time", type=float, help="training budget in minutes (schedule fitted to it)")
    t.add_argument("--batch", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["adamw", "sgd"])
    t.add_argument("--schedule", choices=["poly", "cosine", "constant"])
    t.add_argument("--loss", choices=["ce", "ce+dice"])
    t.add_argument("--no-class-weights", action="store_true", help="plain CE (no rare-class weighting)")
    t.add_argument("--crop", type=size_arg, help="training crop H,W (default 288,384)")
    t.add_argument("--scale", type=_float_pair, help="random scale range lo,hi (default 0.5,1.5)")
    t.add_argument("--base-scale", type=float, help="resize factor applied before augmentation")
    t.add_argument("--device", help="auto | cpu | cuda | mps")
    t.add_argument("--workers", type=int)
    t.add_argument("--threads", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--val-interval", type=int)
    t.add_argument("--max-iters", type=int)
    t.add_argument("--project")
    t.add_argument("--name")
    t.add_argument("--exist-ok", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("val", help="evaluate a model: mIoU, per-class IoU, accuracy, Dice")
    v.add_argument("--model", required=True, help="checkpoint (.pt) or exported model (.onnx, OpenVINO .xml)")
    v.add_argument("--data", help="dataset YAML (default: the one the model was trained on)")
    v.add_argument("--split", default="val")
    v.add_argument("--out", help="output folder (default: <model folder>/val for best.pt, "
                   "val_<model> for others: val_best_onnx)")
    v.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    v.add_argument("--max-images", type=int)
    v.add_argument("--device", default="auto")
    v.add_argument("--half", action="store_true", help=HALF_HELP)
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_val)

    r = sub.add_parser("predict", help="segment a file, folder or glob")
    r.add_argument("source", help="image file, folder, glob ('imgs/*.jpg') or video file (.mp4...)")
    r.add_argument("--model", required=True, help="checkpoint (.pt) or exported model (.onnx, .xml)")
    r.add_argument("--out", default="runs/predict", help="output folder (default: runs/predict); for a video "
                   "also a file name such as street_seg.mp4")
    r.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    r.add_argument("--scales", type=_scales, help="multi-scale test-time augmentation, e.g. 0.75,1,1.25")
    r.add_argument("--tile", type=int, help="sliding-window mode with tiles of this size (huge images; "
                                            "memory bounded by the tile)")
    r.add_argument("--overlap", type=int, help="tile overlap in pixels (with --tile; default 64, at most half the tile)")
    r.add_argument("--save", type=outputs_arg, help="files per image, comma-separated: labels (class ids), "
                   "color, overlay, confidence (default labels,color,overlay; labels alone is fastest); PNG, "
                   "or GeoTIFF with the input's georeferencing for a GeoTIFF")
    r.add_argument("--confidence", action="store_true", help="also write <stem>_confidence.png "
                                                             "(max class probability x 255)")
    r.add_argument("--areas", action="store_true", help="also write areas.csv: each image's share of every class")
    r.add_argument("--video", choices=["overlay", "color", "labels"],
                   help="for a video source: what the output video shows (default overlay; labels: class "
                        "indices, lossless .mkv)")
    r.add_argument("--device", default="auto")
    r.add_argument("--half", action="store_true", help=HALF_HELP)
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_predict)

    m = sub.add_parser("models", help="list architectures with parameter counts")
    m.add_argument("--encoder", default="efficientnet_lite0")
    m.add_argument("--classes", type=int, default=19)
    m.set_defaults(func=cmd_models)

    # Sub-packages add their own verbs (data ..., export, serve) without this file growing.
    import importlib

    for module in ("pixelwise.data.commands", "pixelwise.export.commands", "pixelwise.serve.commands"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from pixelwise import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    shown_before = warnings.showwarning
    warnings.showwarning = one_line_warnings(shown_before)
    # serve: uvicorn shuts down on SIGTERM itself; the other verbs clean up their staging files
    unwind = nullcontext() if args.command == "serve" else sigterm_unwinds()
    try:
        with unwind:
            return args.func(args)
    except PixelwiseError as exc:
        print(f"pixelwise: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
        if extra:
            print(f"pixelwise: error: '{args.command}' needs {exc.name}, which is not installed. "
                  f"Fix: pip install 'pixelwise[{extra}]' (or 'pixelwise[all]')", file=sys.stderr)
            return 2
        raise
    except OSError as exc:  # the file system refused (permissions, missing folder, disk full): one line too
        if exc.filename is None:
            raise
        print(f"pixelwise: error: {file_system_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixelwise: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown_before


def run() -> None:
    """The ``pixelwise`` console script: ``main``'s status; after Ctrl-C (status 130 from ``main``,
    whose cleanup has run) the process ends by SIGINT itself, as Python ends an uncaught
    KeyboardInterrupt, so a shell loop around pixelwise stops too."""
    code = main()
    if code == 130:
        import signal

        from pixelwise.shutdown import end_by

        end_by(signal.SIGINT)
    sys.exit(code)


if __name__ == "__main__":
    run()
