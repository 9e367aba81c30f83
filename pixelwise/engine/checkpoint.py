"""Checkpoints: written atomically (temp file + rename), validated on load.

A checkpoint is self-describing: it holds how to rebuild the model (arch, encoder, classes,
normalisation), the class names/colours, and for ``last.pt`` everything needed to resume.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from pixelwise.data.io import atomic_write_bytes
from pixelwise.engine.model_file import check_checkpoint_file
from pixelwise.errors import CheckpointError

FORMAT = "pixelwise-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = check_checkpoint_file(path)  # missing, a folder, an export, not a PyTorch file: said in one line
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        if path.suffix.lower() not in (".pt", ".pth", ".ckpt"):  # not a model file at all, most likely
            raise CheckpointError(f"{path} is not a model pixelwise reads (its suffix is '{path.suffix}').", path=path,
                                  fix="pass a .pt checkpoint written by 'pixelwise train', or an .onnx / "
                                      "OpenVINO .xml export") from None
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}).",
                              path=path, fix="use another checkpoint (e.g. last.pt or best.pt)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pixelwise checkpoint.", path=path,
                              fix="pass a checkpoint written by 'pixelwise train'")
    return ckpt


def load_model_weights(model: torch.nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """Load weights, refusing a checkpoint of another architecture or class count."""
    spec = ckpt.get("model_spec", {})
    want = getattr(model, "spec", {})
    for key in ("arch", "encoder", "num_classes"):
        if key in spec and key in want and spec[key] != want[key]:
            raise CheckpointError(
                f"Checkpoint {path} is for {key}={spec[key]!r} but the model has {key}={want[key]!r}.",
                path=path, fix=f"build the model with {key}={spec[key]!r} or use a matching checkpoint")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"Checkpoint {path} does not fit this model ({first}).", path=path,
                              fix="use a checkpoint trained with the same architecture and classes") from None
