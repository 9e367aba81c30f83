"""What the REST API answers, as OpenAPI sees it: every status a client can meet, with its cause.

Client generators and ``/docs`` read these: a 413 or a 503 is part of the contract (a client must
handle it), not an accident, so each is listed with the ``{"detail": ...}`` body it carries.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, then 'Fix: ...' where the client can act")


class ClassArea(BaseModel):
    id: int
    name: str
    pixels: int
    fraction: float = Field(description="share of the image's pixels")


class Rle(BaseModel):
    size: list[int] = Field(description="[height, width]")
    counts: list[int] = Field(description="COCO uncompressed RLE, column-major, starting with background")


class SegmentResult(BaseModel):
    """``output=json``: class areas, and with ``masks=true`` one RLE mask per class present."""

    model: str
    width: int
    height: int
    classes: list[ClassArea]
    masks: dict[str, Rle] | None = None
    rle: str | None = None


_ERRORS = {
    400: "the upload is not a decodable image, or asks what this model cannot do (flip on a labels-only export)",
    401: "missing or wrong API key (servers started with --api-key or PIXELWISE_API_KEY)",
    404: "unknown model name (see GET /v1/models)",
    408: "the upload stalled: no data for --upload-timeout (30 s by default), or after that time it "
         "averaged under 16 KiB/s; or the request's headers "
         "took longer than --header-timeout (10 s by default; the connection is then closed)",
    413: "upload above --max-upload-mb (refused before it is read), image above --max-megapixels, "
         "or an image too large for a labels-only export",
    415: "the upload's Content-Type is not an image type",
    422: "a missing multipart field 'file', or a query option out of its range (e.g. output=gif)",
    503: "too many uploads in progress (--max-pending); retry after the Retry-After header's seconds",
    500: "a fault in the server, not in the request (the traceback is in the server's log)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in codes}


_RESULT_HEADERS = {
    "X-Model": {"description": "the model that answered (percent-encoded when its name is not plain printable ASCII "
                           "or holds %)", "schema": {"type": "string"}},
    "X-Image-Size": {"description": "WIDTHxHEIGHT of the uploaded image", "schema": {"type": "string"}},
    "X-Tiled": {"description": "present when the image, above 2048x2048 pixels, was predicted tile by tile: "
                               "'tile=T, overlap=O' (labels then differ from whole-image prediction on some "
                               "class boundaries)", "schema": {"type": "string"}},
}

SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": SegmentResult, "headers": _RESULT_HEADERS,
          "description": "output=labels: PNG of class ids (8-bit; 16-bit above 256 classes); color/overlay: RGB PNG; json: class areas and masks",
          "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
    **error_responses(400, 401, 404, 408, 413, 415, 422, 503, 500),
}
