"""Batch prediction over a file, folder or glob, with a progress bar (tqdm when installed)."""
from __future__ import annotations

import csv
import glob
import io
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from pixelwise.errors import ConfigError, DatasetError, ImageReadError, UnreadableImagesError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".npy")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts",
              ".mts", ".m2ts", ".ogv")  # what OpenCV's FFmpeg reads; predicted one file at a time


def expand_sources(src: str | Path) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob -> image paths."""
    s, p = str(src), Path(src)
    videos: list[Path] = []
    if p.is_dir():  # a folder named 'x.png' is no image
        entries = [f for f in p.iterdir() if not f.is_dir()]
    elif p.exists():  # before globs: 'clip[1].png' is that file, not 'clip1.png'
        if p.suffix.lower() in VIDEO_EXTS:
            raise DatasetError(f"{s} is a video: an image run cannot read it.", path=s,
                               fix=f"segment it on its own: pixelwise predict {s} --model ... (pw.predict in "
                                   "Python); the torchrun form predicts images only")
        entries = [p]
    elif any(ch in s for ch in "*?["):
        entries = [Path(f) for f in glob.glob(s, recursive=True) if not os.path.isdir(f)]
    else:
        raise DatasetError(f"Nothing to predict: {s} does not exist.", path=s,
                           fix="pass an image file, a folder of images or a glob like 'imgs/*.jpg'")
    if p.exists() and not p.is_dir():
        files = entries
    else:
        files = sorted(f for f in entries if f.suffix.lower() in IMAGE_EXTS)
        videos = sorted(f for f in entries if f.suffix.lower() in VIDEO_EXTS)
    if files and videos:  # a video is its own run, with its own output video
        warnings.warn(f"Left out {len(videos)} video(s) matched by {s} ({videos[0].name}"
                      f"{', ...' if len(videos) > 1 else ''}): a folder or glob run predicts its images; "
                      f"segment each video on its own (pixelwise predict {videos[0]} --model ...).",
                      UserWarning, stacklevel=2)
    if not files and videos:
        raise DatasetError(f"No images found in {s}, but {len(videos)} video(s).", path=s,
                           fix=f"predict each video on its own, e.g. pixelwise predict {videos[0]} --model ...")
    if not files and not p.is_dir() and not p.exists():  # a glob
        matched = glob.glob(s, recursive=True)
        raise DatasetError(f"Nothing to predict: the glob {s} matches " + (
            f"{len(matched)} file(s), none an image." if matched else "no file."), path=s,
            fix=f"check the pattern (images: {', '.join(IMAGE_EXTS)}); quote it so the shell does not expand it")
    if not files:
        nested = p.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in p.glob("*/**/*"))
        raise DatasetError(f"No images found in {s}" + (" (its images are in subfolders)." if nested else "."),
                           path=s, fix=f"pass a glob such as '{p / '**' / '*.png'}' (quoted)" if nested else
                           f"use files with one of the extensions {', '.join(IMAGE_EXTS)}")
    return files


OUTPUT_KINDS = ("labels", "color", "overlay", "confidence")
OUTPUT_SUFFIXES = (".png", ".tif")  # .tif: the outputs of a GeoTIFF, georeferenced as it is (runtime/georef.py)


def leave_out_earlier_outputs(files: list[Path], out_dir: str | Path) -> list[Path]:
    """Inputs that are an earlier run's outputs are left out, with a warning: with ``--out`` the
    input folder, ``a_labels.png`` from the first run was predicted as a photo by the second
    (writing ``a_labels_color.png``), or refused as an input about to be overwritten. Only files
    in ``out_dir`` named exactly as this run's outputs of its other inputs count."""
    out = os.path.realpath(out_dir)  # as refuse_overwriting_inputs compares: a symlinked --out is the same folder
    suffixes = tuple(f"_{k}{ext}" for k in OUTPUT_KINDS for ext in OUTPUT_SUFFIXES)
    candidates = {f for f in files if f.name.endswith(suffixes) and os.path.commonpath([out, os.path.realpath(f)]) == out}
    if not candidates:
        return files
    from pixelwise.runtime.georef import read_georef

    # A candidate that is no earlier output is an input (a photo named 'user_color.png'), and its
    # own outputs are earlier outputs too: grow the set until no new one is found.
    found: set[Path] = set()
    inputs = [f for f in files if f not in candidates]
    suffix: dict[Path, str] = {}  # a GeoTIFF's outputs are .tif, every other image's .png; one header read each
    for _ in range(len(candidates) + 1):
        stems = output_stems(inputs)
        for f in inputs:
            if f not in suffix:
                suffix[f] = ".tif" if read_georef(f) else ".png"
        ours = {os.path.join(out, f"{stems[f]}_{k}{suffix[f]}") for f in inputs for k in OUTPUT_KINDS}
        new = {f for f in candidates if os.path.realpath(f) in ours} - found
        if not new:
            break
        found |= new
        inputs = [f for f in files if f not in found]
    earlier = [f for f in files if f in found]
    if earlier:
        warnings.warn(f"Left out {len(earlier)} file(s) in {out_dir} named as this run's outputs ({earlier[0].name}"
                      f"{', ...' if len(earlier) > 1 else ''}): an earlier run's results, not images to segment; "
                      "they are written anew.", UserWarning, stacklevel=2)
    left_out = set(earlier)
    return [f for f in files if f not in left_out]


