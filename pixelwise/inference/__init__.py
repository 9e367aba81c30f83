"""Inference with PyTorch: load a checkpoint, predict label maps / probabilities, draw them.

Imported lazily, so that torch-free modules of this package (``video``) load without PyTorch.
"""
from __future__ import annotations

__all__ = ["Segmenter", "Prediction"]


def __getattr__(name: str):
    if name in __all__:
        from pixelwise.inference import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'pixelwise.inference' has no attribute {name!r}")
