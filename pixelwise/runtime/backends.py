"""Inference engines behind one tiny interface: ``run(x) -> first output``.

ONNX Runtime is the default (CPU, or CUDA when its provider exists); OpenVINO is optional.
Neither imports torch.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pixelwise.errors import first_line
from pixelwise.runtime.metadata import ExportMetadata, RuntimeModelError, read_metadata, sidecar_path


class Backend(Protocol):
    meta: ExportMetadata
    output_names: list[str]

    def run(self, feed: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
        """The graph's outputs (``outputs``: only these, by name, in that order)."""


def _threads(threads: int | None) -> int:
    if threads:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OrtBackend:
    """ONNX Runtime session; metadata from the model's metadata_props (sidecar as fallback)."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeModelError("onnxruntime is not installed.", path=path,
                                    fix="pip install 'pixelwise[runtime]'") from None
        self.path = Path(path)
        if not self.path.exists():
            raise RuntimeModelError(f"Model not found: {self.path}.", path=self.path,
                                    fix="pass the .onnx file written by 'pixelwise export'")
        so = ort.SessionOptions()
        so.intra_op_num_threads = _threads(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        avail = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for corrupt files
            raise RuntimeModelError(f"{self.path} cannot be loaded by ONNX Runtime ({type(exc).__name__}: "
                                    f"{first_line(exc)}).", path=self.path,
                                    fix="re-export it with 'pixelwise export'") from None
        embedded = self.session.get_modelmeta().custom_metadata_map.get("pixelwise")
        self.meta = read_metadata(self.path, embedded)
        inputs = self.session.get_inputs()
        self.output_names = [o.name for o in self.session.get_outputs()]
        check_interface(self.meta, self.path, [len(i.shape) for i in inputs], self.output_names)
        self.input_name = inputs[0].name
        check_class_count(self.meta, self.path, {o.name: o.shape for o in self.session.get_outputs()})

    def run(self, feed: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
        try:
            return self.session.run(outputs, {self.input_name: feed})
        except Exception as exc:  # ORT's own types: a graph built for other sizes than the metadata says
            raise _cannot_run(self.path, feed, exc) from None


class OpenVinoBackend:
    """OpenVINO compiled model (reads .xml IR or .onnx); metadata from the sidecar JSON, else from
    inside the model (the IR's rt_info, the ONNX file's metadata_props)."""

    runtime = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "CPU"):
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeModelError("openvino is not installed.", path=path,
                                    fix="pip install openvino (or use the ONNX Runtime backend)") from None
        self.path = Path(path)
        if not self.path.exists():
            raise RuntimeModelError(f"Model not found: {self.path}.", path=self.path,
                                    fix="pass the .xml or .onnx file written by 'pixelwise export'")
        is_ir = self.path.suffix.lower() == ".xml"
        weights = next((w for w in (self.path.with_suffix(".bin"), self.path.with_suffix(".BIN")) if w.exists()),
                       self.path.with_suffix(".bin"))
        if is_ir and not weights.exists():
            raise RuntimeModelError(f"{self.path} has no weights file {weights.name} beside it.", path=weights,
                                    fix="copy the .bin that 'pixelwise export' wrote next to the .xml")
        core = ov.Core()
        try:  # the weights named explicitly: OpenVINO finds them only beside a lower-case '.xml'
            model = core.read_model(str(self.path), str(weights)) if is_ir else core.read_model(str(self.path))
        except RuntimeError as exc:  # OpenVINO reports a corrupt .xml/.bin/.onnx as RuntimeError
            raise _openvino_cannot_load(self.path, exc) from None
        self.meta = read_metadata(self.path, None if sidecar_path(self.path).exists() else
                                  _embedded_metadata(model) or _onnx_metadata_props(self.path))
        config: dict = {}
        if device == "CPU":
            config["INFERENCE_NUM_THREADS"] = _threads(threads)
            # OpenVINO runs models in bf16 on CPUs with native bf16 (AVX512-BF16, AMX), whatever
            # their precision: an export would then not compute what its check verified. fp16
            # exports too: bf16 keeps 8 mantissa bits to fp16's 10 (a trained CamVid model's fp16
            # IR agreed with PyTorch on 99.55% of pixels in bf16, max logit error 0.55); their
            # weights stay half-size on disk and are widened to f32 for the arithmetic.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise _openvino_cannot_load(self.path, exc) from None
        # An InferRequest is not thread-safe, and the server predicts in a pool of threads: one each.
        self._local = threading.local()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        check_interface(self.meta, self.path, [i.get_partial_shape().rank.get_length()
                                               if i.get_partial_shape().rank.is_static else -1
                                               for i in self.compiled.inputs],
                        [n for o in self.compiled.outputs for n in sorted(o.get_names())])  # a tensor has several
        check_class_count(self.meta, self.path, {o.get_any_name(): [d.get_length() if d.is_static else None
                                                                    for d in o.get_partial_shape()]
                                                 for o in self.compiled.outputs})

    @property
    def request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, feed: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
        try:
            res = self.request.infer({0: feed})
        except RuntimeError as exc:
            raise _cannot_run(self.path, feed, exc) from None
        if outputs is None:
            return [np.asarray(res[o]) for o in self.compiled.outputs]
        return [np.asarray(res[self.compiled.output(name)]) for name in outputs]


def _openvino_cannot_load(path: Path, exc: Exception) -> RuntimeModelError:
    return RuntimeModelError(f"{path} cannot be loaded by OpenVINO ({first_line(exc)}).", path=path,
                             fix="re-export it with 'pixelwise export' (keep the .xml, .bin and .json together)")


def _embedded_metadata(model: Any) -> str | None:
    """The record inside a model OpenVINO has read: an IR's rt_info, or an ONNX file's
    metadata_props, which OpenVINO's ONNX reader keeps under 'framework' (so IRs converted from
    our ONNX exports carry it too). No need for the onnx package."""
    for where in (["model_info", "pixelwise"], ["framework", "pixelwise"]):
        if model.has_rt_info(where):
            return model.get_rt_info(where).astype(str)
    return None


def _onnx_metadata_props(path: Path) -> str | None:
    """The record in an ONNX file's metadata_props through the onnx package, when it is installed:
    for OpenVINO releases whose ONNX reader does not keep them in rt_info."""
    if path.suffix.lower() != ".onnx":
        return None
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # OpenVINO read it; a protobuf quirk here only loses this fallback
        return None
    return {p.key: p.value for p in model.metadata_props}.get("pixelwise")


def check_interface(meta: ExportMetadata, path: Path, input_ranks: list[int], outputs: list[str]) -> None:
    """The graph must take what its record says (one image: HxWx3 for a pipeline export, NxCxHxW
    otherwise) and give the outputs the predictor fetches by name: a record copied beside another
    network would otherwise fail at the first image, with ONNX Runtime's or OpenVINO's words."""
    rank = 3 if meta.graph == "pipeline" else 4
    needed = ["labels", "probabilities"] if meta.graph == "pipeline" else ["logits"]
    problem = None
    if len(input_ranks) != 1:
        problem = f"takes {len(input_ranks)} inputs where a pixelwise export takes one image"
    elif input_ranks[0] not in (rank, -1):
        problem = (f"takes a rank-{input_ranks[0]} input where its record ({meta.graph} graph) "
                   f"needs {'HxWx3' if rank == 3 else 'NxCxHxW'}")
    elif not any(n in outputs for n in needed):
        problem = (f"has no output named {' or '.join(repr(n) for n in needed)} (it has: "
                   f"{', '.join(outputs) or 'none'})")
    if problem:
        raise RuntimeModelError(f"{path} {problem}: it is not the graph its metadata record describes.",
                                path=path, fix="pass a model written by 'pixelwise export'; remove a .json "
                                "copied beside another network")


def _cannot_run(path: Path, feed: np.ndarray, exc: Exception) -> RuntimeModelError:
    """A failed run in one line, with the runtime's reason (ONNX Runtime puts it after 'Status
    Message:', past a long prefix) and the fix that fits it: memory, a fixed-size graph, or other."""
    text = " ".join(str(exc).split())
    reason = text.split("Status Message:", 1)[-1].strip()
    low = reason.lower()  # not the node names before it ('/MemoryBlock/conv', '/decoder/Shape_gather')
    if any(k in low for k in ("failed to allocate", "bad_alloc", "out of memory", "cannot allocate")):
        fix = "predict in tiles (--tile 1024, or tile= in Python), or on a smaller image"
    elif any(k in low for k in ("invalid dimensions", "invalid rank", "shape mismatch", "incompatible shape")):
        fix = ("re-export with 'pixelwise export' (its graphs take any image size); a graph reshaped "
               "to fixed sizes takes only those")
    else:
        fix = "check that the model is a pixelwise export that loads elsewhere; if it is, report it with this line"
    return RuntimeModelError(f"{path} cannot run on a {'x'.join(map(str, feed.shape))} {feed.dtype} input "
                             f"({type(exc).__name__}: {reason[:300]}).", path=path, fix=fix)


