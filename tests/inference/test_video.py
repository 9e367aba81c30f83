"""Video in, overlay video out: a tiny real video written from CamVid frames with cv2."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def test_segment_video_roundtrip(tiny_run, tmp_path):
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video
    from pixelwise.runtime.imageio import read_image

    seg = Segmenter.load(tiny_run.best, device="cpu")
    frames = [read_image(f) for f in sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))]
    h, w = frames[0].shape[:2]
    src = tmp_path / "in.mp4"
    vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (w, h))
    for i in range(6):
        vw.write(cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
    vw.release()
    res = segment_video(seg, src, tmp_path / "out.mp4", mode="color", progress=False)
    assert res.frames == 6 and res.size == (w, h) and res.fps == pytest.approx(5.0)
    assert sum(res.class_areas.values()) == pytest.approx(1.0)
    cap = cv2.VideoCapture(str(res.path))
    ok, first = cap.read()
    n = 1
    while cap.read()[0]:
        n += 1
    cap.release()
    assert ok and n == 6 and first.shape == (h, w, 3)
    # the written frame is the colour map of the prediction (up to video compression)
    ref = seg.colorize(seg.predict(cv2.cvtColor(cv2.VideoCapture(str(src)).read()[1], cv2.COLOR_BGR2RGB)).labels)
    assert np.abs(cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int) - ref).mean() < 20
    with pytest.raises(Exception, match="Cannot open video"):
        segment_video(seg, tmp_path / "missing.mp4", tmp_path / "x.mp4")
