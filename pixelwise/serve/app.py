"""The FastAPI application: ``POST /v1/segment``, ``GET /v1/models``, ``GET /health``, ``/docs``.

Inference runs in a bounded worker pool (threads; ONNX Runtime releases the GIL), so slow
requests queue instead of piling up, and the event loop keeps answering health checks.
"""
from __future__ import annotations

import json
import time
from urllib.parse import quote
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse, Response

from pixelwise.errors import ImageReadError, ImageTooLargeError, PixelwiseError
from pixelwise.runtime.imageio import decode_image, encode_png
from pixelwise.runtime.visualize import area_summary, rle_encode
from pixelwise.serve.auth import KEY_HELP, gate, key_matches, route_path
from pixelwise.serve.limits import BodySizeLimit, PendingLimit
from pixelwise.serve.models import describe
from pixelwise.serve.schema import SEGMENT_RESPONSES, error_responses

CLIENT_GONE = 499  # nginx's "client closed request": in the access log, never seen by the client


def accepted_type(content_type: str | None) -> bool:
    """An upload's media type, parameters dropped: ``image/*`` or ``application/octet-stream``
    (a prefix match let 'application/octet-streamjunk' through). None or empty: not said, accepted."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return not media or media.startswith("image/") or media == "application/octet-stream"


class RequestRefused(PixelwiseError):
    """A request this model cannot serve (answered with ``status``, the server keeps serving)."""

    def __init__(self, status: int, message: str, fix: str):
        super().__init__(message, fix=fix)
        self.status = status


def create_app(models: dict[str, Any], api_key: str | None = None, max_upload_bytes: int = 20 * 2**20,
               workers: int = 2, paths: dict[str, Path] | None = None, max_pixels: int = 64_000_000,
               tile_above: int = 2048 * 2048, tile: int = 1024, overlap: int = 128, max_pending: int = 64,
               stall_timeout: float = 30.0) -> Any:
    """``models``: name -> object with the Segmenter API (first one is the default).

    Images above ``tile_above`` pixels are predicted tile by tile (``tile``, ``overlap``), so a
    request's memory stays bounded: whole-image inference on 4096x4096 took 0.9 GB more, tiled 0.3.
    Beyond ``max_pending`` uploads in progress (queued for the ``workers`` or running), new ones get
    503 with Retry-After before their bodies are read. An upload that stalls for ``stall_timeout``
    seconds gets 408 and frees its place.
    """
    from pixelwise import __version__

    app = FastAPI(title="pixelwise", version=__version__,
                  description="Semantic segmentation: upload an image, get a label map, an overlay or "
                              "per-class areas with RLE masks.")
    limiter = anyio.CapacityLimiter(max(1, workers))  # requests past their upload, waiting for a worker
    threads = anyio.CapacityLimiter(max(1, workers))  # their own threads: not anyio's default pool, which
    # the sync routes (/health) share
    default = next(iter(models)) if models else None
    paths = paths or {}
    stats = {"requests": 0, "errors": 0, "started": time.time()}

    # The key's two forms, declared as OpenAPI security schemes so that /docs ("Authorize") and
    # client generators send it; without a key the API declares none.
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's --api-key")
    bearer = HTTPBearer(auto_error=False, description="the server's --api-key as 'Authorization: Bearer KEY'")

    def check_key(request: Request, _key: Any = Security(key_header), _bearer: Any = Security(bearer)) -> None:
        # ApiKeyGate answers first; this keeps a route safe if it is ever mounted without the gate.
        if api_key is not None and not key_matches(request.headers, api_key):
            raise HTTPException(401, KEY_HELP)

    keyed = [Depends(check_key)] if api_key is not None else []

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default is a list of pydantic errors; clients get one line with the fix, as
        # for every other refusal.
        return JSONResponse({"detail": validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # pixelwise's own refusals carry their fix; Starlette's (a multipart body it cannot parse,
        # a wrong method, an unknown path) get one too, in the same one-line form.
        detail = str(exc.detail)
        if "Fix:" not in detail:
            detail = f"{detail.rstrip('.')}. Fix: {HTTP_FIXES.get(exc.status_code, HTTP_FIXES[0])}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # a bug, not a bad request: one line to the client, the traceback to the server's log
        # (the message stays in the log: it may name the server's files)
        return JSONResponse({"detail": f"Internal error ({type(exc).__name__}). Fix: retry; if it persists, "
                                       "report it with the server's log"}, status_code=500)

    @app.head("/health", include_in_schema=False)  # load balancers' checks
    @app.get("/health", responses=error_responses(408))  # slow headers: 408 on any path
    def health() -> dict:
        return {"status": "ok", "models": list(models), "uptime_s": round(time.time() - stats["started"], 1),
                "requests": stats["requests"], "errors": stats["errors"]}

    @app.get("/v1/models", dependencies=keyed, responses=error_responses(401, 408))
    def list_models() -> dict:
        return {"default": default, "models": [describe(n, m, paths.get(n)) for n, m in models.items()]}

    @app.post("/v1/segment", dependencies=keyed, responses=SEGMENT_RESPONSES)
    async def segment(request: Request,
                      file: UploadFile = File(..., description="image file (PNG, JPEG, TIFF, BMP, WebP, GIF, "
                                                               "PNM or TGA)"),
                      model: str | None = Query(None, description="model name (GET /v1/models)"),
                      output: str = Query("labels", pattern="^(labels|overlay|color|json)$",
                                          description="labels: PNG of class ids; overlay/color: RGB PNG; "
                                                      "json: class areas + RLE masks"),
                      flip: bool = Query(False, description="flip test-time augmentation"),
                      masks: bool = Query(True, description="json output: include RLE masks")) -> Response:
        name = model or default
        if name not in models:
            raise HTTPException(404, f"Unknown model '{name}'. Fix: use one of {list(models)} (GET /v1/models).")
        if not accepted_type(file.content_type):
            raise HTTPException(415, f"Unsupported media type '{file.content_type}' for {file.filename}. "
                                     "Fix: upload an image (PNG, JPEG, TIFF, BMP, WebP, GIF, PNM or TGA).")
        if len((await request.form()).getlist("file")) > 1:  # parsed once: FastAPI's own form, cached
            raise HTTPException(400, "More than one 'file' field in the request: the server segments one image "
                                     "per request. Fix: send each image in its own request.")
        data = await file.read()
        seg = models[name]

        def handle() -> tuple[tuple[int, int, bool], bytes | dict]:  # (width, height, tiled), the body
            # Decoding, inference and encoding all in one pool thread: off the event loop, and no
            # more of them at once than ``workers``. The size is checked from the header first.
            image = decode_image(data, file.filename or "upload", max_pixels)
            big = image.shape[0] * image.shape[1] > tile_above
            if not getattr(seg, "has_scores", True) and (flip or big):  # a labels-only pipeline export
                raise RequestRefused(400 if flip else 413, 
                    f"Model '{name}' is a labels-only pipeline export: it cannot "
                    + ("flip (test-time augmentation needs class scores)" if flip else
                       f"tile an image of {image.shape[1]}x{image.shape[0]} (above {tile_above} pixels, "
                       "images are predicted in tiles to bound memory; tiles need class scores)")
                    + ".", fix=("drop flip" if flip else "send a smaller image")
                    + ", or serve an export with --outputs labels,probabilities")
            labels = seg.predict(image, flip=flip, **({"tile": tile, "overlap": overlap} if big else {})).labels
            size = (int(image.shape[1]), int(image.shape[0]), big)
            if output == "labels":
                return size, encode_png(labels)  # 16-bit PNG for models above 256 classes
            if output == "color":
                return size, encode_png(seg.colorize(labels))
            if output == "overlay":
                return size, encode_png(seg.overlay(image, labels), fast=True)
            areas = area_summary(labels, list(seg.names))
            body: dict[str, Any] = {"model": name, "width": size[0], "height": size[1], "classes": areas}
            if masks:
                body["masks"] = {a["name"]: rle_encode(labels == a["id"]) for a in areas if a["pixels"]}
                body["rle"] = "COCO uncompressed RLE, column-major, counts start with background"
            return size, body

        try:
            async with limiter:  # queued for a worker; a client that left meanwhile costs no inference
                if await request.is_disconnected():
                    return Response(status_code=CLIENT_GONE)
                (width, height, tiled), result = await anyio.to_thread.run_sync(handle, limiter=threads)
        except ImageTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        except RequestRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except ImageReadError as exc:
            raise HTTPException(400, str(exc)) from None
        headers = {"X-Model": header_name(name), "X-Image-Size": f"{width}x{height}"}
        if tiled:  # labels then differ from whole-image prediction on class boundaries
            headers["X-Tiled"] = f"tile={tile}, overlap={overlap}"
        if isinstance(result, dict):
            return JSONResponse(result, headers=headers)
        return Response(result, media_type="image/png", headers=headers)

    app.add_middleware(BodySizeLimit, limit=max_upload_bytes, stall_timeout=stall_timeout)
    app.add_middleware(PendingLimit, limit=max(1, max_pending))
    gate(app, api_key)  # runs before any body is read or upload slot taken
    app.add_middleware(CountRequests, stats=stats)  # added last: runs first, so it sees every answer
    return app


class CountRequests:
    """``/health``'s counters: every ``/v1/`` request, and those answered 4xx/5xx (by a route, a
    limit, the key gate or an exception) as errors."""

    def __init__(self, app: Any, stats: dict):
        self.app = app
        self.stats = stats

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not route_path(scope).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.stats["requests"] += 1
        status = {"code": 500}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status["code"] >= 400:
                self.stats["errors"] += 1


HTTP_FIXES = {
    0: "see /docs for the API",
    400: "send the image as multipart/form-data field 'file' (curl -F file=@image.jpg URL)",
    404: "see /docs for the routes: POST /v1/segment, GET /v1/models, GET /health",
    405: "use POST for /v1/segment and GET for /v1/models and /health",
}


def header_name(name: str) -> str:
    """A model name as an X-Model header value. Header values are Latin-1 and clients strip their
    edges, so any name that is not plain printable ASCII is sent percent-encoded; so is one holding
    '%', else a client could not tell 'a%20b' sent as is from 'a b' encoded."""
    plain = name.isascii() and name.isprintable() and "%" not in name and name == name.strip()
    return name if plain else quote(name, safe="")


def validation_message(errors: Any) -> str:
    """FastAPI's validation errors -> ``what. Fix: ...`` in one line."""
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query")]
        what = ".".join(loc) or "request"
        parts.append("no 'file' field in the multipart body" if loc == ["file"] and e.get("type") == "missing"
                     else f"{what}: {e.get('msg', 'invalid')}")
    return ("Bad request: " + "; ".join(parts) + ". Fix: send the image as multipart/form-data field 'file' "
            "(curl -F file=@image.jpg URL); query options: model=NAME, output=labels|overlay|color|json, "
            "flip=true|false, masks=true|false")


def openapi_json(app: Any) -> str:
    return json.dumps(app.openapi())