def check_class_count(meta: ExportMetadata, path: Path, shapes: dict[str, Any]) -> None:
    """The record's class names must match the graph's scores per pixel: a sidecar copied from
    another export would otherwise name and colour every class wrongly, silently."""
    if meta.graph == "pipeline":
        shape, axis = shapes.get("probabilities"), 0
    else:
        shape, axis = shapes.get("logits"), 3 if meta.logits_layout == "NHWC" else 1
    if not shape or len(shape) <= axis or not isinstance(shape[axis], int) or shape[axis] <= 0:
        return  # dynamic, or a labels-only graph: nothing to compare
    if shape[axis] != meta.num_classes:
        raise RuntimeModelError(f"{path}'s metadata names {meta.num_classes} classes but the graph scores "
                                f"{shape[axis]} per pixel.", path=path,
                                fix="keep the .json written with this export beside it, or remove a .json "
                                    "copied from another one (the record inside the model is then used)")


# Files the runtime opens (ONNX, OpenVINO IR); anything else is a PyTorch checkpoint to the CLI.
EXPORTED_SUFFIXES = (".onnx", ".xml")


def is_exported(model: object) -> bool:
    """Whether ``model`` is the path of an exported model (served without torch)."""
    return isinstance(model, (str, Path)) and Path(model).suffix.lower() in EXPORTED_SUFFIXES


