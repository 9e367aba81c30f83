"""The deployed default from JavaScript: a --pipeline export through onnxruntime-node and
onnxruntime-web's WebAssembly build (what a browser runs), against pixelwise's Python runtime
on the same file, same images, same threads, in alternating rounds.

    python benchmarks/javascript.py [--checkpoint runs/x/best.pt] [--rounds 3]

Needs node and npm (the example's locked dependencies are installed into a temporary folder);
with Chromium installed, a headless page runs the WebAssembly build too.
Without --checkpoint the model has untrained weights with trained-like BatchNorm terms (speed
only; the label map's tail costs a little more on a trained model's boundaries).
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "javascript"
sys.path.insert(0, str(HERE))

from inference import ARCH, C, ENCODER, H, THREADS, W, bench_images, calibration_folder, like_trained  # noqa: E402
from report import section, table, write_lines  # noqa: E402

# Times session.run on raw RGB frames (no decoding): the same work the Python rows time.
BENCH_MJS = r"""
import fs from "node:fs";
const [backend, model, raw, n, h, w, runs, threads, outFile] = process.argv.slice(2);
const ort = backend === "web" ? await import("onnxruntime-web") : (await import("onnxruntime-node")).default;
if (backend === "web") ort.env.wasm.numThreads = Number(threads);
const session = backend === "web"
  ? await ort.InferenceSession.create(fs.readFileSync(model))
  : await ort.InferenceSession.create(model, { intraOpNumThreads: Number(threads), interOpNumThreads: 1 });
const bytes = fs.readFileSync(raw);
const size = Number(h) * Number(w) * 3;
const frames = [...Array(Number(n)).keys()].map((i) =>
  new ort.Tensor("uint8", new Uint8Array(bytes.buffer, bytes.byteOffset + i * size, size), [Number(h), Number(w), 3]));
const labels = [];
for (const f of frames) labels.push(Buffer.from((await session.run({ image: f }, ["labels"])).labels.data));
fs.writeFileSync(outFile, Buffer.concat(labels));
for (let i = 0; i < 5; i++) await session.run({ image: frames[i % frames.length] }, ["labels"]);
const times = [];
for (let i = 0; i < Number(runs); i++) {
  const t = process.hrtime.bigint();
  await session.run({ image: frames[i % frames.length] }, ["labels"]);
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ median_ms: times[times.length >> 1] }));
"""


# The same loop in a page, for headless Chromium: frames and model fetched from a loopback server
# that makes the page cross-origin isolated (so WebAssembly gets its threads, as in Node).
BENCH_PAGE = r"""<!doctype html><meta charset="utf-8">
<script type="importmap">{"imports": {"onnxruntime-web": "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs"}}</script>
<script type="module">
import * as ort from "onnxruntime-web";
const q = new URLSearchParams(location.search);
const [n, h, w, runs, threads] = ["n", "h", "w", "runs", "threads"].map((k) => Number(q.get(k)));
ort.env.wasm.numThreads = threads;
const session = await ort.InferenceSession.create(new Uint8Array(await (await fetch(q.get("model"))).arrayBuffer()));
const bytes = new Uint8Array(await (await fetch("images.raw")).arrayBuffer());
const size = h * w * 3;
const frames = [...Array(n).keys()].map((i) => new ort.Tensor("uint8", bytes.subarray(i * size, (i + 1) * size), [h, w, 3]));
const labels = new Uint8Array(n * h * w);
for (let i = 0; i < n; i++) labels.set((await session.run({ image: frames[i] }, ["labels"])).labels.data, i * h * w);
for (let i = 0; i < 5; i++) await session.run({ image: frames[i % n] }, ["labels"]);
const times = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  await session.run({ image: frames[i % n] }, ["labels"]);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
await fetch("/labels", { method: "POST", body: labels });
await fetch("/report", { method: "POST", body: JSON.stringify({ median_ms: times[times.length >> 1],
  threads: ort.env.wasm.numThreads, isolated: crossOriginIsolated }) });
