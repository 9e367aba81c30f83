"""``export()``: checkpoint -> ONNX / OpenVINO / TorchScript file, verified, with metadata."""
from __future__ import annotations

import copy
import os
import sys
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from pixelwise import __version__
from pixelwise.errors import first_line
from pixelwise.export import ExportError
from pixelwise.export.verify import VerifyReport, verify
from pixelwise.runtime.metadata import ExportMetadata, write_sidecar

FORMATS = ("onnx", "openvino", "torchscript")
# Pixel-label agreement an export must reach against PyTorch. int8 rounds every activation, so
# labels flip on class boundaries (about 4% of CamVid pixels for a -0.3 mIoU change, see
# BENCHMARKS.md); its bar is lower and `pixelwise val --model` gives the accuracy that matters.
# ONNX opsets the TorchScript exporter writes every pixelwise graph in (10 lacks index_put;
# 11-21 exported and ran in ONNX Runtime, 2026-12-03).
MIN_OPSET, MAX_OPSET = 11, 21
MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.999, "int8": 0.95}


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    report: VerifyReport | None
    metadata: ExportMetadata
    seconds: float
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable images passed over


def default_output(checkpoint: Path, fmt: str, pipeline: bool, precision: str = "fp32",
                   outputs: Sequence[str] = ("labels", "probabilities")) -> Path:
    """``best.onnx``, ``best_int8.onnx``, ``best_pipeline.onnx``, ``best_pipeline_labels.onnx`` (a
    labels-only graph must not overwrite the full pipeline made just before it)..."""
    kind = ("_pipeline" + ("_labels" if tuple(outputs) == ("labels",) else "")) if pipeline else ""
    stem = checkpoint.stem + kind + ("" if precision == "fp32" else f"_{precision}")
    if fmt == "onnx":
        return checkpoint.with_name(stem + ".onnx")
    if fmt == "torchscript":
        return checkpoint.with_name(stem + ".torchscript")
    return checkpoint.parent / f"{stem}_openvino" / f"{stem}.xml"


SUFFIXES = {"onnx": (".onnx",), "openvino": (".xml",), "torchscript": (".torchscript", ".ts")}


def output_path(out: str | Path | None, checkpoint: Path, fmt: str, pipeline: bool, precision: str,
                outputs: Sequence[str] = ("labels", "probabilities")) -> Path:
    """Where ``--out`` puts the export: that file when it has the format's suffix; inside it, under
    the default name, when it is a folder (an existing one, or a name without a suffix)."""
    default = default_output(checkpoint, fmt, pipeline, precision, outputs)
    if out is None:
        return default
    out = Path(out)
    if out.is_dir() or not out.suffix:
        return out / default.name
    if out.suffix.lower() not in SUFFIXES[fmt]:
        other = next((f for f, sfx in SUFFIXES.items() if out.suffix.lower() in sfx), None)
        raise ExportError(f"--out {out}: {fmt} exports are written to {SUFFIXES[fmt][0]} files, and runtimes "
                          "pick how to read a model by its suffix.", path=out,
                          fix=f"use --out {out.with_suffix(SUFFIXES[fmt][0])}"
                              + (f" (or --format {other} for a {out.suffix} file)" if other else ""))
    return out


_HOLD_LOCK = threading.Lock()


@contextmanager
def _native_stdout_held() -> Iterator[None]:
    """Hold what is written to file descriptor 1 while the block runs, and pass it on only if the
    block succeeds: when tracing fails, torch.onnx's C++ code prints the whole IR graph there
    (hundreds of lines before our one-line error). Other threads' output is delayed, not lost;
    without a usable descriptor 1 (closed stdout, pythonw) nothing is redirected."""
    with _HOLD_LOCK:
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):
            saved = None
        if saved is None:
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 1)
            ok = False
            try:
                yield
                ok = True
            finally:
                if sys.stdout is not None:
                    try:
                        sys.stdout.flush()
                    except (OSError, ValueError):
                        pass
                os.dup2(saved, 1)
                os.close(saved)
                if ok:
                    held.seek(0)
                    data = held.read()
                    if data:
                        os.write(1, data)


def _check_options(seg, imgsz: Sequence[int] | None, calib_images: int, min_agreement: float) -> None:
    """Refuse option values that would crash the tracer or make a check that cannot pass."""
    stride = int(seg.model.stride)
    if imgsz and min(imgsz) < stride:
        raise ExportError(f"--imgsz {','.join(map(str, imgsz))} is below the network's stride ({stride}): the "
                          "graph would predict from less than one feature pixel.",
                          fix=f"use at least {stride} per side, e.g. the training size")
    if calib_images < 1:
        raise ExportError(f"--calib-images {calib_images}: int8 calibration needs images.",
                          fix="pass a count of at least 1 (default 32)")
    if not 0 < min_agreement <= 1:
        raise ExportError(f"--min-agreement {min_agreement * 100:g}% is not a share of pixels.",
                          fix="pass a percentage above 0 and at most 100 (default 99.9)")