def ort_providers(device: str) -> list | None:
    """ONNX Runtime execution providers for a ``--device`` value (None: CUDA when present, else CPU)."""
    import onnxruntime as ort

    name = device.lower()
    if name == "auto":
        return None
    if name == "cpu":
        return ["CPUExecutionProvider"]
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeModelError(f"device '{device}' was asked for but this ONNX Runtime has no CUDA provider.",
                                    fix="use --device auto or --device cpu (or install onnxruntime-gpu)")
        options = {"device_id": int(name[5:])} if ":" in name else {}
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    raise RuntimeModelError(f"Unknown device '{device}' for an exported model.",
                            fix="use auto, cpu, cuda or cuda:N")


def open_backend(path: str | Path, backend: str = "auto", threads: int | None = None,
                 device: str = "auto") -> Backend:
    """``auto``: .xml -> OpenVINO, anything else -> ONNX Runtime. ``device``: auto, cpu, cuda[:N]
    (ONNX Runtime's CUDA provider); OpenVINO runs on the CPU."""
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        raise RuntimeModelError(f"{path} is a PyTorch checkpoint; the torch-free runtime runs exported models.",
                                path=path, fix=f"export it first (pixelwise export {path} --format onnx), or load it "
                                               "with pixelwise.Segmenter")
    if backend == "auto":
        backend = "openvino" if path.suffix.lower() == ".xml" else "onnxruntime"
    if backend in ("onnxruntime", "ort"):
        return OrtBackend(path, threads, ort_providers(device))
    if backend == "openvino":
        if device.lower() not in ("auto", "cpu"):
            raise RuntimeModelError(f"device '{device}': pixelwise runs OpenVINO exports on the CPU.", path=path,
                                    fix="use --device auto or cpu, or export to ONNX for a CUDA GPU")
        return OpenVinoBackend(path, threads)
    raise RuntimeModelError(f"Unknown backend '{backend}'.", fix="use auto, onnxruntime or openvino")
