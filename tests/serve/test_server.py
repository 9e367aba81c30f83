"""A real uvicorn server on a free loopback port, hit with httpx: outputs, errors, auth, limits."""
from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.imageio import read_image
from pixelwise.runtime.visualize import rle_decode
from pixelwise.serve import ServeError
from pixelwise.serve.connections import uvicorn_config
from pixelwise.serve.server import build_app, serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The app under uvicorn as ``pixelwise serve`` configures it, on a free loopback port."""

    def __init__(self, app, header_timeout: float = 10.0):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port, header_timeout, "warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return f"http://127.0.0.1:{self.port}"
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def image_file(tiny_run) -> Path:
    from pixelwise.inference.predictor import Segmenter

    return sorted(Path(Segmenter.load(tiny_run.best).dataset_record()["val"]["images"]).glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def live(onnx_model):
    app = build_app([f"camvid={onnx_model}"], max_upload_mb=0.5)
    with LiveServer(app) as url:
        yield url


def _png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: a few hundred KB that decode to side**2 * 3 bytes of RGB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row * 1000) for _ in range(side // 1000)) + z.compress(row * (side % 1000)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_health_models_and_docs(live):
    assert httpx.get(f"{live}/health").json()["status"] == "ok"
    models = httpx.get(f"{live}/v1/models").json()
    assert models["default"] == "camvid" and models["models"][0]["num_classes"] == 11
    assert models["models"][0]["runtime"] == "onnxruntime"
    assert httpx.get(f"{live}/docs").status_code == 200
    assert "/v1/segment" in httpx.get(f"{live}/openapi.json").json()["paths"]


def test_openapi_documents_every_answer_a_client_can_get(live, image_file):
    """Client generators and /docs read the spec: each status met below must be listed there, and
    the JSON output must validate against the documented schema."""
    from pixelwise.serve.schema import SegmentResult

    doc = httpx.get(f"{live}/openapi.json").json()["paths"]["/v1/segment"]["post"]["responses"]
    assert set(doc["200"]["content"]) == {"image/png", "application/json"}
    assert {"X-Model", "X-Image-Size"} <= set(doc["200"]["headers"])
    good = image_file.read_bytes()
    post = lambda name, data, ctype="image/jpeg", **params: httpx.post(  # noqa: E731
        f"{live}/v1/segment", params=params, files={"file": (name, data, ctype)})
    met = {
        200: post("a.jpg", good, output="json"),
        400: post("empty.png", b"", "image/png"),
        404: post("a.jpg", good, model="nope"),
        413: post("big.jpg", b"\0" * (2 * 2**20)),
        415: post("a.txt", b"hi", "text/plain"),
        422: post("a.jpg", good, output="gif"),
    }
    for status, r in met.items():
        assert r.status_code == status and str(status) in doc, (status, r.text)
        if status != 200:
            assert isinstance(r.json()["detail"], str) and "Fix:" in r.json()["detail"]
    assert "output" in met[422].json()["detail"]
    missing = httpx.post(f"{live}/v1/segment", files={"img": ("a.jpg", good, "image/jpeg")})  # wrong field name
    assert missing.status_code == 422 and "no 'file' field" in missing.json()["detail"]
    assert {"401", "503"} <= set(doc)  # met in test_api_key_auth and the burst test
    body = met[200].json()
    assert set(body) <= set(SegmentResult.model_fields)
    SegmentResult.model_validate(body)
    # Pillow's own message names its in-memory buffer; the server names the upload instead.
    detail = met[400].json()["detail"]
    assert "empty.png" in detail and "upload is empty" in detail and "BytesIO" not in detail
    detail = post("notes.png", b"hello", "image/png").json()["detail"]
    assert "notes.png" in detail and "5 bytes" in detail and "BytesIO" not in detail


def test_segment_outputs_match_the_runtime(live, image_file, onnx_model):
    rt = RuntimeSegmenter.load(onnx_model)
    image = read_image(image_file)
    ref = rt.predict(image)
    data = image_file.read_bytes()
    r = httpx.post(f"{live}/v1/segment", files={"file": (image_file.name, data, "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(_png(r.content), ref.labels)
    r = httpx.post(f"{live}/v1/segment", params={"output": "overlay"}, files={"file": ("a.jpg", data, "image/jpeg")})
    np.testing.assert_array_equal(_png(r.content), rt.overlay(image, ref.labels))
    body = httpx.post(f"{live}/v1/segment", params={"output": "json"},
                      files={"file": ("a.jpg", data, "image/jpeg")}).json()
    assert (body["width"], body["height"]) == (image.shape[1], image.shape[0])
    assert sum(c["pixels"] for c in body["classes"]) == ref.labels.size
    for c in body["classes"]:
        if c["pixels"]:
            np.testing.assert_array_equal(rle_decode(body["masks"][c["name"]]), ref.labels == c["id"])


def test_large_images_are_predicted_tile_by_tile(onnx_model, image_file):
    from pixelwise.serve.app import create_app

    rt = RuntimeSegmenter.load(onnx_model)
    image = read_image(image_file)
    tiled = rt.predict(image, tile=64, overlap=16).labels
    assert (tiled != rt.predict(image).labels).any()  # so the answer tells which path ran
    app = create_app({"m": rt}, tile_above=image.shape[0] * image.shape[1] - 1, tile=64, overlap=16)
    with LiveServer(app) as url:
        r = httpx.post(f"{url}/v1/segment", files={"file": (image_file.name, image_file.read_bytes(), "image/jpeg")})
    assert r.status_code == 200 and r.headers["x-tiled"] == "tile=64, overlap=16"
    np.testing.assert_array_equal(_png(r.content), tiled)


def test_labels_only_pipeline_exports_refuse_flip_and_tiling_and_keep_serving(tiny_run, image_file, tmp_path):
    """Such a graph has no class scores to average or blend: flip and tiled requests got a 500."""
    from pixelwise.export import export
    from pixelwise.serve.app import create_app

    rt = RuntimeSegmenter.load(export(tiny_run.best, "onnx", tmp_path / "p.onnx", pipeline=True, outputs=("labels",),
                                      check=False).path)
    image = read_image(image_file)
    app = create_app({"p": rt}, tile_above=image.shape[0] * image.shape[1] - 1, tile=64, overlap=16)
    files = {"file": (image_file.name, image_file.read_bytes(), "image/jpeg")}
    small = {"file": ("half.png", _encode_png(image[: image.shape[0] // 2]), "image/png")}
    with LiveServer(app) as url:
        assert httpx.get(f"{url}/v1/models").json()["models"][0]["scores"] is False
        flipped = httpx.post(f"{url}/v1/segment?flip=true", files=small)
        big = httpx.post(f"{url}/v1/segment", files=files)
        plain = httpx.post(f"{url}/v1/segment", files=small)
    assert flipped.status_code == 400 and "labels-only" in flipped.json()["detail"] and "Fix:" in flipped.json()["detail"]
    assert big.status_code == 413 and "tile" in big.json()["detail"]
    assert plain.status_code == 200
    np.testing.assert_array_equal(_png(plain.content), rt.predict(image[: image.shape[0] // 2]).labels)


def test_a_burst_beyond_max_pending_gets_503_with_retry_after(onnx_model, image_file):
    from concurrent.futures import ThreadPoolExecutor

    from pixelwise.serve.app import create_app

    class SlowSegmenter(RuntimeSegmenter):  # the real model, 0.3 s slower per image
        def predict(self, *args, **kw):
            time.sleep(0.3)
            return super().predict(*args, **kw)

    app = create_app({"m": SlowSegmenter.load(onnx_model)}, workers=1, max_pending=2)
    data = image_file.read_bytes()
    with LiveServer(app) as url:
        def post(_):
            return httpx.post(f"{url}/v1/segment", files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(post, range(8)))
        codes = sorted(r.status_code for r in replies)
        assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
        busy = next(r for r in replies if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["detail"]
        assert post(0).status_code == 200  # the burst is over: served again


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(live, image_file):
    good = image_file.read_bytes()
    ok = lambda: httpx.post(f"{live}/v1/segment", files={"file": ("a.jpg", good, "image/jpeg")}).status_code  # noqa: E731
    r = httpx.post(f"{live}/v1/segment", files={"file": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 415 and "Unsupported media type" in r.json()["detail"]
    assert ok() == 200
    r = httpx.post(f"{live}/v1/segment", files={"file": ("a.jpg", good[: len(good) // 2], "image/jpeg")})
    assert r.status_code == 400 and "Cannot decode" in r.json()["detail"]
    r = httpx.post(f"{live}/v1/segment", files={"file": ("a.png", b"\x89PNG garbage", "application/octet-stream")})
    assert r.status_code == 400
    assert ok() == 200
    r = httpx.post(f"{live}/v1/segment", params={"model": "nope"}, files={"file": ("a.jpg", good, "image/jpeg")})
    assert r.status_code == 404 and "camvid" in r.json()["detail"]
    big = b"\0" * (2 * 2**20)
    r = httpx.post(f"{live}/v1/segment", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    bomb = _png_bomb(40000)  # 1.6 G pixels declared in a body under the upload limit
    assert len(bomb) < 0.5 * 2**20 and struct.unpack(">II", bomb[16:24]) == (40000, 40000)  # IHDR width, height
    t = time.perf_counter()
    r = httpx.post(f"{live}/v1/segment", files={"file": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 413 and "40000x40000" in r.json()["detail"]
    assert time.perf_counter() - t < 5  # refused from the header, not after decoding 4.8 GB

    def chunks():  # no Content-Length: counted while streaming, refused at the limit
        for _ in range(64):
            yield b"\0" * 65536

    r = httpx.post(f"{live}/v1/segment", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413
    assert ok() == 200
    # Starlette's own refusals come in the same one-line form, with a fix
    before = httpx.get(f"{live}/health").json()
    for r, status in ((httpx.post(f"{live}/v1/segment", content=b"x", headers={"content-type": "multipart/form-data"}),
                       400),  # no boundary
                      (httpx.get(f"{live}/v1/segment"), 405), (httpx.get(f"{live}/v1/nothing"), 404)):
        assert r.status_code == status and isinstance(r.json()["detail"], str) and "Fix:" in r.json()["detail"], r.text
    assert ok() == 200
    after = httpx.get(f"{live}/health").json()  # every /v1 request counted, the refused ones as errors
    assert (after["requests"] - before["requests"], after["errors"] - before["errors"]) == (4, 3)


def _uploads() -> dict[str, bytes]:
    """Real files of every kind Pillow writes that users send: modes, formats, odd shapes, frames."""
    rgb = Image.fromarray((np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8))

    def enc(im: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    frames = [rgb.rotate(10 * i) for i in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": the server, like the runtime, segments the photo as displayed
    files = {f"rgb.{fmt.lower()}": enc(rgb, fmt) for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF", "PPM", "TGA")}
    files |= {f"{mode}.png": enc(rgb.convert(mode), "PNG") for mode in ("L", "LA", "RGBA", "P", "1")}
    files |= {
        "palette_transparency.png": enc(rgb.convert("P"), "PNG", transparency=0),
        "grey16.png": enc(Image.fromarray(np.asarray(rgb)[..., 0].astype(np.uint16) * 200), "PNG"),
        "int32.tiff": enc(Image.fromarray(np.asarray(rgb)[..., 0].astype(np.int32) * 1000), "TIFF"),
        "float.tiff": enc(Image.fromarray(np.asarray(rgb)[..., 0].astype(np.float32) / 7), "TIFF"),
        "cmyk.jpg": enc(rgb.convert("CMYK"), "JPEG"),
        "exif_rotated.jpg": enc(rgb, "JPEG", exif=exif.tobytes()),
        "one_pixel.png": enc(Image.new("RGB", (1, 1)), "PNG"),
        "one_row.png": enc(Image.new("RGB", (3000, 1)), "PNG"),
        "animated.gif": enc(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "pages.tiff": enc(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
    }
    return files


def test_every_image_kind_and_damaged_file_gets_an_answer_not_a_server_error(live):
    sizes = {"one_pixel.png": "1x1", "one_row.png": "3000x1", "exif_rotated.jpg": "70x90"}  # turned upright
    for name, data in _uploads().items():
        r = httpx.post(f"{live}/v1/segment", files={"file": (name, data, "image/png")})
        assert r.status_code == 200, (name, r.text)
        assert r.headers["x-image-size"] == sizes.get(name, "90x70") and _png(r.content).shape == (
            *map(int, reversed(r.headers["x-image-size"].split("x"))),)
        for cut in (len(data) // 4, len(data) // 2, len(data) - 8):  # truncated uploads
            r = httpx.post(f"{live}/v1/segment", params={"output": "json"},
                           files={"file": (f"cut_{name}", data[:cut], "image/png")})
            # Some formats decode a truncated tail as padding; the rest must say why they cannot.
            assert r.status_code in (200, 400), (name, cut, r.status_code, r.text)
            if r.status_code == 400:
                assert f"cut_{name}" in r.json()["detail"] and "Fix:" in r.json()["detail"]
    assert httpx.get(f"{live}/health").json()["status"] == "ok"


def test_names_and_keys_outside_ascii(onnx_model, image_file):
    """A model named in another script answered 500 after predicting (HTTP header values are
    Latin-1); a non-ASCII API key was accepted at start-up and could never match."""
    from urllib.parse import unquote

    names = ("模型", "a%20b", "a b", "plain-name_1")  # '%' is encoded too, so decoding is unambiguous
    app = build_app([f"{n}={onnx_model}" for n in names])
    with LiveServer(app) as url:
        for n in names:
            r = httpx.post(f"{url}/v1/segment", params={"model": n},
                           files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg")})
            assert r.status_code == 200 and unquote(r.headers["x-model"]) == n, (n, r.headers.get("x-model"))
        assert r.headers["x-model"] == "plain-name_1"  # a plain name is sent as is
    for key in ("k€y", " key", "ke\ny"):
        with pytest.raises(ServeError, match="printable ASCII"):
            build_app([str(onnx_model)], api_key=key)


def test_api_key_auth(onnx_model, image_file):
    app = build_app([str(onnx_model)], api_key="s3cret")
    with LiveServer(app) as url:
        assert httpx.get(f"{url}/health").status_code == 200  # liveness stays open
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        r = httpx.post(f"{url}/v1/segment", headers={"Authorization": "Bearer s3cret"},
                       files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg")})
        assert r.status_code == 200
    # mounted inside a user's own app, the gate (not only the route's check, which runs after the
    # body is read) still answers: it says so with WWW-Authenticate
    import asyncio

    from fastapi import FastAPI

    outer = FastAPI()
    outer.mount("/api", app)

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://t") as c:
            return [await c.get("/api/v1/models"), await c.get("/api/v1/models", headers={"X-API-Key": "s3cret"})]

    refused, served = asyncio.run(ask())
    assert refused.status_code == 401 and refused.headers.get("www-authenticate") == "Bearer"
    assert served.status_code == 200

    async def behind_proxy(root: str) -> httpx.Response:  # a root_path that is not a whole segment of it
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path=root), base_url="http://t") as c:
            return await c.get("/v1/models")

    for root in ("/v", "/"):
        r = asyncio.run(behind_proxy(root))
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer", root


UPLOAD_HEAD = (b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
               b"Content-Length: 100000\r\n\r\n--b\r\n")


def test_without_the_key_an_upload_is_refused_before_its_body_and_takes_no_place(onnx_model, image_file):
    """The key was checked only after the whole body had been read: clients without it could
    trickle bodies, hold every upload place and make the server answer 503 to everyone."""
    app = build_app([str(onnx_model)], api_key="s3cret", max_pending=1, upload_timeout=5.0)
    with LiveServer(app) as url:
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        with socket.create_connection(address) as intruder:
            intruder.sendall(UPLOAD_HEAD)  # and the rest of the body never comes
            answer, took = _answer_and_time(intruder)
            assert answer.startswith(b"HTTP/1.1 401") and b"API key" in answer and took < 2
        with socket.create_connection(address) as other:
            other.sendall(UPLOAD_HEAD)
            r = httpx.post(f"{url}/v1/segment", headers={"X-API-Key": "s3cret"},
                           files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg")})
            assert r.status_code == 200  # the only place was not taken by the keyless upload
        # The gate covered /v1/ only, the limits every body: a keyless POST to /health or to no
        # route at all held the place while it trickled, and keyed uploads got 503.
        for path in (b"/health", b"/nowhere"):
            with socket.create_connection(address) as intruder:
                intruder.sendall(UPLOAD_HEAD.replace(b"/v1/segment", path))
                answer, took = _answer_and_time(intruder)
                assert answer.startswith(b"HTTP/1.1 401") and took < 2, (path, answer[:60])
        assert httpx.head(f"{url}/health").status_code == 200  # no body, no key: load balancers' checks


def test_a_body_trickled_below_the_minimum_rate_gets_408(onnx_model, image_file):
    """Each chunk within the stall timeout, a few bytes at a time, used to hold an upload place
    for as long as the client liked (64 such clients took every place)."""
    app = build_app([str(onnx_model)], max_pending=1, upload_timeout=1.0)
    with LiveServer(app) as url:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as trickling:
            trickling.sendall(UPLOAD_HEAD)
            answer, took = _answer_and_time(trickling, b"x" * 200, every=0.3)
        assert answer.startswith(b"HTTP/1.1 408") and b"Upload too slow" in answer and 0.9 < took < 4
        r = httpx.post(f"{url}/v1/segment", files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg")})
        assert r.status_code == 200  # the place is free again


def test_non_loopback_requires_a_key_and_bad_paths_are_refused(onnx_model, tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELWISE_API_KEY", raising=False)
    with pytest.raises(ServeError, match="API key"):
        build_app([str(onnx_model)], host="0.0.0.0")
    build_app([str(onnx_model)], host="0.0.0.0", api_key="k")
    with pytest.raises(ServeError, match="not found"):
        build_app([str(tmp_path / "missing.onnx")])


def test_limits_names_and_ports_that_cannot_work_are_refused_in_one_line(onnx_model):
    """Each of these used to start a server that refused or stalled every request, or print
    uvicorn's traceback or log line and exit."""
    import subprocess
    import sys

    refused = {"--workers 0 is not a positive count": dict(workers=0),
               "--max-pending 0 is not a positive count": dict(max_pending=0),
               "--threads 0 is not a positive count": dict(threads=0),
               "--max-upload-mb 0 would refuse every request": dict(max_upload_mb=0),
               "--max-megapixels -1 would refuse every request": dict(max_megapixels=-1)}
    for message, options in refused.items():
        with pytest.raises(ServeError, match=message):
            build_app([str(onnx_model)], **options)
    with pytest.raises(ServeError, match="empty name"):
        build_app([f"={onnx_model}"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, message in [(["--port", str(port)], f"Cannot listen on 127.0.0.1:{port}"),
                              (["--port", "70000"], "--port 70000 is not a TCP port")]:
            done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "serve", str(onnx_model), *args],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2 and message in done.stderr, done.stderr
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_stalled_upload_gets_408_and_frees_its_place(onnx_model, image_file):
    """A client that stops sending mid-body used to hold a pending slot forever: with
    --max-pending 1 one such client locked everyone else out (503) until it disconnected."""
    app = build_app([str(onnx_model)], max_pending=1, upload_timeout=1.0)
    with LiveServer(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as stalled:
            stalled.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                            b"Content-Length: 100000\r\n\r\n--b\r\n")  # then nothing
            stalled.settimeout(10)
            t = time.perf_counter()
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = stalled.recv(4096)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408") and 0.9 < time.perf_counter() - t < 5
        r = httpx.post(f"{url}/v1/segment", files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg")})
        assert r.status_code == 200  # the place is free again
    with pytest.raises(ServeError, match="--upload-timeout 0 would refuse every request"):
        build_app([str(onnx_model)], upload_timeout=0)


def _answer_and_time(sock: socket.socket, trickle: bytes = b"", every: float = 0.2) -> tuple[bytes, float]:
    """Read until the server closes ``sock`` (sending ``trickle`` a byte at a time meanwhile):
    what it answered and how long it took."""
    sock.settimeout(every)
    t = time.perf_counter()
    answer, sent = b"", 0
    while time.perf_counter() - t < 10:
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent:sent + 1])
                sent += 1
            except OSError:
                break
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
    return answer, time.perf_counter() - t