def output_stems(files: Sequence[Path]) -> dict[Path, str]:
    """Each image's output name (``<name>_labels.png`` ...), unique over ``files``.

    Images from one folder keep their stem (``street.jpg`` -> ``street``). Images gathered by a
    glob from several folders keep their folders below the common one (``p1/slice001``,
    ``p2/slice001``): by stem alone the second would overwrite the first's outputs. Two images that
    differ only by extension in one folder keep it (``a.png``, ``a.jpg`` -> ``a.png``, ``a.jpg``).
    """
    if not files:
        return {}
    root = Path(os.path.commonpath([str(Path(f).absolute().parent) for f in files]))
    rel = {f: Path(f).absolute().relative_to(root) for f in files}
    by_stem = Counter(r.with_suffix("").as_posix() for r in rel.values())
    names = {f: (r.with_suffix("") if by_stem[r.with_suffix("").as_posix()] == 1 else r).as_posix()
             for f, r in rel.items()}
    seen = Counter(names[f] for f in files)
    if len(seen) < len(files):  # the same file listed twice, or a name like 'a.png.jpg' beside 'a.png'
        dup = next(n for n, c in seen.items() if c > 1)
        raise DatasetError(f"Two inputs would write the same outputs ({dup}_*.png).", path=dup,
                           fix="list each image once, or rename one of them")
    return names


def refuse_overwriting_inputs(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """An output folder that is the input folder is fine until an image is itself named like an
    output (``a.png`` beside ``a_labels.png`` from an earlier run): never write over a source
    (an image, or the world file or ``.prj`` beside one)."""
    folders: dict[str, str] = {}

    def where(path: str | Path) -> str:
        # Each folder resolved once (resolving every path of a large run took seconds per 10,000
        # images), '..' after a link included; an output's own name is not followed.
        folder, name = os.path.split(os.fspath(path))
        if folder not in folders:
            folders[folder] = os.path.realpath(folder or ".")
        return os.path.join(folders[folder], name)

    # An input that is a link is a source twice: writing over the link would put an output where
    # the input was read, and its target is the user's data.
    sources = {where(f) for f in inputs} | {os.path.realpath(f) for f in inputs if os.path.islink(f)}
    clash = next((o for o in outputs if where(o) in sources), None)
    if clash is not None:
        what = "image" if Path(clash).suffix.lower() in IMAGE_EXTS else "file"
        raise DatasetError(f"Predicting would overwrite the input {what} {clash}.", path=clash,
                           fix=f"write the outputs to another folder (--out), or move that {what} out of the inputs")


def progress_bar(items: Iterable[Any], total: int, desc: str, enabled: bool = True) -> Iterator[Any]:
    try:
        from tqdm import tqdm
    except ImportError:  # the runtime extra does not require tqdm
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, desc=desc, disable=not enabled)
        return
    for i, item in enumerate(items, 1):
        if enabled:
            print(f"\r{desc}: {i}/{total}", end="" if i < total else "\n", flush=True)
        yield item