def _load(model: Any):
    from pixelwise.inference.predictor import Segmenter

    if not isinstance(model, Segmenter):
        return Segmenter.load(model, device="cpu")
    if getattr(model, "dtype", torch.float32) != torch.float32:  # its weights are rounded already
        raise ExportError("This Segmenter was loaded with half=True: its weights are rounded to fp16, and an "
                          "export of them would claim to be the checkpoint's fp32 model.",
                          fix="export the checkpoint file, or a Segmenter loaded without half; "
                              "--fp16 makes a half-precision export")
    if model.device.type != "cpu":  # exported and verified on the CPU; the caller's GPU model stays as it is
        return Segmenter(copy.deepcopy(model.model).cpu(), model.names, model.colors, model.ignore_index, "cpu",
                         model._dataset, model.checkpoint)
    return model


def _metadata(seg, pipeline: bool, precision: str, imgsz, outputs, input_name, output_names) -> ExportMetadata:
    m = seg.model
    n = m.num_classes
    colors = [list(c) for c in seg.colors] or [[(37 * i) % 256, (91 * i) % 256, (157 * i) % 256] for i in range(n)]
    ds = getattr(seg, "_dataset", None) or None
    return ExportMetadata(names=list(seg.names), colors=colors, mean=list(m.mean), std=list(m.std),
                          stride=int(m.stride), graph="pipeline" if pipeline else "logits",
                          ignore_index=int(seg.ignore_index), arch=m.spec.get("arch", ""),
                          encoder=m.spec.get("encoder", ""), fp16=precision == "fp16",
                          precision=precision,
                          imgsz=list(imgsz) if imgsz else None, input_name=input_name,
                          output_names=list(output_names), version=__version__,
                          source=str(seg.checkpoint or ""), dataset=ds)