def test_slow_request_headers_get_408_and_the_connection_is_closed(onnx_model, image_file):
    """A client that connects and sends nothing, or trickles its headers a byte at a time
    (slowloris), used to hold its connection forever; enough of them lock the server up."""
    app = build_app([str(onnx_model)], upload_timeout=5.0)
    with LiveServer(app, header_timeout=1.0) as url:
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        with socket.create_connection(address) as silent:
            answer, took = _answer_and_time(silent)
        assert answer.startswith(b"HTTP/1.1 408") and b"--header-timeout" in answer and 0.9 < took < 3
        with socket.create_connection(address) as trickling:  # each byte within the deadline, the whole not
            answer, took = _answer_and_time(trickling, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 20)
        assert answer.startswith(b"HTTP/1.1 408") and 0.9 < took < 3
        with socket.create_connection(address) as kept:  # the next request on a kept-alive connection
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            kept.settimeout(5)
            first = kept.recv(4096)
            while b"\r\n\r\n" not in first:
                first += kept.recv(4096)
            head, body = first.split(b"\r\n\r\n", 1)
            length = int(next(ln.split(b":", 1)[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
            while len(body) < length:  # the body may come in a later segment: read all of it, or the
                body += kept.recv(4096)  # next answer below would start with it (seen once under load)
            assert first.startswith(b"HTTP/1.1 200")
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
            answer, took = _answer_and_time(kept)
        assert answer.startswith(b"HTTP/1.1 408") and 0.9 < took < 3

        # Headers in time, then a body slower than the header deadline: served (the body has its
        # own stall bound), the deadline ended with the headers.
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
                b"Content-Type: image/jpeg\r\n\r\n" + image_file.read_bytes() + b"\r\n--b--\r\n")
        with socket.create_connection(address) as slow_body:
            slow_body.sendall(b"POST /v1/segment?output=json HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                              b"boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            for i in range(4):
                time.sleep(0.4)
                slow_body.sendall(body[i * len(body) // 4:(i + 1) * len(body) // 4])
            slow_body.settimeout(30)
            answer = slow_body.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert httpx.get(f"{url}/health").status_code == 200
    with pytest.raises(ServeError, match="--header-timeout 0 would refuse every request"):
        serve([str(onnx_model)], header_timeout=0)


def _ico_holding(png: bytes) -> bytes:
    """An ICO whose directory declares 16x16 and whose picture is ``png``, of any size."""
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22) + png


def test_uploads_outside_the_documented_formats_are_refused_before_decoding(live, image_file):
    """Pillow's ICO plugin decodes its picture when the file is opened, before the declared-size
    check could refuse it (258 KB decoded to 81 megapixels; 5 MB would be 4.8 GB); its DDS plugin
    raised NotImplementedError, answered 500. Uploads are opened as the README's formats only."""
    dds = (b"DDS " + struct.pack("<7I", 124, 0x1007, 48, 64, 0, 0, 0) + b"\0" * 44 + struct.pack("<2I", 32, 0)
           + b"\0" * 104)
    for name, data in (("bomb.ico", _ico_holding(_png_bomb(20000))), ("odd.dds", dds)):
        r = httpx.post(f"{live}/v1/segment", files={"file": (name, data, "image/png")})
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert name in r.json()["detail"] and "none of the formats" in r.json()["detail"], r.text
    for ctype in ("application/octet-streamjunk", "imagery/png"):  # prefix matches let these through
        r = httpx.post(f"{live}/v1/segment", files={"file": ("a.jpg", image_file.read_bytes(), ctype)})
        assert r.status_code == 415, (ctype, r.status_code)
    r = httpx.post(f"{live}/v1/segment", files={"file": ("a.jpg", image_file.read_bytes(), "image/jpeg; q=1")})
    assert r.status_code == 200
    two = [("file", ("a.jpg", image_file.read_bytes(), "image/jpeg")), ("file", ("b.txt", b"hi", "image/png"))]
    r = httpx.post(f"{live}/v1/segment", files=two)  # the last part was used silently
    assert r.status_code == 400 and "one image per request" in r.json()["detail"]
    assert httpx.get(f"{live}/health").json()["status"] == "ok"


def test_openapi_declares_the_api_key_only_when_the_server_has_one(onnx_model, live):
    """/docs could not send the key ("Authorize" had nothing to fill in), nor could generated clients."""
    from pixelwise.serve.app import create_app

    keyed = create_app({"m": RuntimeSegmenter.load(onnx_model)}, api_key="s3cret").openapi()
    schemes = keyed["components"]["securitySchemes"]
    assert {("in", "header"), ("name", "X-API-Key")} <= set(schemes["APIKeyHeader"].items())
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for path, method in (("/v1/segment", "post"), ("/v1/models", "get")):
        assert keyed["paths"][path][method]["security"], path
    assert "security" not in keyed["paths"]["/health"]["get"]
    open_doc = httpx.get(f"{live}/openapi.json").json()
    assert "securitySchemes" not in open_doc.get("components", {})
    assert "security" not in open_doc["paths"]["/v1/segment"]["post"]


def test_a_queued_upload_whose_client_left_is_not_predicted(onnx_model, image_file):
    """Inference ran for clients that had hung up: four abandoned 56 KB uploads of a flat
    4000x4000 PNG kept the next request waiting a minute."""
    from pixelwise.serve.app import create_app

    release, calls = threading.Event(), []

    class GatedSegmenter(RuntimeSegmenter):  # the real model; its first call waits for the test
        def predict(self, *args, **kw):
            calls.append(1)
            if len(calls) == 1:
                release.wait(30)
            return super().predict(*args, **kw)

    app = create_app({"m": GatedSegmenter.load(onnx_model)}, workers=1)
    data = image_file.read_bytes()
    with LiveServer(app) as url:
        post = lambda: httpx.post(f"{url}/v1/segment", files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30)  # noqa: E731
        first = threading.Thread(target=lambda: calls.append(post().status_code))
        first.start()
        while not calls:  # the only worker is busy with the first upload
            time.sleep(0.02)
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
                b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b--\r\n")
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as leaving:
            leaving.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                            b"boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.5)  # read and queued behind the first
        time.sleep(0.3)  # the server sees the connection closed
        release.set()
        first.join(30)
        assert post().status_code == 200
        health = httpx.get(f"{url}/health").json()
    assert calls.count(1) == 2, calls  # the first upload and the last: the abandoned one was skipped
    assert health["requests"] == 3 and health["errors"] == 1
