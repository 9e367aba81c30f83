"""``pixelwise serve MODEL [MODEL...]``: parse, then call ``serve()``."""
from __future__ import annotations

import argparse


def cmd_serve(a: argparse.Namespace) -> int:
    from pixelwise.serve.server import serve

    serve(a.models, host=a.host, port=a.port, api_key=a.api_key, max_upload_mb=a.max_upload_mb,
          workers=a.workers, threads=a.threads, backend=a.backend, log_level=a.log_level,
          max_megapixels=a.max_megapixels, max_pending=a.max_pending, upload_timeout=a.upload_timeout,
          header_timeout=a.header_timeout)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="REST server: POST /v1/segment, GET /v1/models, GET /health, /docs")
    s.add_argument("models", nargs="+", help="exported .onnx/.xml or .pt checkpoint; NAME=PATH to name it")
    s.add_argument("--host", default="127.0.0.1", help="bind address (non-loopback requires --api-key)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require this key (X-API-Key header); or set PIXELWISE_API_KEY")
    s.add_argument("--max-upload-mb", type=float, default=20.0, help="larger uploads get 413 before being read")
    s.add_argument("--max-megapixels", type=float, default=64.0,
                   help="images declaring more pixels (millions) get 413 before being decoded")
    s.add_argument("--workers", type=int, default=2, help="concurrent inferences (worker pool size)")
    s.add_argument("--max-pending", type=int, default=64,
                   help="uploads in progress (queued or running) beyond which new ones get 503 + Retry-After")
    s.add_argument("--upload-timeout", type=float, default=30.0,
                   help="seconds an upload may stall (no data) before it gets 408 and frees its place; "
                        "after this time a body must also average 16 KiB/s")
    s.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection may take to send a request's headers before it gets 408 and is closed")
    s.add_argument("--threads", type=int, help="threads per inference (ONNX Runtime intra-op)")
    s.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "openvino"])
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"])
    s.set_defaults(func=cmd_serve)
