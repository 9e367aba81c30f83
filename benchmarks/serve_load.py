"""Bounded load test of ``pixelwise serve``: N requests at concurrency K, then stop.

Starts the server in a subprocess on a free loopback port (default: the default architecture,
untrained, exported to ONNX into a temp folder), posts a real image N times with K concurrent
clients, and reports throughput, p50/p95/p99 latency, errors and the server's RSS before,
half-way and after (memory must not grow). Exits non-zero on any error, on RSS growth above
--max-growth-mb, or above --max-late-growth-mb over the second half of the run.

    python benchmarks/serve_load.py [--model m.onnx] [--requests 1000] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model(tmp: Path) -> Path:
    from pixelwise.export import export
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.models.registry import create_model

    seg = Segmenter(create_model("fpn", "efficientnet_lite0", 11), [f"c{i}" for i in range(11)], [], 255, "cpu")
    return export(seg, "onnx", tmp / "default.onnx", check=False).path


def test_image(tmp: Path, size: tuple[int, int]) -> bytes:
    from PIL import Image
    import numpy as np

    files = sorted((CAMVID / "val" / "images").glob("*.jpg")) if CAMVID.exists() else []
    im = Image.open(files[0]).convert("RGB") if files else Image.fromarray(
        (np.random.default_rng(0).random((size[0], size[1], 3)) * 255).astype("uint8"))
    im = im.resize((size[1], size[0]))
    path = tmp / "img.jpg"
    im.save(path, quality=90)
    return path.read_bytes()


async def run_load(url: str, data: bytes, n: int, conc: int, timeout: float) -> tuple[list[float], list[str]]:
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            try:
                r = await client.post(f"{url}/v1/segment", params={"output": "json", "masks": "false"},
                                      files={"file": ("img.jpg", data, "image/jpeg")})
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:100]}")
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"{type(exc).__name__}: {exc}")
            lat.append(time.perf_counter() - t)

    async with httpx.AsyncClient(timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(conc)))
    return lat, errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="server inference pool size")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per inference")
    ap.add_argument("--size", default="240,320", help="test image H,W")
    ap.add_argument("--warmup", type=int, default=1500, help="requests before the measured ones")
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    ap.add_argument("--max-late-growth-mb", type=float, default=5.0,
                    help="allowed RSS growth over the second half of the run (a leak grows there too)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "serve_load.json"))
    a = ap.parse_args()
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="pw_load_"))
    model = Path(a.model) if a.model else default_model(tmp)
    size = tuple(int(v) for v in a.size.split(","))
    data = test_image(tmp, size)
    runtime_rps = runtime_rate(model, data, a.threads * a.workers)
    port = free_port()
    cmd = [sys.executable, "-m", "pixelwise.cli", "serve", str(model), "--port", str(port),
           "--workers", str(a.workers), "--threads", str(a.threads), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start")
        ps = psutil.Process(proc.pid)
        # Warm-up: the server's RSS climbs for the first 1000-2000 requests at concurrency 16 while the
        # allocator's per-thread arenas fill (139 -> 158.5 MB after 2000, 158.6 after 4000), then stays.
        asyncio.run(run_load(url, data, a.warmup, a.concurrency, 60))
        rss0 = ps.memory_info().rss
        # RSS sampled through the run: the allocator settles during the first requests (about
        # 20 MB at concurrency 16), a leak would keep growing; the second half tells them apart.
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                samples.append((time.perf_counter(), ps.memory_info().rss))

        sampler = threading.Thread(target=sample, daemon=True)
        t = time.perf_counter()
        sampler.start()
        lat, errors = asyncio.run(run_load(url, data, a.requests, a.concurrency, 60))
        wall = time.perf_counter() - t
        stop.set()
        sampler.join()
        rss1 = ps.memory_info().rss
        half = [r for ts, r in samples if ts - t <= wall / 2] or [rss0]
        rss_half = half[-1]
    finally:
        proc.terminate()
        proc.wait(10)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    res = {"requests": a.requests, "warmup": a.warmup, "concurrency": a.concurrency, "workers": a.workers, "threads": a.threads,
           "image": f"{size[1]}x{size[0]}", "errors": len(errors), "first_errors": errors[:5],
           "throughput_rps": round(a.requests / wall, 2), "p50_ms": round(pct(0.50), 1),
           "p95_ms": round(pct(0.95), 1), "p99_ms": round(pct(0.99), 1),
           "rss_before_mb": round(rss0 / 2**20, 1), "rss_half_mb": round(rss_half / 2**20, 1),
           "rss_after_mb": round(rss1 / 2**20, 1),
           "model": str(model), "runtime_alone_rps": round(runtime_rps, 2),
           "share_of_runtime_rate": round(a.requests / wall / runtime_rps, 3)}
    from report import save_results

    save_results(res, a.out, write_markdown)
    grew, grew_late = (rss1 - rss0) / 2**20, (rss1 - rss_half) / 2**20
    return 1 if errors or grew > a.max_growth_mb or grew_late > a.max_late_growth_mb else 0


def runtime_rate(model: Path, data: bytes, threads: int, n: int = 30) -> float:
    """Images/s of the runtime alone (decode + predict + PNG encode, sequential, same threads):
    the ceiling the server's throughput is compared with."""
    from pixelwise.runtime import RuntimeSegmenter
    from pixelwise.runtime.imageio import decode_image, encode_png

    seg = RuntimeSegmenter.load(model, threads=threads)
    for _ in range(3):
        seg.predict(decode_image(data))
    t = time.perf_counter()
    for _ in range(n):
        encode_png(seg.predict(decode_image(data)).labels)
    return n / (time.perf_counter() - t)


def write_markdown(res: dict, path: Path) -> None:
    from report import section, table, write_lines

    lines = [*section("REST server load test (loopback)", None,
                      f"- **Load:** {res['requests']} requests of a {res['image']} image at concurrency "
                      f"{res['concurrency']}; server pool {res['workers']} workers x {res['threads']} ONNX Runtime "
                      "threads"),
             *table(["errors", "throughput (req/s)", "runtime alone (img/s)", "share", "p50 ms", "p95 ms",
                     "p99 ms", "RSS before -> half-way -> after (MB)"],
                    [(res["errors"], res["throughput_rps"], res["runtime_alone_rps"],
                      f"{res['share_of_runtime_rate'] * 100:.0f}%", res["p50_ms"], res["p95_ms"], res["p99_ms"],
                      f"{res['rss_before_mb']} -> {res['rss_half_mb']} -> {res['rss_after_mb']}")], "rrrrrrrl"), "",
             f"RSS is the server process's, measured after {res['warmup']} warm-up requests (it climbs for the "
             "first 1000-2000 while the allocator's per-thread arenas fill, then stays); a leak would show "
             "as growth from half-way to the end."]
    write_lines(path, lines)


if __name__ == "__main__":
    raise SystemExit(main())