def refuse_half(model: Any) -> None:
    """``half`` (fp16) is chosen when a checkpoint is loaded: refused for an exported model, whose
    precision was chosen at export, and for a predictor object, already loaded in its own."""
    from pixelwise.runtime.backends import is_exported

    if isinstance(model, (str, Path)) and not is_exported(model):
        return
    what = (f"{model} is an exported model, whose precision was chosen at export" if isinstance(model, (str, Path))
            else "a predictor object is already loaded in its own precision")
    raise ConfigError(f"--half applies to checkpoints; {what}.",
                      fix="use a half-precision export (pixelwise export MODEL --fp16) or "
                          "Segmenter.load(CHECKPOINT, half=True), or drop --half")


def load_predictor(model: Any, device: str = "auto", half: bool = False) -> Any:
    """A model path -> its predictor: ``RuntimeSegmenter`` for exported ``.onnx``/``.xml`` files
    (torch-free), the PyTorch ``Segmenter`` for checkpoints (``half``: in fp16, for GPUs);
    predictor objects pass through."""
    from pixelwise.runtime.backends import is_exported

    if half:
        refuse_half(model)
    if not isinstance(model, (str, Path)):
        return model
    if is_exported(model):
        from pixelwise.runtime import RuntimeSegmenter

        return RuntimeSegmenter.load(model, device=device)
    from pixelwise.engine.model_file import check_checkpoint_file

    check_checkpoint_file(model)  # before torch: a runtime-only install hears what the file is
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.utils import set_threads

    set_threads()
    return Segmenter.load(model, device=device, half=half)


def is_video_source(source: str | Path) -> bool:
    """One video file, by its suffix: an existing file ('clip[1].mp4' too), or a path that is no
    glob (a missing one is then reported as a missing video); 'clips/*.mp4' is a glob."""
    p = Path(source)
    if p.suffix.lower() not in VIDEO_EXTS or p.is_dir():
        return False
    return p.is_file() or not any(ch in str(source) for ch in "*?[")


def check_video_options(source: str | Path, per_image: Sequence[str] = (), video: str | None = None) -> None:
    """Refuse options that do not apply: per-image outputs for a video, a video mode for images."""
    if is_video_source(source) and per_image:
        raise ConfigError(f"{', '.join(per_image)}: files per image, and {source} is a video.",
                          fix="drop them for video input (the video mode, overlay|color|labels, chooses what it shows)")
    if video is not None and not is_video_source(source):
        raise ConfigError(f"The video mode '{video}' (--video) applies to a video source; {source} is not one "
                          f"({', '.join(VIDEO_EXTS)}).", fix="drop it for images")


def predict(model: Any, source: str | Path, out_dir: str | Path = "runs/predict", save_labels: bool = True,
            save_color: bool = True, save_overlay: bool = True, flip: bool = False, device: str = "auto",
            progress: bool = True, tile: int | None = None, overlap: int | None = None,
            scales: Sequence[float] | None = None, save_confidence: bool = False,
            areas_csv: str | None = None, video: str | None = None, half: bool = False) -> list[Path]:
    """Predict every image of a file, folder or glob; write ``<stem>_labels.png`` (class ids),
    ``<stem>_color.png`` and ``<stem>_overlay.png`` into ``out_dir`` (and ``<stem>_confidence.png``,
    a CSV of class areas, when asked). ``tile``: sliding-window mode for images far larger than
    the training size; unreadable files are skipped and reported (see ``predict_folder``).

    A video file (``street.mp4``) is segmented into a video instead (``video``: overlay, color or
    labels; ``out_dir`` a folder or a video file name; see ``inference.video.predict_video``);
    the list holds that one file.

    ``model``: a checkpoint, a predictor, or an exported ``.onnx``/OpenVINO ``.xml`` (then the
    torch-free runtime predicts, and PyTorch is not imported); ``half``: a checkpoint in fp16, for GPUs."""
    kw: dict[str, Any] = {"flip": flip}
    if tile is not None or overlap is not None:  # an overlap without a tile is refused, not dropped
        kw.update(tile=tile, overlap=overlap)
    if scales:
        kw["scales"] = tuple(scales)
    per_image = [name for name, on in (("save_labels", not save_labels), ("save_color", not save_color),
                                       ("save_overlay", not save_overlay), ("save_confidence", save_confidence),
                                       ("areas_csv", areas_csv)) if on]  # choices made, for images
    check_video_options(source, per_image, video)
    if is_video_source(source):
        from pixelwise.inference.video import predict_video  # numpy + OpenCV: no torch for an export

        return [predict_video(model, source, out_dir, mode=video or "overlay", device=device, progress=progress,
                              half=half, **kw).path]
    return predict_folder(load_predictor(model, device, half), source, out_dir, save_labels=save_labels,
                          save_color=save_color, save_overlay=save_overlay, progress=progress,
                          save_confidence=save_confidence, areas_csv=areas_csv, **kw)


