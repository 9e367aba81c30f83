"""Video in, segmented video out (OpenCV): colour overlay, colour map or label frames.

Works with any model that has the Segmenter API (PyTorch ``Segmenter`` or ``RuntimeSegmenter``).
Overlay and colour videos are mp4v (lossy: for looking at). Label videos hold class indices, which
a lossy codec would change (mp4v kept under 1% of a random label map's pixels), so they are
written with FFV1, lossless, in .mkv or .avi: every channel of a decoded frame is the label map.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.errors import DatasetError


# mode -> (OpenCV fourcc, output suffixes it is written in; the first is the default)
CODECS = {"overlay": ("mp4v", (".mp4", ".m4v", ".mov", ".mkv", ".avi")),
          "color": ("mp4v", (".mp4", ".m4v", ".mov", ".mkv", ".avi")),
          "labels": ("FFV1", (".mkv", ".avi"))}


def default_video_name(source: str | Path, mode: str) -> str:
    """``street.mp4`` -> ``street_overlay.mp4`` (``street_labels.mkv``: lossless)."""
    return f"{Path(source).stem}_{mode}{CODECS[mode][1][0]}"


def video_output(out: str | Path, source: str | Path, mode: str) -> Path:
    """``out`` naming a video (``street_seg.mp4``) is that file; a folder, or a name without a
    video suffix, gets the default name inside. An existing folder is a folder whatever its name
    (``runs/late.mkv/``: the rename at the end failed after every frame was predicted)."""
    from pixelwise.runtime.batch import VIDEO_EXTS

    out = Path(out)
    if out.suffix.lower() in VIDEO_EXTS and not out.is_dir():
        return out
    return out / default_video_name(source, mode)


def predict_video(model: Any, source: str | Path, out: str | Path = "runs/predict", mode: str = "overlay",
                  device: str = "auto", progress: bool = True, half: bool = False, **predict_kw: Any) -> VideoResult:
    """The ``predict`` verb for one video file: ``model`` a checkpoint, an export or a predictor
    (``half``: a checkpoint in fp16, for GPUs); ``out`` a video file name or a folder
    (``video_output``); ``predict_kw`` flip, scales, tile..."""
    from pixelwise.runtime.batch import load_predictor

    if mode not in CODECS:
        raise DatasetError(f"Unknown video mode '{mode}'.", fix="use overlay, color or labels")
    return segment_video(load_predictor(model, device, half), source, video_output(out, source, mode), mode=mode,
                         progress=progress, **predict_kw)


@dataclass
class VideoResult:
    path: Path
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height) of the written frames: the source's, made even
    class_areas: dict[str, float]  # mean share of each class over all frames


def segment_video(model: Any, source: str | Path, out: str | Path, mode: str = "overlay",
                  alpha: float = 0.5, max_frames: int | None = None, progress: bool = True,
                  **predict_kw: Any) -> VideoResult:
    """Read ``source`` frame by frame, predict, write ``out`` at the same fps: ``mode`` overlay or
    color (mp4v), or labels (lossless FFV1, .mkv/.avi; read a frame's first channel back).

    ``out`` appears only once every frame is written (a staging file beside it is renamed):
    a failure or Ctrl-C half-way leaves no truncated video, and never touches ``source``.
    A source that ends before the frame count its header declares (a cut download) is written as
    far as it decodes, with a warning."""
    # FFmpeg's own log lines ("moov atom not found") would precede pixelwise's one-line error;
    # read when OpenCV first opens a file, so setting it here works whenever cv2 was imported.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    from pixelwise.runtime.batch import progress_bar

    src, out = Path(source), Path(out)
    if mode not in CODECS:
        raise DatasetError(f"Unknown video mode '{mode}'.", fix="use overlay, color or labels")
    codec, suffixes = CODECS[mode]
    if out.is_dir():  # the rename at the end would fail, after every frame was predicted
        raise DatasetError(f"The output {out} is a folder.", path=out,
                           fix=f"name a file inside it, e.g. {out / default_video_name(source, mode)}")
    if out.suffix.lower() not in suffixes:
        why = "lossless FFV1 (class indices must survive)" if mode == "labels" else "mp4v"
        raise DatasetError(f"{'An' if mode == 'overlay' else 'A'} {mode} video is written as {why}; {out.name} asks for "
                           f"'{out.suffix or 'no suffix'}'.", path=out,
                           fix=f"name the output {out.stem}{suffixes[0]} ({' or '.join(suffixes)})")
    if mode == "labels" and len(model.names) > 256:
        raise DatasetError(f"{len(model.names)} classes do not fit in a label video's 8-bit frames.", path=out,
                           fix="predict the frames as images (label PNGs are 16-bit when needed)")
    if not src.is_file():
        raise DatasetError(f"Video not found: {src}.", path=src, fix="check the path")
    if hasattr(model, "check_options"):  # a tile below the stride is refused before any folder is made
        model.check_options(**predict_kw)
    if out.resolve() == src.resolve():
        raise DatasetError(f"The output {out} is the input video.", path=out,
                           fix="write the segmented video to another path (--out)")
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise DatasetError(f"Cannot open video {src} (not a video, or a codec OpenCV lacks).", path=src,
                           fix="pass a readable video file (mp4, avi, mkv...) or re-encode it with ffmpeg")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (np.isfinite(fps) and fps > 0):
        warnings.warn(f"Video {src} declares no frame rate; {out.name} is written at 25 fps.", UserWarning,
                      stacklevel=2)
        fps = 25.0
    elif fps > 1000:  # a container's time base read as a rate, or a high-speed camera: written as declared
        warnings.warn(f"Video {src} declares {fps:g} fps; {out.name} is written at that rate (if the file's "
                      "real rate differs, re-encode it with ffmpeg -r).", UserWarning, stacklevel=2)
    declared = total = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.stem}.partial{out.suffix}")  # OpenCV picks the container by suffix
    writer = None  # opened at the first frame, at its decoded size: the header's size can differ
    # (a phone video's rotation is applied by the decoder), and OpenCV silently drops frames whose
    # size is not the writer's.
    w = h = pad_w = pad_h = 0
    area_sum = np.zeros(len(model.names))
    n = 0

    def frames():
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame

    try:
        for frame in progress_bar(frames(), total, "video", progress):
            if writer is None:
                h, w = frame.shape[:2]
                # The codecs need even sizes: OpenCV silently dropped an odd frame's last row or
                # column. Pad it instead, so every source pixel keeps its coordinates.
                pad_h, pad_w = h % 2, w % 2
                if pad_h or pad_w:
                    warnings.warn(f"Video {src} is {w}x{h}; video codecs need even sizes, so {out.name} is "
                                  f"{w + pad_w}x{h + pad_h}: its last {'row' if pad_h else 'column'}"
                                  f"{' and column' if pad_h and pad_w else ''} repeats the one before (crop "
                                  f"frames to {w}x{h}).", UserWarning, stacklevel=2)
                writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*codec), fps, (w + pad_w, h + pad_h))
                if not writer.isOpened():
                    raise DatasetError(f"Cannot write video {out} with the {codec} codec.", path=out,
                                       fix=f"use a {' or '.join(suffixes)} output path in a writable folder")
            elif frame.shape[:2] != (h, w):
                raise DatasetError(f"Frame {n + 1} of {src} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                                   f"{w}x{h}; a video keeps one size.", path=src,
                                   fix="re-encode it at one size with ffmpeg, or predict its frames as images")
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            labels = model.predict(rgb, **predict_kw).labels
            if mode == "overlay":
                vis = model.overlay(rgb, labels, alpha)
            elif mode == "color":
                vis = model.colorize(labels)
            else:
                vis = np.repeat(labels.astype(np.uint8)[..., None], 3, axis=2)
            if pad_h or pad_w:
                vis = np.pad(vis, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            writer.write(cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
            area_sum += np.bincount(labels.ravel(), minlength=len(model.names))[: len(model.names)] / labels.size
            n += 1
        if writer is not None:
            writer.release()
        if n == 0:
            raise DatasetError(f"No frame of {src} could be decoded.", path=src,
                               fix="check the file plays, or re-encode it with ffmpeg")
        try:
            os.replace(staging, out)
        except OSError as exc:  # named after the destination, not the hidden staging file
            raise DatasetError(f"Cannot write video {out}: {exc.strerror}.", path=out,
                               fix="choose another --out (a file name ending in "
                                   f"{' or '.join(suffixes)}, or a folder)") from None
        expected = min(declared, max_frames or declared)
        if declared and n < expected - max(1, expected // 20):  # variable-rate containers estimate the count
            warnings.warn(f"Video {src} declares {declared} frames but only {n} could be decoded: the file "
                          f"may be cut short; {out} holds the {n} decoded frames.", UserWarning, stacklevel=2)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        staging.unlink(missing_ok=True)
    areas = {name: float(a / n) for name, a in zip(model.names, area_sum)}
    return VideoResult(out, n, float(fps), (w + pad_w, h + pad_h), areas)
