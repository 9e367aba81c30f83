"""Loading the models a server offers: ``.onnx``/``.xml`` through the torch-free runtime,
``.pt`` checkpoints through the PyTorch Segmenter (same ``predict`` API)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelwise.runtime.backends import is_exported
from pixelwise.serve import ServeError


def parse_model_arg(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (name = file stem)."""
    if "=" in text and not Path(text).exists():
        name, path = text.split("=", 1)
        if not name.strip():
            raise ServeError(f"'{text}' gives the model an empty name.", path=path,
                             fix="write NAME=PATH with a name (clients pass it as ?model=NAME), or just PATH")
        return name.strip(), Path(path)
    return Path(text).stem, Path(text)


def load_model(path: str | Path, backend: str = "auto", threads: int | None = None) -> Any:
    path = Path(path)
    if not path.exists():
        raise ServeError(f"Model not found: {path}.", path=path,
                         fix="pass an exported .onnx/.xml file or a .pt checkpoint")
    if is_exported(path):
        from pixelwise.runtime import RuntimeSegmenter

        return RuntimeSegmenter.load(path, backend=backend, threads=threads)
    if path.suffix == ".pt":
        from pixelwise.inference.predictor import Segmenter

        return Segmenter.load(path, device="cpu")
    raise ServeError(f"Cannot serve {path}: unknown model file type '{path.suffix}'.", path=path,
                     fix="serve a .onnx (pixelwise export), .xml (OpenVINO) or .pt checkpoint")


def describe(name: str, model: Any, path: Path | None) -> dict:
    meta = getattr(model, "meta", None)
    return {"name": name, "path": str(path) if path else None, "classes": list(model.names),
            "num_classes": len(model.names), "colors": [list(c) for c in model.colors],
            "runtime": getattr(getattr(model, "backend", None), "runtime", "pytorch"),
            "graph": getattr(meta, "graph", "pytorch"),
            "arch": getattr(meta, "arch", "") if meta else getattr(model.model, "spec", {}).get("arch", ""),
            "encoder": getattr(meta, "encoder", "") if meta else getattr(model.model, "spec", {}).get("encoder", ""),
            # False for a labels-only pipeline export: no flip, no tiling of large images.
            "scores": bool(getattr(model, "has_scores", True))}