def _reference(model: torch.nn.Module, imgsz) -> Any:
    """PyTorch eager logits (CxHxW) for a uint8 image: the checkpoint's own forward."""
    from pixelwise.engine.evaluator import normalize_batch
    import torch.nn.functional as F

    def ref(image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        h, w = x.shape[-2:]
        with torch.no_grad():
            if imgsz:
                x = F.interpolate(x.float(), size=tuple(imgsz), mode="bilinear", align_corners=False)
            x = normalize_batch(x, model.mean, model.std, torch.device("cpu"))
            y = model(x)
            if imgsz:
                y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return y[0].numpy()

    return ref


def _graph(seg, pipeline: bool, fp16: bool, imgsz, outputs, fmt: str):
    """ONNX / OpenVINO logits graphs get an in-graph labels output and no stride padding (the
    runtime pads); TorchScript keeps the self-contained logits-only graph. ONNX and OpenVINO
    graphs put out the logits at the network's stride and compute the labels without upsampling
    them (``UpsampledLabels``); heads whose upsampling factor is odd or not whole keep full-size
    logits, NHWC, upsampled NCHW first for OpenVINO (its CPU plugin interpolates NHWC 7x slower;
    see ``LogitsGraph``)."""
    from pixelwise.export.graph import LogitsGraph, PipelineGraph

    model = copy.deepcopy(seg.model).float().eval().to(memory_format=torch.contiguous_format)
    last, planar = fmt in ("onnx", "openvino"), fmt == "openvino"
    if pipeline:
        return PipelineGraph(model, seg.model.mean, seg.model.std, imgsz, outputs, fp16, last, planar).eval()
    for_runtime = fmt != "torchscript"
    return LogitsGraph(model, fp16, labels=for_runtime, pad=not for_runtime, channels_last=last,
                       resize_planar=planar, lowres_logits=True).eval()


def _export_onnx(graph, path: Path, pipeline: bool, outputs, opset: int, dynamic_batch: bool) -> tuple[str, list[str]]:
    core = graph.core if pipeline else graph
    s = core.stride
    # Off the stride when the graph pads, so the padding path is traced; on it when the caller pads.
    h, w = (2 * s + 6, 3 * s + 10) if core.pad else (2 * s, 3 * s)
    if pipeline:
        dummy = torch.zeros(h, w, 3, dtype=torch.uint8)
        in_name, out_names = "image", list(outputs)
        axes = {"image": {0: "height", 1: "width"}}
        if "labels" in outputs:
            axes["labels"] = {0: "height", 1: "width"}
        if "probabilities" in outputs:
            axes["probabilities"] = {1: "height", 2: "width"}
    else:
        dummy = torch.zeros(1, 3, h, w)
        in_name, out_names = "input", ["logits", "labels"] if graph.labels else ["logits"]
        logit_axes = ({2: "logits_height", 3: "logits_width"} if graph.logits_scale > 1
                      else {1: "height", 2: "width"} if graph.channels_last else {2: "height", 3: "width"})
        axes = {"input": {2: "height", 3: "width"}, "logits": logit_axes,
                "labels": {1: "height", 2: "width"}}
        if dynamic_batch:
            axes["input"][0] = axes["logits"][0] = axes["labels"][0] = "batch"
        axes = {k: v for k, v in axes.items() if k in [in_name, *out_names]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: seconds instead of tens of seconds, and it keeps the shape
        # arithmetic of the stride padding symbolic. It mutates the traced module, hence the copy.
        try:
            with _native_stdout_held():  # on failure the tracer prints its whole IR graph (hundreds of lines)
                torch.onnx.export(copy.deepcopy(graph), (dummy,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[in_name], output_names=out_names, dynamic_axes=axes,
                                  do_constant_folding=True)
        except Exception as exc:  # torch.onnx raises several types (opset too old or too new, ...)
            raise ExportError(f"torch.onnx cannot export this model with opset {opset} ({type(exc).__name__}: "
                              f"{first_line(exc)}).", fix="use the default --opset 17 (or a newer one); if that fails "
                              "too, report the model") from None
    return in_name, out_names


def _embed_onnx_metadata(path: Path, meta: ExportMetadata) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in {"pixelwise": meta.to_json(), "names": ",".join(meta.names),
                 "stride": str(meta.stride), "version": meta.version}.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.doc_string = "pixelwise semantic segmentation export; metadata key 'pixelwise' holds the JSON record"
    onnx.save(m, str(path))


def export(model: Any, format: str = "onnx", out: str | Path | None = None, *, fp16: bool = False,
           int8: bool = False, calib: Any = None, calib_images: int = 32,
           pipeline: bool = False, imgsz: Sequence[int] | None = None,
           outputs: Sequence[str] = ("labels", "probabilities"), images: Any = None, opset: int = 17,
           dynamic_batch: bool = True, verify_images: int = 4, min_agreement: float | None = None,
           check: bool = True) -> ExportResult:
    """Export ``model`` (checkpoint path or Segmenter) and verify it against PyTorch on real images.

    ``pipeline``: uint8 HxWx3 in, labels/probabilities out (``outputs``), normalisation inside;
    ``imgsz`` (h, w) adds a fixed-size resize inside the pipeline graph.
    ``int8``: post-training quantization (ONNX / OpenVINO), calibrated on ``calib`` images
    (default: ``calib_images`` spread over the training split). ``min_agreement`` defaults to
    ``MIN_AGREEMENT`` for the precision.
    """
    from pixelwise.export.sources import calibration_images, recorded_root, verification_images
    from pixelwise.runtime.metadata import sidecar_path

    t0 = time.time()
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format '{format}'.", fix=f"use one of: {', '.join(FORMATS)}")
    if int8 and fp16:
        raise ExportError("--int8 and --fp16 exclude each other.", fix="pick one precision")
    if int8 and fmt == "torchscript":
        raise ExportError("int8 export is available for onnx and openvino, not torchscript.",
                          fix="use --format onnx or --format openvino")
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    if min_agreement is None:
        min_agreement = MIN_AGREEMENT[precision]
    outputs = tuple(outputs)
    if pipeline and (not outputs or set(outputs) - {"labels", "probabilities"}):
        raise ExportError(f"Unknown pipeline outputs {outputs}.", fix="use labels, probabilities or both")
    if imgsz and not pipeline:
        raise ExportError("--imgsz only applies to --pipeline exports.", fix="add --pipeline or drop --imgsz")
    if calib is not None and not int8:
        raise ExportError("--calib only applies to --int8 exports (their calibration images).",
                          fix="add --int8 or drop --calib")
    opset = 17 if opset is None else opset
    if fmt != "torchscript" and (isinstance(opset, bool) or not isinstance(opset, int)
                                 or not MIN_OPSET <= opset <= MAX_OPSET):
        raise ExportError(f"--opset {opset} is outside what this exporter writes for pixelwise's graphs "
                          f"({MIN_OPSET}..{MAX_OPSET}).", fix="use the default --opset 17")
    seg = _load(model)
    _check_options(seg, imgsz, calib_images, min_agreement)
    src = Path(seg.checkpoint) if seg.checkpoint else Path("model.pt")
    path = output_path(out, src, fmt, pipeline, precision, outputs)
    ims, files, skipped = (verification_images(images, getattr(seg, "_dataset", None), verify_images)
                           if check else ([], [], []))
    _refuse_if_unreadable("verify", ims, skipped, "--images")
    if check and not ims:
        raise ExportError(f"No real image to verify the export of {src} on "
                          f"({recorded_root(getattr(seg, '_dataset', None))}).", path=src, fix="pass --images FOLDER_OF_IMAGES (or --no-verify)")
    calib_ims: list[np.ndarray] = []
    if int8:
        calib_ims, _, calib_skipped = calibration_images(calib, getattr(seg, "_dataset", None), calib_images)
        _refuse_if_unreadable("calibrate", calib_ims, calib_skipped, "--calib")
        skipped += calib_skipped
        if not calib_ims:
            raise ExportError(f"No image to calibrate the int8 export of {src} on "
                              f"({recorded_root(getattr(seg, '_dataset', None))}).", path=src,
                              fix="pass --calib FOLDER_OF_TRAINING_IMAGES (a few dozen like the ones it will see)")
    _warn_skipped(skipped)
    # Everything is written and verified in a staging folder beside the destination, then moved
    # into place: a failed check, a crash or Ctrl-C leaves an earlier export at that path as it was.
    final = path
    made = [d for d in (final.parent, *final.parent.parents) if not d.exists()]  # innermost first
    done = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.export-"))
    except OSError as exc:
        _remove_empty(made)  # folders made before mkdtemp failed
        blocking = next((d for d in (final.parent, *final.parent.parents) if d.exists() and not d.is_dir()), None)
        if blocking is not None:  # mkdir says only "File exists"
            raise ExportError(f"Cannot write the export into {final.parent}: {blocking} is a file, not a folder.",
                              path=final, fix="choose an output path whose folders are folders (--out)") from None
        raise ExportError(f"Cannot write the export into {final.parent} ({exc.strerror}).", path=final,
                          fix="choose a writable output path (--out)") from None
    path = stage / final.name
    try:
        graph = _graph(seg, pipeline, fp16, imgsz, outputs, fmt)
        in_name, out_names = "input", ["logits"]
        if fmt in ("onnx", "openvino"):
            onnx_path = path if fmt == "onnx" else path.with_suffix(".onnx")
            float_path = onnx_path.with_name(onnx_path.stem + ".float.onnx") if int8 else onnx_path
            in_name, out_names = _export_onnx(graph, float_path, pipeline, outputs, opset, dynamic_batch)
            meta = _metadata(seg, pipeline, precision, imgsz, outputs, in_name, out_names)
            meta.input_multiple = 1 if pipeline or graph.pad else int(graph.stride)
            meta.logits_layout = "NHWC" if not pipeline and graph.channels_last else "NCHW"
            meta.logits_scale = 1 if pipeline else graph.logits_scale
            _embed_onnx_metadata(float_path, meta)
            if int8:
                from pixelwise.export.quantize import quantize_int8

                try:
                    meta.quantization = quantize_int8(float_path, onnx_path, _calibration_feeds(calib_ims, meta),
                                                      in_name, widen_stem=fmt == "onnx")
                finally:
                    float_path.unlink(missing_ok=True)
                _embed_onnx_metadata(onnx_path, meta)
            if fmt == "openvino":
                from pixelwise.export.openvino import onnx_to_openvino

                onnx_to_openvino(onnx_path, path, fp16)
                onnx_path.unlink()
        else:
            from pixelwise.export.torchscript import export_torchscript

            meta = _metadata(seg, pipeline, precision, imgsz, outputs, "image" if pipeline else "input",
                             list(outputs) if pipeline else ["logits"])
            export_torchscript(graph, path, meta, pipeline)
        write_sidecar(path, meta)
        report = None
        if check:
            report = _verify(path, fmt, meta, seg, ims, files, min_agreement, pipeline, outputs, imgsz)
            meta.verification = report.to_dict()
            write_sidecar(path, meta)
            if fmt == "onnx":
                _embed_onnx_metadata(path, meta)
        for f in (path.with_suffix(".bin"), path, sidecar_path(path)):  # OpenVINO weights before their .xml
            if f.exists():
                os.replace(f, final.parent / f.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:  # a failed export leaves no empty best_openvino/ behind
            _remove_empty(made)
    return ExportResult(final, sidecar_path(final), fmt, report, meta, time.time() - t0, skipped)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders an export made for its destination (innermost first), while empty."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            break


def _refuse_if_unreadable(step: str, ims: list, skipped: list[tuple[Path, str]], option: str) -> None:
    """Every candidate image was unreadable: say which and why, not 'no image found'."""
    if skipped and not ims:
        first, why = skipped[0]
        raise ExportError(f"No readable image to {step} the export on: {len(skipped)} file(s) could not be "
                          f"decoded, the first {first}: {why}", path=first,
                          fix=f"replace or remove the broken files, or pass {option} FOLDER_OF_GOOD_IMAGES")


def _warn_skipped(skipped: list[tuple[Path, str]]) -> None:
    """One warning per unreadable file skipped (the export goes on with the readable ones); the
    reason names the file, as pixelwise's read errors do."""
    for _, why in skipped:
        warnings.warn(f"skipped unreadable image: {why}", UserWarning, stacklevel=3)


def _calibration_feeds(images: list[np.ndarray], meta: ExportMetadata) -> list[np.ndarray]:
    """Graph inputs for calibration, prepared exactly as the runtime prepares them."""
    from pixelwise.runtime.predictor import pad_to_multiple

    if meta.graph == "pipeline":
        return images
    mean = np.asarray(meta.mean, np.float32).reshape(1, 3, 1, 1) * 255.0
    std = np.asarray(meta.std, np.float32).reshape(1, 3, 1, 1) * 255.0
    return [pad_to_multiple(np.ascontiguousarray((im.transpose(2, 0, 1)[None].astype(np.float32) - mean) / std),
                            meta.input_multiple) for im in images]


def _verify(path: Path, fmt: str, meta: ExportMetadata, seg, ims, files, min_agreement: float,
            pipeline: bool, outputs, imgsz) -> VerifyReport:
    ref = _reference(seg.model.float().eval(), imgsz)
    own_labels = None
    if pipeline and "probabilities" not in outputs:
        return _verify_labels_only(path, fmt, ref, ims, files, min_agreement, _fix(meta))
    if fmt == "torchscript":
        from pixelwise.export.torchscript import torchscript_scores

        run = torchscript_scores(path, meta)
    else:
        from pixelwise.runtime.predictor import RuntimeSegmenter

        rt = RuntimeSegmenter.load(path, backend="openvino" if fmt == "openvino" else "onnxruntime")

        def run(image: np.ndarray) -> np.ndarray:
            return rt.scores(image[None])[0]

        if not pipeline and rt.has_labels_output:
            # What the runtime serves by default is the graph's own label map: check it too.
            def own_labels(image: np.ndarray) -> np.ndarray:
                return rt.labels(image[None])[0]
    return verify(ims, run, ref, exported_is_prob=pipeline, files=files, min_agreement=min_agreement,
                  what=f"{fmt} export {path.name}", fix=_fix(meta), labels=own_labels)


def _fix(meta: ExportMetadata) -> str:
    if meta.precision == "int8":
        return ("calibrate on more or more typical images (--calib FOLDER), export without --int8, or, "
                "after checking its accuracy with 'pixelwise val --model', lower --min-agreement")
    if meta.precision == "fp16":
        return ("export in fp32 (drop --fp16), or, after checking its accuracy with 'pixelwise val --model', "
                "lower --min-agreement (half precision flips pixels whose top two classes are nearly tied)")
    return "try another --opset, or report the model"


def _verify_labels_only(path: Path, fmt: str, ref, ims, files, min_agreement: float, fix: str) -> VerifyReport:
    """Pipeline exports with only a label output: compare labels (no score difference), run by the
    format's own runtime."""
    if fmt == "torchscript":
        from pixelwise.export.torchscript import torchscript_labels

        labels_of = torchscript_labels(path)
    else:
        from pixelwise.runtime.backends import open_backend

        be = open_backend(path, "openvino" if fmt == "openvino" else "onnxruntime")

        def labels_of(image: np.ndarray) -> np.ndarray:
            return be.run(image)[0]
    agree = total = 0
    for im in ims:
        lab = labels_of(np.ascontiguousarray(im))
        r = ref(im).argmax(0)
        agree += int((lab == r).sum())
        total += r.size
    rep = VerifyReport(len(ims), total, agree / total, float("nan"), "labels",
                       [list(i.shape[:2]) for i in ims], [str(f) for f in files])
    if rep.agreement < min_agreement:
        raise ExportError(f"The export {path.name} does not reproduce PyTorch: {rep.line()} "
                          f"(required: {min_agreement * 100:.2f}%).", path=path, fix=fix)
    return rep
