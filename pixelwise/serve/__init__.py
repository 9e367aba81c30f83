"""REST serving of segmentation models (FastAPI under uvicorn): ``pixelwise serve MODEL``."""
from __future__ import annotations

from pixelwise.errors import PixelwiseError


class ServeError(PixelwiseError):
    """The server cannot start as asked (bad model path, unsafe binding without an API key...)."""


__all__ = ["ServeError"]
