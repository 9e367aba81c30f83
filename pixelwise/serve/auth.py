"""API-key checks, answered before anything else reads the request.

The key is checked in ASGI middleware that runs ahead of the upload limits: as a route dependency
it ran only after ``BodySizeLimit`` had buffered the whole body, so a client without the key
could hold upload slots (and memory) by trickling bodies, and make the server refuse everyone
else with 503.
"""
from __future__ import annotations

import hmac
from typing import Any, Callable, Mapping

from pixelwise.serve.limits import Receive, Scope, Send, _reply

PROTECTED_PREFIX = "/v1/"  # /health and the OpenAPI docs stay open, as load balancers and humans need them
BODY_METHODS = ("POST", "PUT", "PATCH")  # on any path: the upload limits hold a slot for any request body
KEY_HELP = "Missing or wrong API key. Fix: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'."


def key_matches(headers: Mapping[str, str], api_key: str) -> bool:
    """``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` (header names lower-case), compared in
    constant time."""
    given = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:]
    return hmac.compare_digest(given.encode(), api_key.encode())


def route_path(scope: dict) -> str:
    """The path the app's router sees: without ``root_path`` when the app is mounted under a prefix
    (stripped at a segment boundary only, as Starlette does: '/v' is not a prefix of '/v1/...')."""
    path, root = scope.get("path", ""), scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def needs_key(scope: dict) -> bool:
    """``/v1/*``, and any request with a body: a key-less POST to /health (405 once read) would
    otherwise hold an upload slot while it trickled its body, and keyed clients got 503."""
    return route_path(scope).startswith(PROTECTED_PREFIX) or scope.get("method") in BODY_METHODS


class ApiKeyGate:
    """401 for requests that need the key (``needs_key``) without it, before their bodies are read."""

    def __init__(self, app: Callable, api_key: str):
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_key(scope):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            if not key_matches(headers, self.api_key):
                await _reply(send, 401, KEY_HELP, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


def gate(app: Any, api_key: str | None) -> None:
    """Add the gate to a FastAPI ``app`` (last added runs first: call it after the limits)."""
    if api_key is not None:
        app.add_middleware(ApiKeyGate, api_key=api_key)
