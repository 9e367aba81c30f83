"""Export trained models for deployment: ONNX, OpenVINO, TorchScript; each verified against
PyTorch on real images at export time, each carrying its metadata record.

    from pixelwise.export import export
    res = export("runs/train/best.pt", format="onnx", pipeline=True)
    res.path, res.report.agreement
"""
from __future__ import annotations

import sys
import types
from typing import Any

from pixelwise.errors import PixelwiseError


class ExportError(PixelwiseError):
    """An export cannot be written, or does not reproduce the PyTorch model closely enough."""


def __getattr__(name: str):
    # ``export`` is the exporter's own function (its signature shows in help() and IDEs), loaded
    # on first use: it needs torch, and ExportError must import without it.
    if name == "export":
        from pixelwise.export.exporter import export

        globals()["export"] = export  # found directly from now on
        return export
    raise AttributeError(f"module 'pixelwise.export' has no attribute {name!r}")


class _ExportModule(types.ModuleType):
    """``pw.export(...)`` is the verb, like ``pw.train``; but once imported, this package is the
    attribute ``pixelwise.export`` itself, so the package is made callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.export(*args, **kwargs)


sys.modules[__name__].__class__ = _ExportModule

__all__ = ["ExportError", "export"]
