"""ASGI middleware that bounds what requests can make the server hold.

``BodySizeLimit`` refuses oversized request bodies with 413 before reading them whole: a declared
Content-Length above the limit is refused at once; a chunked body is counted as it arrives and
refused as soon as it passes the limit. At most ``limit`` bytes are ever buffered.

A body that stops arriving (no chunk for ``stall_timeout`` seconds) gets 408, so a stalled or
malicious client cannot hold its slot forever; nor can one that trickles a byte just before each
stall timeout: after the first ``stall_timeout`` seconds a body must average ``min_rate`` bytes/s.

``PendingLimit`` answers 503 (with Retry-After) to uploads beyond ``limit`` already in progress,
before reading their bodies: a burst of clients queues at most ``limit`` bodies in memory.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import anyio

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


async def _reply(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _reply_413(send: Send, limit: int) -> None:
    await _reply(send, 413, f"Upload larger than the server limit of {limit} bytes. "
                            "Fix: send a smaller image (or start the server with a larger --max-upload-mb).")


class PendingLimit:
    def __init__(self, app: Callable, limit: int):
        self.app = app
        self.limit = limit
        self.pending = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if self.pending >= self.limit:
            await _reply(send, 503, f"Server busy: {self.pending} uploads in progress. Fix: retry after "
                                    "the Retry-After delay (or start the server with a larger --max-pending).",
                         [(b"retry-after", b"1")])
            return
        self.pending += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= 1


class BodySizeLimit:
    def __init__(self, app: Callable, limit: int, stall_timeout: float = 30.0, min_rate: float = 16 * 1024):
        self.app = app
        self.limit = limit
        # A client that stops sending mid-upload would hold its pending slot (and buffer) forever:
        # a few such clients would make PendingLimit refuse everyone. Each chunk must come in time,
        # and the body as a whole at a rate that costs a flood real bandwidth (16 KiB/s: a 20 MiB
        # upload may take 21 minutes; 64 slots held take 1 MiB/s).
        self.stall_timeout = stall_timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _reply_413(send, self.limit)
            return
        chunks: list[bytes] = []
        size = 0
        started = anyio.current_time()
        while True:
            try:
                with anyio.fail_after(self.stall_timeout):
                    msg = await receive()
            except TimeoutError:
                await _reply(send, 408, f"Upload stalled: no data for {self.stall_timeout:g} s after {size} bytes. "
                                        "Fix: retry the request (and check the client's connection)")
                return
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            size += len(body)
            elapsed = anyio.current_time() - started
            if msg.get("more_body", False) and elapsed > self.stall_timeout and size < self.min_rate * elapsed:
                await _reply(send, 408, f"Upload too slow: {size} bytes in {elapsed:.0f} s; after the first "
                                        f"{self.stall_timeout:g} s the server needs {self.min_rate / 1024:g} KiB/s "
                                        "on average. Fix: retry from a faster connection (or send a smaller image)")
                return
            if size > self.limit:
                await _reply_413(send, self.limit)
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)
