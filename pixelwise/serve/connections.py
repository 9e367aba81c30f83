"""HTTP connections: uvicorn's h11 protocol with a deadline for request headers.

uvicorn bounds the idle time between requests (keep-alive) but not the time a client may take to
send a request's headers: a client that connects and sends nothing, or trickles a header a byte
at a time ("slowloris"), holds its connection and file descriptor for as long as it likes, and
enough of them stop the server from accepting anyone. Here a connection must deliver each
request's complete headers within ``header_timeout`` seconds of connecting (or of its previous
response), else it gets 408 and is closed. Trickling does not extend the deadline. Bodies have
their own bound (``limits.BodySizeLimit``'s stall timeout), and h11 caps a header block at 16 KiB.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    """H11Protocol that closes connections whose request headers do not arrive in time."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self._request_in_progress():
            # The first bytes of the next request on a kept-alive connection start its clock.
            self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)
        super().data_received(data)
        if self._deadline is not None and self._request_in_progress():
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _request_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._request_in_progress():
            return
        body = json.dumps({"detail": f"Request headers not received within {self.header_timeout:g} s. Fix: send "
                                     "the whole request line and headers at once (or start the server with a "
                                     "larger --header-timeout)."}).encode()
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()


def header_deadline_protocol(header_timeout: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for this deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": float(header_timeout)})


def uvicorn_config(app: Any, host: str, port: int, header_timeout: float = 10.0, log_level: str = "info") -> Any:
    """uvicorn's Config for pixelwise's server (the CLI's and the tests' live servers use this)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          http=header_deadline_protocol(header_timeout))
