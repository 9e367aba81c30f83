"""Colour label maps and blend them over images. One numpy implementation serves both the
PyTorch predictor and the torch-free runtime: it lives in ``pixelwise.runtime.visualize``."""
from pixelwise.runtime.visualize import DrawMixin, area_summary, colorize, overlay

__all__ = ["DrawMixin", "area_summary", "colorize", "overlay"]
