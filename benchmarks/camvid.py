"""Side-by-side CamVid training benchmark: pixelwise vs. SMP (plain loop) vs. Ultralytics yolo26n-sem.

Each contender trains on CamVid train within the same wall-clock TRAINING budget, in its own
subprocess, one after another (never in parallel), then predicts the whole val split at full
360x480; every contender's predictions are scored with pixelwise's ConfusionMatrix (dataset-level,
ignore index excluded), so the metric is identical.

    .venv/bin/python benchmarks/camvid.py                      # 25 minutes each, all three
    .venv/bin/python benchmarks/camvid.py --minutes 0.5 --smoke --only smp   # smoke run

Writes ``benchmarks/results/camvid.md`` and ``benchmarks/results/camvid.json`` (``--out``).
Nothing is downloaded: the children run with all network access refused (attempts are
recorded in the JSON) and Ultralytics in offline mode.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = (REPO / ".." / "shared" / "datasets" / "camvid" / "dataset.yaml").resolve()
CONTENDERS = {
    "pixelwise": ("peers.pixelwise_recipe", "pixelwise (default recipe: FPN-Lite + EfficientNet-Lite0)"),
    "smp": ("peers.smp_loop", "SMP Unet + EfficientNet-Lite0 (plain PyTorch loop)"),
    "yolo": ("peers.yolo_sem", "Ultralytics yolo26n-sem (from scratch)"),
}


# --------------------------------------------------------------------------- child side
def _refuse_network(log: list[str]) -> None:
    """Make every non-local connection fail fast (and remember who tried)."""
    import socket

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def caller() -> str:
        """The innermost frame outside the networking libraries: who wanted the network."""
        import traceback

        skip = ("socket.py", "/urllib", "/http/", "/requests/", "/urllib3/", "/ssl.py", "threading.py",
                "/concurrent/", "camvid.py")
        for fr in reversed(traceback.extract_stack()):
            if not any(s in fr.filename for s in skip):
                return f"{Path(fr.filename).parent.name}/{Path(fr.filename).name}:{fr.lineno} {fr.name}"
        return "?"

    def local(host) -> bool:
        return host in (None, "", "localhost", "127.0.0.1", "::1") or str(host).startswith("/")

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            log.append(f"getaddrinfo {host} from {caller()}")
            raise socket.gaierror(f"benchmark: network disabled ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            log.append(f"connect {address} from {caller()}")
            raise OSError(f"benchmark: network disabled ({address})")
        return real_connect(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect


def child_main(args: argparse.Namespace) -> int:
    attempts: list[str] = []
    _refuse_network(attempts)
    sys.path.insert(0, str(HERE))
    import importlib

    module = importlib.import_module(CONTENDERS[args.child][0])
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if args.child == "yolo":
        kwargs["imgsz"] = args.yolo_imgsz
    result = module.run(str(args.data), args.minutes, workdir, smoke=args.smoke, **kwargs)
    result["network_attempts"] = sorted(set(attempts))
    Path(args.child_out).write_text(json.dumps(result, indent=2))
    return 0


# --------------------------------------------------------------------------- parent side
def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        mem_gb = float("nan")
    from importlib.metadata import PackageNotFoundError, version

    versions = {}  # read from metadata: importing ultralytics here would touch ~/.config and the network
    for dist in ("torch", "pixelwise", "segmentation-models-pytorch", "timm", "ultralytics"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return {"cpu": cpu, "cores": cores, "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants (workers included) twice a second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        while not self.done.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root] + root.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self.done.wait(0.5)


def run_contender(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    out_json = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-out", str(out_json),
           "--workdir", str(workdir / name), "--data", str(args.data), "--minutes", str(args.minutes),
           "--yolo-imgsz", str(args.yolo_imgsz)] + (["--smoke"] if args.smoke else [])
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                "PIP_NO_INDEX": "1",
                "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations asks pypi.org for updates at import
                "YOLO_CONFIG_DIR": str(workdir / name / "ultralytics_config")})
    timeout = args.minutes * 60 * 1.5 + 1800  # a hung contender must not hold the machine forever
    t0 = time.time()
    record: dict = {"name": name, "label": CONTENDERS[name][1]}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO), env=env)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone (and its reaped workers)
        finally:
            killer.cancel()
            sampler.done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    record["wall_seconds_total"] = round(time.time() - t0, 1)
    record["peak_rss_gb"] = round(usage.ru_maxrss * 1024 / 1e9, 3)  # largest single process (KiB on Linux)
    record["peak_tree_rss_gb"] = round(sampler.peak / 1e9, 3) if sampler.peak else None
    record["log"] = str(log_path)
    if proc.returncode == 0 and out_json.exists():
        record.update(json.loads(out_json.read_text()))
        record["status"] = "ok"
    else:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        err = next((ln for ln in reversed(tail) if ln.strip() and not ln.startswith(" ")), "")
        record.update(status="failed", returncode=proc.returncode,
                      error=(err or f"exit code {proc.returncode}")[:300], log_tail=tail)
    return record


def _fmt(v, nd=2, scale=1.0) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, (int, float)):
        return f"{v * scale:.{nd}f}"
    return str(v)


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# CamVid side-by-side training benchmark", "",
        f"- **Date:** {report['date']}",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- **Command:** `{report['command']}`",
        f"- **Training budget:** {report['minutes']:g} minutes per contender (wall clock, one contender "
        "at a time)" + (" — **SMOKE RUN: val scored on "
                          f"{report['smoke_val_images']} images only, numbers are meaningless**"
                          if report["smoke"] else ""),
        f"- **Data:** `{report['data']}` (train {report['train_images']} images; val "
        f"{report['val_images']} images scored at full 360x480)",
        "- **Metric:** val mIoU from one dataset-level confusion matrix (ignore index excluded), "
        "`pixelwise.engine.metrics.ConfusionMatrix` for every contender.", "",
        "| Contender | val mIoU | epochs | train img/s | peak RSS GB (largest process) "
        "| peak RSS GB (process tree) | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        status = "ok" if r["status"] == "ok" else f"FAILED: {r.get('error', '')}".replace("|", "/")
        lines.append(f"| {r['label']} | {_fmt(r.get('miou'))} | {_fmt(r.get('epochs'), 1)} | "
                     f"{_fmt(r.get('train_img_s'))} | {_fmt(r.get('peak_rss_gb'))} | "
                     f"{_fmt(r.get('peak_tree_rss_gb'))} | {status} |")
    ok = [r for r in report["results"] if r["status"] == "ok"]
    if ok:
        names = list(ok[0]["per_class_iou"])
        lines += ["", "## Per-class val IoU (%)", "",
                  "| Class | " + " | ".join(r["name"] for r in ok) + " |",
                  "|---|" + "---:|" * len(ok)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(_fmt(r["per_class_iou"].get(n)) for r in ok) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{_fmt(r['miou'])}**" for r in ok) + " |")
        lines += ["", "## Details", ""]
        for r in ok:
            extra = ""
            if r.get("ultralytics_val_miou") is not None:
                extra = f"; Ultralytics' own validator said {r['ultralytics_val_miou']:.2f} mIoU"
            lines.append(f"- **{r['name']}**: {r.get('images_seen')} training images in "
                         f"{r.get('train_seconds')} s of training ({r.get('epochs_reported')} epochs as "
                         f"the tool counts them, batch {r.get('batch_size')}){extra}; network attempts: "
                         f"{len(r.get('network_attempts', []))}. Settings: `{json.dumps(r.get('settings', {}))}`")
    lines += ["", "Epochs = training images seen / train-set size. Train img/s = images seen / training "
              "seconds (data loading included, validation excluded). Peak RSS: `ru_maxrss` of the "
              "contender's process (the largest single process, via wait4), and the largest sampled sum "
              "over the process and its DataLoader workers (shared pages counted once per process).", ""]
    return "\n".join(lines)


def print_table(report: dict) -> None:
    print(f"\nCamVid, {report['minutes']:g} min training budget each"
          + (" (SMOKE: val on few images)" if report["smoke"] else ""))
    print(f"{'contender':<12}{'mIoU':>8}{'epochs':>8}{'img/s':>8}{'RSS GB':>8}{'tree GB':>9}  status")
    for r in report["results"]:
        st = "ok" if r["status"] == "ok" else f"FAILED: {r.get('error', '')[:80]}"
        print(f"{r['name']:<12}{_fmt(r.get('miou')):>8}{_fmt(r.get('epochs'), 1):>8}"
              f"{_fmt(r.get('train_img_s')):>8}{_fmt(r.get('peak_rss_gb')):>8}"
              f"{_fmt(r.get('peak_tree_rss_gb')):>9}  {st}")
    ok = [r for r in report["results"] if r["status"] == "ok"]
    if ok:
        names = list(ok[0]["per_class_iou"])
        print(f"\n{'class IoU %':<14}" + "".join(f"{r['name']:>11}" for r in ok))
        for n in names:
            print(f"{n:<14}" + "".join(f"{_fmt(r['per_class_iou'].get(n)):>11}" for r in ok))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=25.0, help="training budget per contender (default 25)")
    p.add_argument("--only", default="pixelwise,smp,yolo", help="comma-separated subset of pixelwise,smp,yolo")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CamVid dataset.yaml (default ../shared/...)")
    p.add_argument("--smoke", action="store_true",
                   help="score val on 5 images only (to prove the pipeline; numbers are meaningless)")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for camvid.md / camvid.json")
    p.add_argument("--workdir", default=None, help="scratch folder for runs (default: a new temp folder)")
    p.add_argument("--yolo-imgsz", type=int, default=480, help="Ultralytics imgsz (train and predict)")
    p.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _python_for_command() -> str:
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(REPO)) if not exe.is_absolute() else str(exe.absolute().relative_to(REPO))
    except ValueError:
        return str(exe)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = Path(args.data)
    if data.is_dir():
        data = data / "dataset.yaml"
    args.data = str(data.resolve())
    if args.child:
        return child_main(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in CONTENDERS]
    if unknown:
        print(f"unknown contender(s): {', '.join(unknown)} (choose from {', '.join(CONTENDERS)})", file=sys.stderr)
        return 2
    if not data.exists():
        print(f"dataset YAML not found: {data}", file=sys.stderr)
        return 2
    if Path("/tmp/pixelwise_bench.lock").exists():
        print("warning: /tmp/pixelwise_bench.lock exists: another benchmark may be using the CPU", file=sys.stderr)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="camvid_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from peers.common import SMOKE_VAL_IMAGES, train_size, val_split

    n_val = val_split(args.data, SMOKE_VAL_IMAGES if args.smoke else None)[2]
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [_python_for_command(), "benchmarks/camvid.py"]
                            + (sys.argv[1:] if argv is None else argv)),
        "minutes": args.minutes, "smoke": args.smoke, "smoke_val_images": SMOKE_VAL_IMAGES,
        "data": args.data, "train_images": train_size(args.data), "val_images": n_val,
        "workdir": str(workdir), "machine": machine_info(), "results": [],
    }
    print(f"workdir: {workdir}")
    for name in only:
        print(f"[{dt.datetime.now():%H:%M:%S}] {name}: training for {args.minutes:g} min ...", flush=True)
        try:
            rec = run_contender(name, args, workdir)
        except Exception as exc:  # noqa: BLE001 - one broken contender must not sink the others
            rec = {"name": name, "label": CONTENDERS[name][1], "status": "failed",
                   "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        report["results"].append(rec)
        msg = (f"mIoU {rec['miou']:.2f}, {rec['epochs']} epochs, {rec['train_img_s']} img/s, "
               f"peak RSS {rec['peak_rss_gb']} GB" if rec["status"] == "ok"
               else f"FAILED: {rec.get('error')} (log: {rec.get('log')})")
        print(f"[{dt.datetime.now():%H:%M:%S}] {name}: {msg}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "camvid.json").write_text(json.dumps(report, indent=2))
    (out / "camvid.md").write_text(render_markdown(report))
    print_table(report)
    print(f"\nwrote {out / 'camvid.md'} and {out / 'camvid.json'}")
    return 0 if all(r["status"] == "ok" for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
