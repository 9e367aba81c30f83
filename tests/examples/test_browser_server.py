"""The browser example's server (examples/javascript/browser/serve.py) as a user runs it."""
from __future__ import annotations

import re
import socket
import subprocess
import sys

import httpx

from tests.examples.helpers import EXAMPLE

SERVE = EXAMPLE / "browser" / "serve.py"


def test_serves_the_page_cross_origin_isolated_with_module_and_wasm_types(tmp_path):
    (tmp_path / "browser").mkdir()
    (tmp_path / "browser" / "index.html").write_text("<!doctype html>")
    (tmp_path / "browser" / "page.mjs").write_text("export {};")
    (tmp_path / "m.wasm").write_bytes(b"\0asm\1\0\0\0")
    proc = subprocess.Popen([sys.executable, str(SERVE), "--root", str(tmp_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)  # the port it got
        page = httpx.get(f"{base}/browser/index.html")
        assert page.status_code == 200
        # what lets a browser give onnxruntime-web its WebAssembly threads
        assert page.headers["cross-origin-opener-policy"] == "same-origin"
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        assert httpx.get(f"{base}/browser/page.mjs").headers["content-type"].startswith("text/javascript")
        assert httpx.get(f"{base}/m.wasm").headers["content-type"] == "application/wasm"
        assert httpx.post(f"{base}/report", content=b"{}").status_code == 405  # no uploads when run by a user
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_taken_port_is_one_line_with_the_fix(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(SERVE), "--root", str(tmp_path), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