</script>
"""

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def chromium_rows(js: Path, model: Path, images: np.ndarray, runs: int, threads: int) -> tuple[float, np.ndarray, str]:
    """Median ms per call in headless Chromium (same loop as bench.mjs), its labels, its version."""
    import importlib.util
    import queue

    # The example's own server (browser/serve.py): cross-origin isolated, as its README runs it.
    spec = importlib.util.spec_from_file_location("example_serve", EXAMPLE / "browser" / "serve.py")
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    got: queue.Queue = queue.Queue()
    shutil.copy(model, js / model.name)
    with site.site_server(js, isolated=True, posts=got) as base:
        n, h, w = images.shape[:3]
        url = (f"{base}/bench.html?model={model.name}&n={n}&h={h}&w={w}&runs={runs}&threads={threads}")
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", f"--user-data-dir={js / 'chromium-profile'}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            posts = dict(got.get(timeout=600) for _ in range(2))
        finally:
            browser.kill()
            browser.wait()
    report = json.loads(posts["/report"])
    assert report["isolated"] and report["threads"] == threads, report
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.split()[1]
    return report["median_ms"], np.frombuffer(posts["/labels"], np.uint8).reshape(n, h, w), version


def install_example(where: Path) -> Path:
    for name in ("package.json", "package-lock.json"):
        shutil.copy(EXAMPLE / name, where / name)
    (where / "bench.mjs").write_text(BENCH_MJS)
    (where / "bench.html").write_text(BENCH_PAGE)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=where, check=True,
                   capture_output=True)
    return where


def python_rows(model: Path, images: np.ndarray, runs: int) -> tuple[float, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    labels = np.stack([sess.run(["labels"], {"image": im})[0] for im in images])
    for i in range(5):
        sess.run(["labels"], {"image": images[i % len(images)]})
    times = []
    for i in range(runs):
        t = time.perf_counter()
        sess.run(["labels"], {"image": images[i % len(images)]})
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), labels


def node_rows(js: Path, backend: str, model: Path, raw: Path, images: np.ndarray, runs: int,
              threads: int) -> tuple[float, np.ndarray]:
    out = js / f"labels_{backend}.raw"
    n, h, w = images.shape[:3]
    done = subprocess.run(["node", str(js / "bench.mjs"), backend, str(model), str(raw), str(n), str(h), str(w),
                           str(runs), str(threads), str(out)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"node {backend} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["median_ms"], np.fromfile(out, np.uint8).reshape(n, h, w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="a trained default model (else untrained, speed only)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40, help="timed calls per backend and round (web: a quarter)")
    ap.add_argument("--out", default=str(HERE / "results" / "javascript.json"))
    a = ap.parse_args()
    import torch

    from pixelwise.export import export
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.models import create_model

    torch.set_num_threads(THREADS)
    if a.checkpoint:
        seg, weights = Segmenter.load(a.checkpoint, device="cpu"), f"trained weights ({a.checkpoint})"
    else:
        # The same untrained weights every run: their near-tie logits make the wasm int8 labels'
        # agreement depend on them (100.000% in one unseeded run, 94.0% in another).
        torch.manual_seed(0)
        seg = Segmenter(like_trained(create_model(ARCH, ENCODER, C)).eval(), [f"class{i}" for i in range(C)], [],
                        255, "cpu")
        weights = "untrained weights, trained-like BatchNorm terms (speed only)"
    images, images_note = bench_images()
    tmp = Path(tempfile.mkdtemp(prefix="pw_js_"))
    try:
        (tmp / "js").mkdir()
        js = install_example(tmp / "js")
        raw = tmp / "images.raw"
        np.ascontiguousarray(images).tofile(raw)
        calib, calib_note = calibration_folder(tmp)
        models = {"int8": export(copy.deepcopy(seg), "onnx", tmp / "int8.onnx", int8=True, calib=calib,
                                 pipeline=True, outputs=("labels",), check=False).path,
                  "fp32": export(copy.deepcopy(seg), "onnx", tmp / "fp32.onnx", pipeline=True, outputs=("labels",),
                                 check=False).path}
        times: dict[tuple[str, str], list[float]] = {}
        agree: dict[tuple[str, str], float] = {}
        for _ in range(a.rounds):  # alternate, so every backend sees the same machine phases
            for prec, model in models.items():
                ms, ref = python_rows(model, images, a.runs)
                times.setdefault((prec, "python"), []).append(ms)
                for backend, runs in (("node", a.runs), ("web", max(4, a.runs // 4))):
                    ms, labels = node_rows(js, backend, model, raw, images, runs, THREADS)
                    times.setdefault((prec, backend), []).append(ms)
                    agree[(prec, backend)] = float((labels == ref).mean())
                if CHROMIUM:
                    shutil.copy(raw, js / "images.raw")
                    ms, labels, chromium = chromium_rows(js, model, images, max(4, a.runs // 4), THREADS)
                    times.setdefault((prec, "chromium"), []).append(ms)
                    agree[(prec, "chromium")] = float((labels == ref).mean())
        import onnxruntime

        versions = {"python": f"onnxruntime {onnxruntime.__version__} (Python)"}
        lock = json.loads((EXAMPLE / "package-lock.json").read_text())["packages"]
        versions["node"] = f"onnxruntime-node {lock['node_modules/onnxruntime-node']['version']}"
        versions["web"] = f"onnxruntime-web {lock['node_modules/onnxruntime-web']['version']} (WebAssembly, in Node)"
        if CHROMIUM:
            versions["chromium"] = (f"onnxruntime-web {lock['node_modules/onnxruntime-web']['version']} "
                                    f"(WebAssembly, headless Chromium {chromium})")
        node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for (prec, backend), ts in times.items():
        ms = statistics.median(ts)
        python_ms = statistics.median(times[(prec, "python")])
        rows.append(dict(precision=prec, backend=backend, runtime=versions[backend], ms=round(ms, 2),
                         rounds=[round(t, 2) for t in ts], vs_python=round(ms / python_ms, 2),
                         label_agreement=agree.get((prec, backend), 1.0)))
    res = dict(model=f"{ARCH}+{ENCODER}", size=[H, W], threads=THREADS, weights=weights, images=images_note,
               calibration=calib_note, node=node_version, rounds=a.rounds, runs=a.runs, rows=rows)
    from report import save_results

    save_results(res, a.out, write_markdown)
    return 0


def write_markdown(res: dict, path: Path) -> None:
    lines = [*section("The deployed default from JavaScript (Node.js, WebAssembly)", None,
                      f"- **Model:** {res['model']} `--pipeline --outputs labels` exports (uint8 image in, label map "
                      f"out), {res['weights']}; {res['calibration']}",
                      f"- **Input:** {res['images']}; batch 1, {res['threads']} threads everywhere; median of "
                      f"{res['runs']} calls per round (web: a quarter), median of {res['rounds']} alternating "
                      f"rounds; node {res['node']}"),
             *table(["precision", "runtime", "ms / image", "x Python's time", "labels equal to Python's"],
                    [(r["precision"], r["runtime"], r["ms"], r["vs_python"], f"{r['label_agreement'] * 100:.3f}%")
                     for r in res["rows"]], "llrrr"), "",
             "The Node and Chromium rows run `session.run` on the same decoded frames as the Python rows "
             "(decoding is not timed in any); `examples/javascript/segment.mjs` (Node) and "
             "`examples/javascript/browser/` (a page) are the end-to-end examples. The WebAssembly build is "
             "what `onnxruntime-web` runs in a browser page, with threads only where the page is "
             "cross-origin isolated: the Chromium rows are served so (COOP/COEP headers, checked in the "
             "page); in Node it runs the same wasm kernels."]
    write_lines(path, lines)


if __name__ == "__main__":
    raise SystemExit(main())
