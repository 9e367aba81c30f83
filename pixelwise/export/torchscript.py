"""TorchScript export (traced; dynamic H/W/batch via the branch-free graph) and its scorer."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pixelwise.runtime.metadata import ExportMetadata


def export_torchscript(graph: torch.nn.Module, path: Path, meta: ExportMetadata, pipeline: bool) -> Path:
    s = graph.core.stride if pipeline else graph.stride
    h, w = 2 * s + 6, 3 * s + 10
    dummy = torch.zeros(h, w, 3, dtype=torch.uint8) if pipeline else torch.zeros(1, 3, h, w)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(copy.deepcopy(graph), (dummy,), check_trace=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # PyTorch deprecates torch.jit; the README says so once, not each export
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        torch.jit.save(traced, str(path), _extra_files={"pixelwise.json": meta.to_json()})
    return path


def _load(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def torchscript_labels(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 image -> HxW labels, for a labels-only pipeline graph (its one output)."""
    module = _load(path)

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(image))).numpy()

    return run


def torchscript_scores(path: Path, meta: ExportMetadata) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 image -> CxHxW scores (logits, or probabilities for pipeline graphs)."""
    module = _load(path)
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(meta.std).view(1, 3, 1, 1) * 255.0

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            if meta.graph == "pipeline":
                out = module(torch.from_numpy(np.ascontiguousarray(image)))
                return [o for o in (out if isinstance(out, tuple) else (out,)) if o.dtype.is_floating_point][0].numpy()
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
            return module((x - mean) / std)[0].numpy()

    return run
