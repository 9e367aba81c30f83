"""Export trained models for deployment: ONNX, OpenVINO, TorchScript; each verified against
PyTorch on real images at export time, each carrying its metadata record.

    from pixelwise.export import export
    res = export("runs/train/best.pt", format="onnx", pipeline=True)
    res.path, res.report.agreement
"""
from __future__ import annotations

from pixelwise.errors import PixelwiseError


class ExportError(PixelwiseError):
    """An export cannot be written, or does not reproduce the PyTorch model closely enough."""


def export(*args, **kwargs):
    """See ``pixelwise.export.exporter.export`` (imported lazily: it needs torch)."""
    from pixelwise.export.exporter import export as _export

    return _export(*args, **kwargs)


__all__ = ["ExportError", "export"]