def refuse_image_named_folder(out_dir: str | Path) -> None:
    """``--out result.png`` for an image: the outputs (``<stem>_labels.png``, ...) go into a folder,
    and one named like an image is a mistaken file name, not a wish (an existing folder is used)."""
    out = Path(out_dir)
    if out.suffix.lower() in IMAGE_EXTS and not out.is_dir():
        raise ConfigError(f"The output folder {out} is named like an image: predict writes several files "
                          "per image (<stem>_labels.png, _color.png, ...) into a folder.", path=out,
                          fix=f"pass a folder, e.g. --out {out.with_suffix('')}")


def predict_folder(model: Any, source: str | Path, out_dir: str | Path, save_labels: bool = True,
                   save_color: bool = True, save_overlay: bool = False, progress: bool = True,
                   files: list[Path] | None = None, skip_unreadable: bool = True,
                   skipped_list: str | None = "skipped.txt", save_confidence: bool = False,
                   areas_csv: str | None = None, names_by_file: dict[Path, str] | None = None,
                   **predict_kw: Any) -> list[Path]:
    """Predict every image; write ``<stem>_labels.png`` / ``_color.png`` / ``_overlay.png``, and
    ``<stem>_confidence.png`` (max class probability x 255) with ``save_confidence``. The outputs
    of a GeoTIFF are GeoTIFFs (``<stem>_labels.tif`` ...) with its georeferencing, for GIS tools;
    an image's world file, ``.prj`` and ``.aux.xml`` georeferencing go beside each of its outputs.
    A GeoTIFF's footprint (GDAL nodata value or alpha band) is kept: its outputs say "no data"
    outside it (``georef.footprint_outputs``), and its class areas are shares of the footprint.

    ``predict_kw`` goes to ``model.predict`` (``tile``/``overlap`` for huge images, ``flip``,
    ``scales``). ``areas_csv``: a CSV in ``out_dir`` with each image's share of every class.

    Outputs are named by ``output_stems`` (over ``names_by_file``'s files when given: a torchrun
    shard passes the whole run's names, so every rank names a file as one process would).
    ``model`` is anything with the Segmenter API (RuntimeSegmenter or the torch Segmenter).
    A file that cannot be read (corrupt, truncated, not an image) does not stop a long run: it is
    skipped, listed with the reason in ``out_dir/skipped_list``, and once every other image is
    predicted an ``UnreadableImagesError`` (carrying ``written`` and ``skipped``) reports it.
    ``skip_unreadable=False`` raises at the first such file instead."""
    from pixelwise.data.io import atomic_write_bytes  # numpy + Pillow only
    from pixelwise.runtime.footprint import footprint_outputs, outside_footprint
    from pixelwise.runtime.georef import encode_geotiff, read_georef
    from pixelwise.runtime.sidecars import SidecarFinder, sidecar_names, write_sidecars
    from pixelwise.runtime.imageio import encode_png, read_image

    if save_confidence:
        predict_kw["confidence"] = True
    if hasattr(model, "check_options"):  # before any file is read, folder made or bar drawn
        model.check_options(**predict_kw)
    refuse_image_named_folder(out_dir)
    single = files is None and Path(source).is_file()  # one named file: its own error, no skipped list
    files = files if files is not None else leave_out_earlier_outputs(expand_sources(source), out_dir)
    stems = names_by_file if names_by_file is not None else output_stems(files)
    out = Path(out_dir)
    kinds = [k for k, on in (("labels", save_labels), ("color", save_color), ("overlay", save_overlay),
                             ("confidence", save_confidence)) if on]  # the files written per image
    georefs = {f: read_georef(f) for f in stems}  # TIFF headers only
    finder = SidecarFinder()
    sidecars = {f: finder.read(f) for f in files}  # world file, .prj, .aux.xml: carried beside each output
    ext = {f: ".tif" if georefs[f] else ".png" for f in stems}
    # Over the whole run (every torchrun shard checks all of it, so all refuse together): no output,
    # and no stale sidecar of one about to be removed, may be an input or a file beside one that places it.
    outputs = [out / f"{stems[f]}_{k}{ext[f]}" for f in stems for k in kinds]
    refuse_overwriting_inputs([*stems, *(p for f in stems for p in finder.files_of(Path(f)))],
                              outputs + [p for o in outputs for p in (*sidecar_names(o), *finder.files_of(o))]
                              + ([out / areas_csv] if areas_csv else []))
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    areas: list[list[str]] = []
    names = list(getattr(model, "names", []))
    num_classes = int(getattr(model, "num_classes", len(names)))
    for f in progress_bar(files, len(files), "predict", progress):
        try:
            image = read_image(f)
        except ImageReadError as exc:
            if single and skipped_list:
                (out / skipped_list).unlink(missing_ok=True)  # an earlier folder run's list would mislead
            if not skip_unreadable or single:
                raise
            skipped.append((f, str(exc)))
            continue
        pred = model.predict(image, **predict_kw)
        georef = georefs[f]
        outside = outside_footprint(f, georef) if georef and georef.has_footprint else None
        if areas_csv:  # shares of the image, or of an orthomosaic's footprint
            inside = pred.labels if outside is None else pred.labels[~outside]
            counts = np.bincount(inside.ravel(), minlength=len(names))[:len(names)]
            areas.append([str(f), *(f"{c / inside.size:.6f}" if inside.size else "" for c in counts)])  # none inside: no share
        for kind in kinds:
            if kind == "labels":
                arr = pred.labels
            elif kind == "color":
                arr = model.colorize(pred.labels)
            elif kind == "overlay":
                arr = model.overlay(image, pred.labels)
            elif pred.confidence is not None:
                arr = np.round(pred.confidence * 255).astype(np.uint8)
            else:
                continue
            path = out / f"{stems[f]}_{kind}{ext[f]}"
            nodata = None
            if outside is not None:
                arr, nodata = footprint_outputs(kind, arr, outside, num_classes)
            atomic_write_bytes(path, encode_geotiff(arr, georef, nodata=nodata) if georef
                               else encode_png(arr, fast=kind == "overlay"))
            written.append(path)
            written += write_sidecars(path, sidecars[f], finder)
    if areas_csv:
        table = io.StringIO()
        csv.writer(table, lineterminator="\n").writerows([["file", *names], *areas])
        atomic_write_bytes(out / areas_csv, table.getvalue().encode())
        written.append(out / areas_csv)
    if skipped_list:
        report_skipped(skipped, len(files), out, skipped_list, written)
    elif skipped:
        raise unreadable_error(skipped, len(files), out, None, written)
    return written


