"""Torch-free deployment runtime: numpy + Pillow + ONNX Runtime (OpenVINO optional).

    from pixelwise.runtime import RuntimeSegmenter
    seg = RuntimeSegmenter.load("model.onnx")
    pred = seg.predict("street.jpg", probabilities=True)

Nothing in this package imports torch (tested in a subprocess where importing torch fails).
"""
from __future__ import annotations

from pixelwise.runtime.metadata import ExportMetadata, RuntimeModelError
from pixelwise.runtime.predictor import Prediction, RuntimeSegmenter

__all__ = ["RuntimeSegmenter", "Prediction", "ExportMetadata", "RuntimeModelError", "load", "evaluate_onnx"]


def load(path, backend: str = "auto", threads: int | None = None, device: str = "auto") -> RuntimeSegmenter:
    return RuntimeSegmenter.load(path, backend, threads, device)


def evaluate_onnx(path, data=None, split: str = "val", **kw):
    """See ``pixelwise.runtime.evaluate.evaluate_onnx``."""
    from pixelwise.runtime.evaluate import evaluate_onnx as _ev

    return _ev(path, data, split, **kw)
