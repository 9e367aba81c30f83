"""The metadata record that travels with every export (ONNX metadata_props and a sidecar JSON).

It is what makes an exported file self-describing for a C++/JS/Python user: class names and
colours, input normalisation, network stride, graph kind (raw logits or embedded pipeline).
Torch-free on purpose: the runtime reads it.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelwise.errors import PixelwiseError

FORMAT = "pixelwise-export/1"
METADATA_KEY = "pixelwise"


class RuntimeModelError(PixelwiseError):
    """An exported model file is missing, unreadable or carries no pixelwise metadata."""


@dataclass
class ExportMetadata:
    """Everything a runtime needs besides the graph itself."""

    names: list[str]
    colors: list[list[int]]
    mean: list[float]
    std: list[float]
    stride: int
    graph: str = "logits"  # "logits": float NCHW normalised in, logits (see logits_layout) out
    #                          "pipeline": uint8 HxWx3 in, labels HxW (+ probabilities CxHxW) out
    ignore_index: int = 255
    arch: str = ""
    encoder: str = ""
    fp16: bool = False
    precision: str = "fp32"  # "fp32", "fp16" or "int8" (weights and compute)
    quantization: dict[str, Any] = field(default_factory=dict)  # int8: how it was calibrated
    imgsz: list[int] | None = None  # pipeline graphs: fixed inference size inside the graph
    input_name: str = "input"
    # Logits graphs: H and W must be multiples of this (the runtime pads with zeros after
    # normalisation and crops the outputs); 1 = the graph pads itself (pipeline graphs, older exports).
    input_multiple: int = 1
    # Logits graphs: "NHWC" (NxHxWxC, what pixelwise writes since 0.1: cheaper upsampling and
    # arg-max in the graph) or "NCHW" (older exports, TorchScript).
    logits_layout: str = "NCHW"
    # Logits graphs: the logits output is 1/logits_scale of the (padded) input's size; the runtime
    # upsamples it (bilinear, half-pixel) only when scores are asked for. ONNX and OpenVINO exports
    # since 0.1 keep the network's stride (their labels output is computed at full size); 1 = full size.
    logits_scale: int = 1
    output_names: list[str] = field(default_factory=lambda: ["logits"])
    train_size: list[int] | None = None
    version: str = ""
    format: str = FORMAT
    verification: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    dataset: dict[str, Any] | None = None  # the training dataset's description (for val)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_json(self) -> str:
        """Strict JSON (RFC 8259): a NaN or infinity, which Python's json writes bare and a
        JavaScript, Go or C++ parser rejects, becomes null (e.g. a labels-only graph's score
        difference, which was not measured)."""
        return json.dumps(_strict(asdict(self)), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, raw: Any, where: str | Path = "") -> "ExportMetadata":
        fix = "re-export the model with 'pixelwise export' (it writes the record inside the model and beside it)"
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = f"format {raw.get('format')!r}" if isinstance(raw, dict) else f"a JSON {type(raw).__name__}"
            raise RuntimeModelError(f"{where} carries no pixelwise export metadata ({found}).", path=where or None,
                                    fix="export the model with 'pixelwise export', or keep its .json sidecar next to it")
        problems = _problems(raw)
        if problems:
            raise RuntimeModelError(f"{where} carries a damaged pixelwise metadata record: {'; '.join(problems)}.",
                                    path=where or None, fix=fix)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _problems(raw: dict[str, Any]) -> list[str]:
    """What a runtime would trip over later (a KeyError mid-predict, colours of the wrong class)."""
    def numbers(v: Any, n: int) -> bool:
        return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                           for x in v)

    out = [f"no '{k}'" for k in ("names", "colors", "mean", "std", "stride") if k not in raw]
    names, colors = raw.get("names"), raw.get("colors")
    if "names" in raw and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        out.append("'names' is not a list of class names")
    elif "names" in raw and "colors" in raw and not (isinstance(colors, list) and len(colors) == len(names)
                                  and all(numbers(c, 3) for c in colors)):
        out.append(f"'colors' is not one RGB triple per class ({len(names)})")
    out += [f"'{k}' is not 3 numbers" for k in ("mean", "std") if k in raw and not numbers(raw[k], 3)]
    if "stride" in raw and not (isinstance(raw["stride"], int) and raw["stride"] > 0):
        out.append("'stride' is not a positive integer")
    return out


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def sidecar_path(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: one sidecar per file, so exports never clash."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def write_sidecar(model_path: str | Path, meta: ExportMetadata) -> Path:
    from pixelwise.data.io import atomic_write_bytes  # numpy + Pillow only

    path = sidecar_path(model_path)
    atomic_write_bytes(path, meta.to_json().encode())
    return path


def read_metadata(model_path: str | Path, embedded: str | None = None) -> ExportMetadata:
    """Embedded metadata wins; the sidecar JSON is the fallback (OpenVINO, TorchScript)."""
    if embedded:
        try:
            raw = json.loads(embedded)
        except json.JSONDecodeError as exc:
            raise RuntimeModelError(f"{model_path} carries pixelwise metadata that is not valid JSON ({exc}).",
                                    path=model_path, fix="re-export the model with 'pixelwise export'") from None
        return ExportMetadata.from_dict(raw, model_path)
    side = sidecar_path(model_path)
    if side.exists():
        try:
            raw = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RuntimeModelError(f"Sidecar {side} is not valid JSON ({exc}).", path=side,
                                    fix="re-export the model with 'pixelwise export'") from None
        return ExportMetadata.from_dict(raw, side)
    raise RuntimeModelError(f"{model_path} has no pixelwise metadata and no sidecar {side.name}.",
                            path=model_path, fix="export it with 'pixelwise export' (which writes both)")