def unreadable_error(skipped: list[tuple[Path, str]], total: int, out: Path, listed_in: Path | None,
                     written: list[Path]) -> UnreadableImagesError:
    first, why = skipped[0]
    where = f" (all listed in {listed_in})" if listed_in else ""
    fixes = {w.partition(" Fix: ")[2] for _, w in skipped}  # one shared fix (e.g. 8-bit RGB for float .npy) is kept
    return UnreadableImagesError(
        f"{len(skipped)} of {total} images could not be read and {'was' if len(skipped) == 1 else 'were'} skipped"
        f"{where}; the other {total - len(skipped)} {'was' if total - len(skipped) == 1 else 'were'} predicted into "
        f"{out}. First: {why.split(' Fix: ')[0]}", path=first,
        fix=fixes.pop() if len(fixes) == 1 and "" not in fixes else "re-export or remove the skipped files",
        written=written, skipped=skipped)


def _escaped(text: str) -> str:
    """One field of ``skipped.txt``: a file name may hold a tab or a newline, which would split its line."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def report_skipped(skipped: list[tuple[Path, str]], total: int, out: Path, name: str, written: list[Path]) -> None:
    """Write ``out/name`` (path TAB reason per line; a backslash, tab or newline in either is
    escaped as in C) and raise, or remove a stale list when none was skipped."""
    from pixelwise.data.io import atomic_write_bytes

    listed = out / name
    if not skipped:
        listed.unlink(missing_ok=True)  # ours, from an earlier run into the same folder
        return
    atomic_write_bytes(listed, "".join(f"{_escaped(str(p))}\t{_escaped(why)}\n" for p, why in skipped).encode())
    raise unreadable_error(skipped, total, out, listed, written)
