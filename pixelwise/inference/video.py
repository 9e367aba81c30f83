"""Video in, segmented video out (OpenCV): colour overlay, colour map or label frames.

Works with any model that has the Segmenter API (PyTorch ``Segmenter`` or ``RuntimeSegmenter``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.errors import DatasetError


@dataclass
class VideoResult:
    path: Path
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height)
    class_areas: dict[str, float]  # mean share of each class over all frames


def segment_video(model: Any, source: str | Path, out: str | Path, mode: str = "overlay",
                  alpha: float = 0.5, max_frames: int | None = None, progress: bool = True,
                  **predict_kw: Any) -> VideoResult:
    """Read ``source`` frame by frame, predict, write ``out`` (mp4v codec) at the same fps.

    ``out`` appears only once every frame is written (a staging file beside it is renamed):
    a failure or Ctrl-C half-way leaves no truncated video, and never touches ``source``."""
    import cv2

    from pixelwise.runtime.batch import progress_bar

    src, out = Path(source), Path(out)
    if mode not in ("overlay", "color", "labels"):
        raise DatasetError(f"Unknown video mode '{mode}'.", fix="use overlay, color or labels")
    if not src.is_file():
        raise DatasetError(f"Video not found: {src}.", path=src, fix="check the path")
    if out.resolve() == src.resolve():
        raise DatasetError(f"The output {out} is the input video.", path=out,
                           fix="write the segmented video to another path (--out)")
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise DatasetError(f"Cannot open video {src} (not a video, or a codec OpenCV lacks).", path=src,
                           fix="pass a readable video file (mp4, avi, mkv...) or re-encode it with ffmpeg")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.stem}.partial{out.suffix}")  # OpenCV picks the container by suffix
    writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        cap.release()
        raise DatasetError(f"Cannot write video {out} with the mp4v codec.", path=out,
                           fix="use an .mp4 or .avi output path in a writable folder")
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
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            labels = model.predict(rgb, **predict_kw).labels
            if mode == "overlay":
                vis = model.overlay(rgb, labels, alpha)
            elif mode == "color":
                vis = model.colorize(labels)
            else:
                vis = np.repeat(labels.astype(np.uint8)[..., None], 3, axis=2)
            writer.write(cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
            area_sum += np.bincount(labels.ravel(), minlength=len(model.names))[: len(model.names)] / labels.size
            n += 1
        writer.release()
        if n == 0:
            raise DatasetError(f"No frame of {src} could be decoded.", path=src,
                               fix="check the file plays, or re-encode it with ffmpeg")
        os.replace(staging, out)
    finally:
        cap.release()
        writer.release()
        staging.unlink(missing_ok=True)
    areas = {name: float(a / n) for name, a in zip(model.names, area_sum)}
    return VideoResult(out, n, float(fps), (w, h), areas)
