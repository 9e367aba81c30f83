"""Starting the server: models loaded once, uvicorn on 127.0.0.1 unless told otherwise.

Binding to a non-loopback address requires an API key (``--api-key`` or PIXELWISE_API_KEY):
a segmentation endpoint open to a network is a free GPU/CPU for anyone.
"""
from __future__ import annotations

import ipaddress
import os
import socket
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


def check_limits(**limits: float | None) -> None:
    """Counts must be at least 1 and sizes above 0: a server with --workers 0 or --max-upload-mb 0
    would start and then refuse or stall every request."""
    for option, value in limits.items():
        flag = "--" + option.replace("_", "-")
        if value is None:
            continue
        if option in ("workers", "max_pending", "threads") and (value < 1 or value != int(value)):
            raise ServeError(f"{flag} {value:g} is not a positive count.", fix=f"pass {flag} 1 or more")
        if value <= 0:
            raise ServeError(f"{flag} {value:g} would refuse every request.", fix=f"pass a {flag} above 0")


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so a taken port is one line with the fix (uvicorn logs it and
    exits 1 after starting up) and the address the server announces is the one it holds."""
    if not 0 <= port <= 65535:
        raise ServeError(f"--port {port} is not a TCP port.", fix="pass a port from 1 to 65535 (0: any free one)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host} cannot be resolved ({exc.strerror}).",
                         fix="pass an address such as 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"Cannot listen on {host}:{port} ({exc.strerror}).",
                         fix="pick another --port, or stop the program that holds this one") from None
    return sock


def build_app(model_args: Sequence[str], api_key: str | None = None, host: str = "127.0.0.1",
              max_upload_mb: float = 20.0, workers: int = 2, threads: int | None = None,
              backend: str = "auto", max_megapixels: float = 64.0, max_pending: int = 64,
              upload_timeout: float = 30.0) -> Any:
    from pixelwise.serve.app import create_app

    check_limits(workers=workers, max_pending=max_pending, threads=threads, max_upload_mb=max_upload_mb,
                 max_megapixels=max_megapixels, upload_timeout=upload_timeout)
    api_key = api_key or os.environ.get("PIXELWISE_API_KEY") or None
    if api_key is not None and not (api_key.isascii() and api_key.isprintable() and api_key == api_key.strip()):
        # HTTP header values are bytes: clients send non-ASCII keys in different encodings, and
        # servers strip surrounding spaces, so such a key could never match
        raise ServeError("The API key must be printable ASCII without surrounding spaces.",
                         fix="choose another key, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
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
                      int(max_megapixels * 1e6), max_pending=max_pending, stall_timeout=upload_timeout)


def serve(model_args: Sequence[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_upload_mb: float = 20.0, workers: int = 2, threads: int | None = None,
          backend: str = "auto", log_level: str = "info", max_megapixels: float = 64.0,
          max_pending: int = 64, upload_timeout: float = 30.0, header_timeout: float = 10.0) -> None:
    import uvicorn

    from pixelwise.serve.connections import uvicorn_config

    check_limits(header_timeout=header_timeout)
    sock = listening_socket(host, port)  # before loading models: a taken port fails in a second
    try:
        app = build_app(model_args, api_key, host, max_upload_mb, workers, threads, backend, max_megapixels,
                        max_pending, upload_timeout)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host, bound, header_timeout, log_level))
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    print(f"pixelwise: serving {', '.join(parse_model_arg(m)[0] for m in model_args)} on {url} "
          f"(API docs: {url}/docs; Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])
