"""Starting the server: models loaded once, uvicorn on 127.0.0.1 unless told otherwise.

Binding to a non-loopback address requires an API key (``--api-key`` or PIXELWISE_API_KEY):
a segmentation endpoint open to a network is a free GPU/CPU for anyone.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Sequence

from pixelwise.serve import ServeError
from pixelwise.serve.models import load_model, parse_model_arg


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(model_args: Sequence[str], api_key: str | None = None, host: str = "127.0.0.1",
              max_upload_mb: float = 20.0, workers: int = 2, threads: int | None = None,
              backend: str = "auto", max_megapixels: float = 64.0, max_pending: int = 64) -> Any:
    from pixelwise.serve.app import create_app

    api_key = api_key or os.environ.get("PIXELWISE_API_KEY") or None
    if not is_loopback(host) and not api_key:
        raise ServeError(f"Refusing to bind to {host} without an API key.",
                         fix="pass --api-key KEY (or set PIXELWISE_API_KEY), or bind to 127.0.0.1")
    if not model_args:
        raise ServeError("No model to serve.", fix="pass an exported .onnx file or a .pt checkpoint")
    models: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    for arg in model_args:
        name, path = parse_model_arg(arg)
        if name in models:
            raise ServeError(f"Two models are named '{name}'.", path=path, fix="name them: NAME=PATH")
        models[name] = load_model(path, backend, threads)
        paths[name] = path
    return create_app(models, api_key, int(max_upload_mb * 2**20), workers, paths,
                      int(max_megapixels * 1e6), max_pending=max_pending)


def serve(model_args: Sequence[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_upload_mb: float = 20.0, workers: int = 2, threads: int | None = None,
          backend: str = "auto", log_level: str = "info", max_megapixels: float = 64.0,
          max_pending: int = 64) -> None:
    import uvicorn

    app = build_app(model_args, api_key, host, max_upload_mb, workers, threads, backend, max_megapixels,
                    max_pending)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
