"""Serve the browser example on loopback, cross-origin isolated, so onnxruntime-web runs on two
WebAssembly threads (``python3 -m http.server`` serves it too, but on one thread: browsers grant
threads, i.e. SharedArrayBuffer, only to pages sent with COOP/COEP headers).

    cd examples/javascript && python3 browser/serve.py        # then open http://127.0.0.1:8080/browser/

Standard library only. Also used by pixelwise's tests and benchmarks, which pass ``posts`` to
collect what a page POSTs (its ``?report=`` results).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import queue
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class ExampleSite(SimpleHTTPRequestHandler):
    """Static files with the MIME types module scripts and WebAssembly need, COOP/COEP headers
    when ``isolated``, and POSTs put on ``posts`` as (path, body) when a queue is given."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}
    isolated = True
    posts: queue.Queue | None = None
    quiet = True

    def end_headers(self) -> None:
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.posts is None:
            self.send_error(405, "this server takes no uploads")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()
        self.posts.put((self.path, body))

    def log_message(self, *args) -> None:
        if not self.quiet:
            super().log_message(*args)


@contextlib.contextmanager
def site_server(root: str | Path, isolated: bool = True, posts: queue.Queue | None = None,
                host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """``root`` served in a background thread; yields its base address (``port`` 0: a free one)."""
    handler = type("Site", (ExampleSite,), {"isolated": isolated, "posts": posts})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]),
                    help="folder to serve (default: examples/javascript, where node_modules is)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-isolation", action="store_true", help="omit COOP/COEP (onnxruntime-web on one thread)")
    a = ap.parse_args(argv)
    try:
        with site_server(a.root, not a.no_isolation, host=a.host, port=a.port) as base:
            print(f"serving {a.root} on {base}: open {base}/browser/ (Ctrl-C stops)", flush=True)
            threading.Event().wait()
    except OSError as exc:
        print(f"error: cannot listen on {a.host}:{a.port} ({exc.strerror}). Fix: pass another --port.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
